# Installs the build in BUILD_DIR into PREFIX, removing whatever an earlier run left there.
file(REMOVE_RECURSE "${PREFIX}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BUILD_DIR}" --prefix "${PREFIX}"
    RESULT_VARIABLE result)
if(NOT result EQUAL 0)
    message(FATAL_ERROR "installing ${BUILD_DIR} into ${PREFIX} failed: ${result}")
endif()
foreach(expected
        include/taskmon/taskmon.hpp
        share/cmake/taskmon/taskmonConfig.cmake
        share/cmake/taskmon/taskmonConfigVersion.cmake
        share/cmake/taskmon/taskmonTargets.cmake
        share/cmake/taskmon/Findasio.cmake
        share/pkgconfig/taskmon.pc
        share/doc/taskmon/LICENSE
        share/doc/taskmon/tsan.supp)
    if(NOT EXISTS "${PREFIX}/${expected}")
        message(FATAL_ERROR "the install lacks ${expected}")
    endif()
endforeach()
file(READ "${PREFIX}/share/pkgconfig/taskmon.pc" pc)
if(NOT pc MATCHES "prefix=\\\${pcfiledir}/")
    message(FATAL_ERROR "taskmon.pc must locate its prefix relative to itself:\n${pc}")
endif()
file(READ "${PREFIX}/share/doc/taskmon/LICENSE" license)
if(NOT license MATCHES "^MIT License")
    message(FATAL_ERROR "share/doc/taskmon/LICENSE is not taskmon's MIT license:\n${license}")
endif()
