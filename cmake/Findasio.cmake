# Findasio.cmake — finds standalone Asio (headers only) and defines the imported target asio::asio.
#
# Asio releases before 1.23 ship neither a CMake package nor a pkg-config file, so taskmon carries this
# module and installs it beside its package configuration.
#
# Result variables: asio_FOUND, asio_VERSION, asio_INCLUDE_DIR.
# Target: asio::asio (INTERFACE: ASIO_STANDALONE, Threads::Threads, and ASIO_HAS_CO_AWAIT=1 for clang with
# Asio older than 1.26, which does not detect clang's coroutines when building against libstdc++).

include_guard(GLOBAL)

find_path(asio_INCLUDE_DIR NAMES asio.hpp asio/version.hpp
    HINTS "${ASIO_ROOT}" "$ENV{ASIO_ROOT}"
    PATH_SUFFIXES include asio/include)

if(asio_INCLUDE_DIR AND EXISTS "${asio_INCLUDE_DIR}/asio/version.hpp")
    file(STRINGS "${asio_INCLUDE_DIR}/asio/version.hpp" _asio_version_line
         REGEX "^#define ASIO_VERSION [0-9]+")
    string(REGEX MATCH "[0-9]+" _asio_version_number "${_asio_version_line}")
    math(EXPR _asio_major "${_asio_version_number} / 100000")
    math(EXPR _asio_minor "${_asio_version_number} / 100 % 1000")
    math(EXPR _asio_patch "${_asio_version_number} % 100")
    set(asio_VERSION "${_asio_major}.${_asio_minor}.${_asio_patch}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(asio
    REQUIRED_VARS asio_INCLUDE_DIR
    VERSION_VAR asio_VERSION)

if(asio_FOUND AND NOT TARGET asio::asio)
    set(THREADS_PREFER_PTHREAD_FLAG ON)
    find_package(Threads REQUIRED)
    add_library(asio::asio INTERFACE IMPORTED)
    set_target_properties(asio::asio PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${asio_INCLUDE_DIR}"
        INTERFACE_COMPILE_DEFINITIONS "ASIO_STANDALONE"
        INTERFACE_LINK_LIBRARIES Threads::Threads)
    if(asio_VERSION VERSION_LESS 1.26)
        set_property(TARGET asio::asio APPEND PROPERTY INTERFACE_COMPILE_DEFINITIONS
            "$<$<COMPILE_LANG_AND_ID:CXX,Clang,AppleClang>:ASIO_HAS_CO_AWAIT=1>")
    endif()
endif()

mark_as_advanced(asio_INCLUDE_DIR)
