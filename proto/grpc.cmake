# Included by proto/CMakeLists.txt when grpc_service.proto exists: generates the C++
# messages and gRPC stubs of grpc_service.proto and health.proto into the target
# quiver_grpc_proto. Generated code is compiled without the project's warning flags, and
# its headers are exported as SYSTEM includes so that project code including them keeps
# -Werror.
get_target_property(QUIVER_GRPC_CPP_PLUGIN gRPC::grpc_cpp_plugin LOCATION)

set(quiver_grpc_srcs)
set(quiver_grpc_hdrs)
foreach(proto_name grpc_service health)
  set(proto_file ${CMAKE_CURRENT_SOURCE_DIR}/${proto_name}.proto)
  set(out_base ${CMAKE_CURRENT_BINARY_DIR}/${proto_name})
  add_custom_command(
    OUTPUT ${out_base}.pb.cc ${out_base}.pb.h ${out_base}.grpc.pb.cc ${out_base}.grpc.pb.h
    COMMAND protobuf::protoc
            --proto_path=${CMAKE_CURRENT_SOURCE_DIR}
            --cpp_out=${CMAKE_CURRENT_BINARY_DIR}
            --grpc_out=${CMAKE_CURRENT_BINARY_DIR}
            --plugin=protoc-gen-grpc=${QUIVER_GRPC_CPP_PLUGIN}
            ${proto_file}
    DEPENDS ${proto_file} ${CMAKE_CURRENT_SOURCE_DIR}/model_config.proto protobuf::protoc
    COMMENT "Generating C++ and gRPC code from ${proto_name}.proto"
    VERBATIM)
  list(APPEND quiver_grpc_srcs ${out_base}.pb.cc ${out_base}.grpc.pb.cc)
  list(APPEND quiver_grpc_hdrs ${out_base}.pb.h ${out_base}.grpc.pb.h)
endforeach()

add_library(quiver_grpc_proto STATIC ${quiver_grpc_srcs} ${quiver_grpc_hdrs})
target_include_directories(quiver_grpc_proto SYSTEM PUBLIC ${CMAKE_CURRENT_BINARY_DIR})
target_link_libraries(quiver_grpc_proto PUBLIC quiver_proto gRPC::grpc++ protobuf::libprotobuf)
