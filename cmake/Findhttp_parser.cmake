# Findhttp_parser.cmake — finds nodejs' http_parser (Debian libhttp-parser-dev) and defines the imported target
# http_parser::http_parser. The library ships neither a CMake package nor a pkg-config file.
#
# Result variables: http_parser_FOUND, http_parser_VERSION, http_parser_INCLUDE_DIR, http_parser_LIBRARY.

include_guard(GLOBAL)

find_path(http_parser_INCLUDE_DIR NAMES http_parser.h HINTS "${HTTP_PARSER_ROOT}" "$ENV{HTTP_PARSER_ROOT}"
    PATH_SUFFIXES include)
find_library(http_parser_LIBRARY NAMES http_parser HINTS "${HTTP_PARSER_ROOT}" "$ENV{HTTP_PARSER_ROOT}"
    PATH_SUFFIXES lib)

if(http_parser_INCLUDE_DIR AND EXISTS "${http_parser_INCLUDE_DIR}/http_parser.h")
    foreach(_part MAJOR MINOR PATCH)
        file(STRINGS "${http_parser_INCLUDE_DIR}/http_parser.h" _line
             REGEX "^#define HTTP_PARSER_VERSION_${_part} [0-9]+")
        string(REGEX MATCH "[0-9]+$" _http_parser_${_part} "${_line}")
    endforeach()
    set(http_parser_VERSION "${_http_parser_MAJOR}.${_http_parser_MINOR}.${_http_parser_PATCH}")
endif()

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(http_parser
    REQUIRED_VARS http_parser_LIBRARY http_parser_INCLUDE_DIR
    VERSION_VAR http_parser_VERSION)

if(http_parser_FOUND AND NOT TARGET http_parser::http_parser)
    add_library(http_parser::http_parser UNKNOWN IMPORTED)
    set_target_properties(http_parser::http_parser PROPERTIES
        IMPORTED_LOCATION "${http_parser_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${http_parser_INCLUDE_DIR}")
endif()

mark_as_advanced(http_parser_INCLUDE_DIR http_parser_LIBRARY)
