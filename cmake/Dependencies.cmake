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
if(AG_TESTS)
  ag_require_pkg(CRITERION criterion libcriterion-dev)
endif()
