# `cmake --install BUILD --prefix PREFIX`: the libraries (lib/), the public headers under
# include/dsc/ with the paths programs write in the tree ("core/ops.h", "layers/layers.h", ...),
# the programs (bin/) and the CMake package (lib/cmake/dsc/: dscConfig.cmake, its version file,
# the exported targets and dscDependencies.cmake). examples/ is built against it by
# scripts/test-examples.sh.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(DSC_INSTALL_INCLUDEDIR ${CMAKE_INSTALL_INCLUDEDIR}/dsc)
set(DSC_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/dsc)

# dsc::dsc: everything a program needs: tensors, ops and autograd (dsc_core), layers and the model
# registry (dsc_layers), optimizers (dsc_optim), data (dsc_data) and the training library with
# train_main (dsc_train). Each library is also exported alone (dsc::dsc_core, ...).
add_library(dsc INTERFACE)
add_library(dsc::dsc ALIAS dsc)
target_link_libraries(dsc INTERFACE dsc_layers dsc_optim dsc_data dsc_train)
set_target_properties(dsc PROPERTIES DSC_WITH_CUDA ${DSC_HAVE_CUDA}
                                     EXPORT_PROPERTIES DSC_WITH_CUDA)

install(TARGETS dsc_core dsc_layers dsc_optim dsc_data dsc_train_step dsc_analysis dsc_train dsc
        EXPORT dscTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${DSC_INSTALL_INCLUDEDIR})
# The programs (apps/<name>.cpp, see apps/CMakeLists.txt): train, compare, ...
file(GLOB DSC_APP_SOURCES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/apps/*.cpp)
foreach(src ${DSC_APP_SOURCES})
  get_filename_component(name ${src} NAME_WE)
  install(TARGETS ${name} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endforeach()

# Headers: every .h of the libraries, in their folders; the CUDA backend's internals stay out
# (programs reach CUDA through core/cuda_interop.h).
foreach(dir core layers optim data train)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/${dir}/ DESTINATION ${DSC_INSTALL_INCLUDEDIR}/${dir}
          FILES_MATCHING PATTERN "*.h" PATTERN "cuda" EXCLUDE)
endforeach()

install(EXPORT dscTargets NAMESPACE dsc:: DESTINATION ${DSC_INSTALL_CMAKEDIR})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/dscConfig.cmake.in
                              ${PROJECT_BINARY_DIR}/dscConfig.cmake
                              INSTALL_DESTINATION ${DSC_INSTALL_CMAKEDIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/dscConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/dscConfig.cmake ${PROJECT_BINARY_DIR}/dscConfigVersion.cmake
              ${PROJECT_SOURCE_DIR}/cmake/dscDependencies.cmake
        DESTINATION ${DSC_INSTALL_CMAKEDIR})
