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

# quiver_library(name DIR dir DEPS ...): every *.cc in dir except *_test.cc.
function(quiver_library name)
  cmake_parse_arguments(ARG "" "DIR" "DEPS;EXCLUDE" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${ARG_DIR}/*.cc)
  list(FILTER srcs EXCLUDE REGEX "_test\\.cc$")
  foreach(ex IN LISTS ARG_EXCLUDE)
    list(FILTER srcs EXCLUDE REGEX "${ex}")
  endforeach()
  add_library(${name} STATIC ${srcs})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
  quiver_warnings(${name})
endfunction()

# quiver_tests(name DIR dir DEPS ...): one gtest binary from every *_test.cc in dir.
function(quiver_tests name)
  if(NOT QUIVER_BUILD_TESTS)
    return()
  endif()
  cmake_parse_arguments(ARG "" "DIR" "DEPS;EXCLUDE" ${ARGN})
  file(GLOB srcs CONFIGURE_DEPENDS ${ARG_DIR}/*_test.cc)
  foreach(ex IN LISTS ARG_EXCLUDE)
    list(FILTER srcs EXCLUDE REGEX "${ex}")
  endforeach()
  if(NOT srcs)
    return()
  endif()
  add_executable(${name} ${srcs})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  target_compile_definitions(${name} PRIVATE
    QUIVER_SOURCE_DIR="${PROJECT_SOURCE_DIR}")
  quiver_warnings(${name})
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS "${name}" TIMEOUT 300)
endfunction()
