# The system libraries dsc links that have no CMake targets of their own, as imported targets:
# dsc::openblas (CBLAS header and library) and dsc::cudnn (with the CUDA backend). Used by the
# build (CMakeLists.txt) and, installed next to dscConfig.cmake, by find_package(dsc), so that a
# program built against the installed package finds them the same way.

function(dsc_add_openblas_target)
  if(TARGET dsc::openblas)
    return()
  endif()
  find_path(OPENBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas-pthread openblas REQUIRED)
  find_library(OPENBLAS_LIBRARY NAMES openblas REQUIRED)
  add_library(dsc::openblas INTERFACE IMPORTED)
  set_target_properties(dsc::openblas PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${OPENBLAS_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${OPENBLAS_LIBRARY}")
endfunction()

# Needs find_package(CUDAToolkit) first (its folders are the hints).
function(dsc_add_cudnn_target)
  if(TARGET dsc::cudnn)
    return()
  endif()
  find_path(CUDNN_INCLUDE_DIR cudnn.h HINTS ${CUDAToolkit_INCLUDE_DIRS} REQUIRED)
  find_library(CUDNN_LIBRARY cudnn HINTS ${CUDAToolkit_LIBRARY_DIR} REQUIRED)
  add_library(dsc::cudnn INTERFACE IMPORTED)
  set_target_properties(dsc::cudnn PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${CUDNN_LIBRARY}")
endfunction()
