# Installs the build in BUILD_DIR into PREFIX, removing whatever an earlier run left there. HEALTH_SERVER is ON
# when the build defines taskmon::health_server, whose .pc file is then expected, and absent otherwise; DURABLE
# the same for taskmon::durable and taskmon-durable.pc.
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
set(pc_files taskmon.pc)
if(HEALTH_SERVER)
    list(APPEND pc_files taskmon-health-server.pc)
elseif(EXISTS "${PREFIX}/share/pkgconfig/taskmon-health-server.pc")
    message(FATAL_ERROR "taskmon-health-server.pc is installed without the health server")
endif()
if(DURABLE)
    list(APPEND pc_files taskmon-durable.pc)
elseif(EXISTS "${PREFIX}/share/pkgconfig/taskmon-durable.pc")
    message(FATAL_ERROR "taskmon-durable.pc is installed without the durable runs' journal")
endif()
foreach(pc_file IN LISTS pc_files)
    if(NOT EXISTS "${PREFIX}/share/pkgconfig/${pc_file}")
        message(FATAL_ERROR "the install lacks share/pkgconfig/${pc_file}")
    endif()
    file(READ "${PREFIX}/share/pkgconfig/${pc_file}" pc)
    if(NOT pc MATCHES "prefix=\\\${pcfiledir}/")
        message(FATAL_ERROR "${pc_file} must locate its prefix relative to itself:\n${pc}")
    endif()
endforeach()
file(READ "${PREFIX}/share/doc/taskmon/LICENSE" license)
if(NOT license MATCHES "^MIT License")
    message(FATAL_ERROR "share/doc/taskmon/LICENSE is not taskmon's MIT license:\n${license}")
endif()
