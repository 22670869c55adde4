# layers.cmake - the layers of cbctiq and which layers each may use: the one
# place the allowed dependencies are written (docs/architecture.md).
#
#   cbq_layer_rule(NAME [PROGRAM] [USES LOWER...])
#       declares a layer, bottom first; it may use only layers declared above
#       it, so the table cannot hold a cycle. PROGRAM: not part of libcbctiq.
#   cbq_layer(NAME SOURCES...)        (in src/NAME/CMakeLists.txt)
#       object library cbq_NAME, linked to the layers it may use, with an
#       include path that shows its own private headers and those of the
#       layers it may use ("nn/layer.h"), and no others.
#   cbq_layers_check()                (after every layer is added)
#       fails the configure when a cbq_ target links a layer it may not use.
#
# A row whose folder is absent is skipped, so a layer can be planned here
# before its folder lands. tests/arch/layers_test.py reads the same rows to
# check each file's #include "cbctiq/..." against the layer that owns it.

include_guard(GLOBAL)
get_filename_component(CBQ_ROOT "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)

function(cbq_layer_rule name)
  cmake_parse_arguments(L "PROGRAM" "" "USES" ${ARGN})
  get_property(declared GLOBAL PROPERTY CBQ_LAYERS_DECLARED)
  foreach(used IN LISTS L_USES)
    if(NOT used IN_LIST declared)
      message(FATAL_ERROR "cmake/layers.cmake: layer ${name} uses ${used}, which is not declared above it")
    endif()
  endforeach()
  set_property(GLOBAL APPEND PROPERTY CBQ_LAYERS_DECLARED ${name})
  set_property(GLOBAL PROPERTY CBQ_LAYER_USES_${name} "${L_USES}")
  if(NOT L_PROGRAM AND EXISTS "${CBQ_ROOT}/src/${name}/CMakeLists.txt")
    set_property(GLOBAL APPEND PROPERTY CBQ_LIBRARY_LAYERS ${name})
  endif()
endfunction()

# The table. Bottom first; read "io USES core" as "io may use core".
cbq_layer_rule(core)
cbq_layer_rule(io     USES core)
cbq_layer_rule(nn     USES core io)     # model_file.c builds a net from io's model.json + safetensors
cbq_layer_rule(attrib USES core nn)
cbq_layer_rule(draw   USES core io)
cbq_layer_rule(stats  USES core)        # statistics on arrays: their tables are read and written in io
cbq_layer_rule(sim    USES core io)
cbq_layer_rule(data   USES core io nn attrib)
cbq_layer_rule(study  USES core io nn attrib draw stats sim data)
cbq_layer_rule(cli    PROGRAM USES core io nn attrib draw stats sim data study)

function(cbq_layer name)
  get_property(libraries GLOBAL PROPERTY CBQ_LIBRARY_LAYERS)
  if(NOT name IN_LIST libraries)
    message(FATAL_ERROR "src/${name}: no cbq_layer_rule(${name} ...) row in cmake/layers.cmake")
  endif()
  add_library(cbq_${name} OBJECT ${ARGN})
  get_property(uses GLOBAL PROPERTY CBQ_LAYER_USES_${name})
  # The visible private headers: a folder of links to src/<layer> for this
  # layer and each layer it may use; src/ itself is on no layer's path.
  set(visible "${CMAKE_BINARY_DIR}/layer_include/${name}")
  file(REMOVE_RECURSE "${visible}")
  file(MAKE_DIRECTORY "${visible}")
  foreach(layer IN ITEMS ${name} ${uses})
    if(EXISTS "${CBQ_ROOT}/src/${layer}")
      file(CREATE_LINK "${CBQ_ROOT}/src/${layer}" "${visible}/${layer}" SYMBOLIC)
    endif()
    if(NOT layer STREQUAL name AND layer IN_LIST libraries)
      target_link_libraries(cbq_${name} PUBLIC cbq_${layer})
    endif()
  endforeach()
  target_include_directories(cbq_${name} PRIVATE "${visible}")
endfunction()

function(cbq_layers_check)
  get_property(declared GLOBAL PROPERTY CBQ_LAYERS_DECLARED)
  foreach(name IN LISTS declared)
    if(NOT TARGET cbq_${name})
      continue()
    endif()
    get_property(uses GLOBAL PROPERTY CBQ_LAYER_USES_${name})
    get_target_property(links cbq_${name} LINK_LIBRARIES)
    string(REPLACE ";" ", " allowed "${uses}")
    foreach(link IN LISTS links)
      if(link MATCHES "^cbq_(.+)$" AND CMAKE_MATCH_1 IN_LIST declared AND NOT CMAKE_MATCH_1 IN_LIST uses)
        message(FATAL_ERROR "cbq_${name} links ${link}, but layer ${name} may use only: ${allowed} "
                            "(cmake/layers.cmake)")
      endif()
    endforeach()
  endforeach()
endfunction()
