# Every dependency is found through pkg-config; a missing one stops configuration with the Debian package to install.
find_package(PkgConfig)
if(NOT PKG_CONFIG_FOUND)
  message(FATAL_ERROR "pkg-config not found: apt-get install pkg-config")
endif()

function(ag_require_pkg prefix module debian_package)
  pkg_check_modules(${prefix} QUIET IMPORTED_TARGET ${module})
  if(NOT ${prefix}_FOUND)
    message(FATAL_ERROR "${module} not found (pkg-config ${module}): apt-get install ${debian_package}")
  endif()
  message(STATUS "Found ${module} ${${prefix}_VERSION}")
endfunction()

ag_require_pkg(CURL libcurl libcurl4-openssl-dev)
ag_require_pkg(CJSON libcjson libcjson-dev)
# sd-bus, for the systemd cgroup driver (cgroup/systemd.c)
ag_require_pkg(SYSTEMD libsystemd libsystemd-dev)
if(AG_TESTS)
  ag_require_pkg(CRITERION criterion libcriterion-dev)
endif()

# libhttp-parser has no pkg-config file.
find_path(HTTP_PARSER_INCLUDE_DIR http_parser.h)
find_library(HTTP_PARSER_LIBRARY http_parser)
if(NOT HTTP_PARSER_INCLUDE_DIR OR NOT HTTP_PARSER_LIBRARY)
  message(FATAL_ERROR "http_parser.h / libhttp_parser not found: apt-get install libhttp-parser-dev")
endif()
add_library(HttpParser::HttpParser UNKNOWN IMPORTED)
set_target_properties(HttpParser::HttpParser PROPERTIES IMPORTED_LOCATION ${HTTP_PARSER_LIBRARY}
                                                        INTERFACE_INCLUDE_DIRECTORIES ${HTTP_PARSER_INCLUDE_DIR})
message(STATUS "Found http_parser ${HTTP_PARSER_LIBRARY}")
find_package(Threads REQUIRED)
