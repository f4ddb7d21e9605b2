# Install rules: headers, the exported target taskmon::taskmon, the CMake package (with the Asio find module it
# depends on), pkg-config files (taskmon.pc, taskmon-health-server.pc with the health server, taskmon-durable.pc
# with the durable runs' journal), and the license (share/doc/taskmon/LICENSE).
include_guard(GLOBAL)
include(CMakePackageConfigHelpers)

set(TASKMON_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/taskmon"
    CACHE STRING "Where taskmon's CMake package files are installed, relative to the prefix")
set(TASKMON_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_DATADIR}/pkgconfig"
    CACHE STRING "Where taskmon's pkg-config files are installed, relative to the prefix")

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/taskmon"
    DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
    COMPONENT taskmon_development
    FILES_MATCHING PATTERN "*.hpp")

install(TARGETS taskmon EXPORT taskmonTargets)
if(TARGET taskmon_systemd)
    install(TARGETS taskmon_systemd EXPORT taskmonTargets)
endif()
install(EXPORT taskmonTargets
    NAMESPACE taskmon::
    DESTINATION "${TASKMON_INSTALL_CMAKEDIR}"
    COMPONENT taskmon_development)

# Optional integrations: each target in its own export file, which the package config loads only when the
# integration's library is found.
if(TARGET taskmon_json)
    install(TARGETS taskmon_json EXPORT taskmonJsonTargets)
    install(EXPORT taskmonJsonTargets
        NAMESPACE taskmon::
        DESTINATION "${TASKMON_INSTALL_CMAKEDIR}"
        COMPONENT taskmon_development)
endif()
if(TARGET taskmon_health_server)
    install(TARGETS taskmon_health_server EXPORT taskmonHealthServerTargets)
    install(EXPORT taskmonHealthServerTargets
        NAMESPACE taskmon::
        DESTINATION "${TASKMON_INSTALL_CMAKEDIR}"
        COMPONENT taskmon_development)
endif()
if(TARGET taskmon_durable)
    install(TARGETS taskmon_durable EXPORT taskmonDurableTargets)
    install(EXPORT taskmonDurableTargets
        NAMESPACE taskmon::
        DESTINATION "${TASKMON_INSTALL_CMAKEDIR}"
        COMPONENT taskmon_development)
endif()
if(TARGET taskmon_prometheus)
    install(TARGETS taskmon_prometheus EXPORT taskmonPrometheusTargets)
    install(EXPORT taskmonPrometheusTargets
        NAMESPACE taskmon::
        DESTINATION "${TASKMON_INSTALL_CMAKEDIR}"
        COMPONENT taskmon_development)
endif()

configure_package_config_file(
    "${PROJECT_SOURCE_DIR}/cmake/taskmonConfig.cmake.in"
    "${PROJECT_BINARY_DIR}/taskmonConfig.cmake"
    INSTALL_DESTINATION "${TASKMON_INSTALL_CMAKEDIR}")
write_basic_package_version_file(
    "${PROJECT_BINARY_DIR}/taskmonConfigVersion.cmake"
    COMPATIBILITY SameMinorVersion
    ARCH_INDEPENDENT)
install(FILES
    "${PROJECT_BINARY_DIR}/taskmonConfig.cmake"
    "${PROJECT_BINARY_DIR}/taskmonConfigVersion.cmake"
    "${PROJECT_SOURCE_DIR}/cmake/Findasio.cmake"
    "${PROJECT_SOURCE_DIR}/cmake/Findhttp_parser.cmake"
    DESTINATION "${TASKMON_INSTALL_CMAKEDIR}"
    COMPONENT taskmon_development)

# The .pc files find the prefix relative to themselves, so a relocated install still works.
file(RELATIVE_PATH TASKMON_PC_TO_PREFIX
    "${CMAKE_INSTALL_PREFIX}/${TASKMON_INSTALL_PKGCONFIGDIR}" "${CMAKE_INSTALL_PREFIX}")
string(REGEX REPLACE "/$" "" TASKMON_PC_TO_PREFIX "${TASKMON_PC_TO_PREFIX}")
configure_file("${PROJECT_SOURCE_DIR}/cmake/taskmon.pc.in" "${PROJECT_BINARY_DIR}/taskmon.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/taskmon.pc"
    DESTINATION "${TASKMON_INSTALL_PKGCONFIGDIR}"
    COMPONENT taskmon_development)

# taskmon::health_server's counterpart: taskmon.pc plus http_parser, which ships no .pc file of its own, so this one
# names the library. -L and -I only when it lies outside the compiler's own search paths (HTTP_PARSER_ROOT); that
# path is absolute, as the library does not move with taskmon.
if(TARGET taskmon_health_server)
    get_filename_component(_taskmon_http_parser_libdir "${http_parser_LIBRARY}" DIRECTORY)
    set(TASKMON_PC_HTTP_PARSER_LIBS "-lhttp_parser")
    if(NOT _taskmon_http_parser_libdir IN_LIST CMAKE_CXX_IMPLICIT_LINK_DIRECTORIES)
        set(TASKMON_PC_HTTP_PARSER_LIBS "-L${_taskmon_http_parser_libdir} -lhttp_parser")
    endif()
    set(TASKMON_PC_HTTP_PARSER_CFLAGS "")
    if(NOT http_parser_INCLUDE_DIR IN_LIST CMAKE_CXX_IMPLICIT_INCLUDE_DIRECTORIES)
        set(TASKMON_PC_HTTP_PARSER_CFLAGS "-I${http_parser_INCLUDE_DIR}")
    endif()
    configure_file("${PROJECT_SOURCE_DIR}/cmake/taskmon-health-server.pc.in"
        "${PROJECT_BINARY_DIR}/taskmon-health-server.pc" @ONLY)
    install(FILES "${PROJECT_BINARY_DIR}/taskmon-health-server.pc"
        DESTINATION "${TASKMON_INSTALL_PKGCONFIGDIR}"
        COMPONENT taskmon_development)
    unset(_taskmon_http_parser_libdir)
endif()

# taskmon::durable's counterpart: taskmon.pc plus SQLite's own sqlite3.pc.
if(TARGET taskmon_durable)
    configure_file("${PROJECT_SOURCE_DIR}/cmake/taskmon-durable.pc.in" "${PROJECT_BINARY_DIR}/taskmon-durable.pc" @ONLY)
    install(FILES "${PROJECT_BINARY_DIR}/taskmon-durable.pc"
        DESTINATION "${TASKMON_INSTALL_PKGCONFIGDIR}"
        COMPONENT taskmon_development)
endif()

# The MIT license asks that its text accompany every copy; header-only copies are made by installing.
install(FILES "${PROJECT_SOURCE_DIR}/LICENSE"
    DESTINATION "${CMAKE_INSTALL_DOCDIR}"
    COMPONENT taskmon_development)
# ThreadSanitizer suppressions for exceptions handed between threads (docs/threads.md, "ThreadSanitizer").
install(FILES "${PROJECT_SOURCE_DIR}/tests/tsan.supp"
    DESTINATION "${CMAKE_INSTALL_DOCDIR}"
    COMPONENT taskmon_development)
