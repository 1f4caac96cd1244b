# Generates C from api/**/*.proto and the well-known types with protoc-c at
# build time (never committed), plus a registry of every message descriptor
# so the JSON decoder can resolve google.protobuf.Any type URLs.
set(KITE_GEN_DIR ${CMAKE_BINARY_DIR}/gen)
set(KITE_WKT_DIR /usr/include CACHE PATH "Directory holding google/protobuf/*.proto")
set(KITE_WKT any duration timestamp wrappers struct empty)

file(GLOB_RECURSE KITE_API_PROTOS CONFIGURE_DEPENDS RELATIVE ${CMAKE_SOURCE_DIR}/api
     ${CMAKE_SOURCE_DIR}/api/*.proto)

set(KITE_GEN_SRCS)
set(KITE_GEN_HDRS)
macro(kite_protoc rel incdir)
  string(REGEX REPLACE "\\.proto$" "" base ${rel})
  set(out_c ${KITE_GEN_DIR}/${base}.pb-c.c)
  set(out_h ${KITE_GEN_DIR}/${base}.pb-c.h)
  add_custom_command(
    OUTPUT ${out_c} ${out_h}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${KITE_GEN_DIR}
    COMMAND ${PROTOC_C} --c_out=${KITE_GEN_DIR} -I${CMAKE_SOURCE_DIR}/api -I${KITE_WKT_DIR} ${rel}
    DEPENDS ${incdir}/${rel}
    COMMENT "protoc-c ${rel}" VERBATIM)
  list(APPEND KITE_GEN_SRCS ${out_c})
  list(APPEND KITE_GEN_HDRS ${out_h})
endmacro()

foreach(w ${KITE_WKT})
  kite_protoc(google/protobuf/${w}.proto ${KITE_WKT_DIR})
endforeach()
foreach(p ${KITE_API_PROTOS})
  kite_protoc(${p} ${CMAKE_SOURCE_DIR}/api)
endforeach()

set(KITE_REGISTRY_C ${KITE_GEN_DIR}/k_pb_registry_table.c)
add_custom_command(
  OUTPUT ${KITE_REGISTRY_C}
  COMMAND ${CMAKE_COMMAND} -DOUT=${KITE_REGISTRY_C} "-DHDRS=${KITE_GEN_HDRS}"
          -P ${CMAKE_SOURCE_DIR}/cmake/gen_registry.cmake
  DEPENDS ${KITE_GEN_HDRS} ${CMAKE_SOURCE_DIR}/cmake/gen_registry.cmake
  COMMENT "descriptor registry" VERBATIM)

add_library(kite_api STATIC ${KITE_GEN_SRCS} ${KITE_REGISTRY_C})
target_include_directories(kite_api PUBLIC ${KITE_GEN_DIR})
target_link_libraries(kite_api PUBLIC PkgConfig::PBC)
# Generated code is not ours to lint.
target_compile_options(kite_api PRIVATE -Wno-error -Wno-missing-prototypes -Wno-shadow)
