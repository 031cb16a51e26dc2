# Project-wide compile settings, applied per target so generated and third-party code
# is not subject to -Werror.
if(QUIVER_SANITIZE)
  add_compile_options(-fsanitize=${QUIVER_SANITIZE} -fno-omit-frame-pointer -g)
  add_link_options(-fsanitize=${QUIVER_SANITIZE})
  if(QUIVER_SANITIZE MATCHES "undefined")
    add_compile_options(-fno-sanitize-recover=undefined)
  endif()
endif()

# Boost.Asio with C++20 needs <utility> first (see PLATFORM.md); harmless elsewhere.
function(quiver_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow
                         -Wnon-virtual-dtor -Wno-unused-parameter)
  if(QUIVER_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# quiver_add_library(name SOURCES ... DEPS ...): a static library from an explicit source
# list (a missing file is a configure error, never a silent skip).
function(quiver_add_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  quiver_warnings(${name})
endfunction()

# quiver_add_tests(name SOURCES ... DEPS ...): one gtest binary from an explicit list.
function(quiver_add_tests name)
  if(NOT QUIVER_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE QUIVER_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  quiver_warnings(${name})
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 300)
endfunction()
