# libcurl for docker_api, one of two ways (AG_CURL):
#   builtin  a static libcurl of our own, built here from Debian's curl source (deploy/fetch-curl-source.sh puts it in
#            /var/cache/cleanup-agent) with HTTP over Unix sockets and plain TCP only: no TLS, no compression, no other
#            protocol. Linked into the binary, it costs a start that talks to an engine ~0.3 ms and ~0.2 MB, where
#            libcurl4 and its 31 shared libraries cost ~6 ms and ~8 MB. TLS engines (tcp:// with DOCKER_TLS_VERIFY)
#            still go through the system's libcurl4, loaded on first use.
#   system   the system's libcurl4 only, loaded on first use (docker_api/curl_dl.c).
#   auto     (default) builtin when a curl source is found, else system, and says which.
# The result: target ag_curl_builtin (when builtin) and AG_CURL_BUILTIN (ON/OFF).
set(AG_CURL "auto" CACHE STRING "libcurl: builtin (static, from AG_CURL_SOURCE), system (libcurl.so.4 at run time) or auto")
set_property(CACHE AG_CURL PROPERTY STRINGS auto builtin system)
set(AG_CURL_SOURCE "" CACHE PATH "curl source tree for the built-in libcurl (default: the newest under /var/cache/cleanup-agent)")

if(NOT AG_CURL MATCHES "^(auto|builtin|system)$")
  message(FATAL_ERROR "AG_CURL=${AG_CURL}: use builtin, system or auto")
endif()

set(_curl_src "${AG_CURL_SOURCE}")
if(NOT _curl_src AND NOT AG_CURL STREQUAL "system")
  file(GLOB _curl_candidates LIST_DIRECTORIES true /var/cache/cleanup-agent/curl-*)
  list(SORT _curl_candidates COMPARE NATURAL)
  foreach(_c IN LISTS _curl_candidates)
    if(EXISTS "${_c}/include/curl/curl.h" AND EXISTS "${_c}/CMakeLists.txt")
      set(_curl_src "${_c}") # the last one is the newest
    endif()
  endforeach()
endif()
if(_curl_src AND NOT (EXISTS "${_curl_src}/include/curl/curl.h" AND EXISTS "${_curl_src}/CMakeLists.txt"))
  message(FATAL_ERROR "AG_CURL_SOURCE=${_curl_src} is not a curl source tree (no include/curl/curl.h or "
                      "CMakeLists.txt): run deploy/fetch-curl-source.sh and point AG_CURL_SOURCE at the directory it prints")
endif()

set(AG_CURL_BUILTIN OFF)
if(AG_CURL STREQUAL "builtin" AND NOT _curl_src)
  message(FATAL_ERROR "AG_CURL=builtin needs curl's source: run deploy/fetch-curl-source.sh (as root), or set "
                      "AG_CURL_SOURCE, or configure with -DAG_CURL=system")
elseif(_curl_src AND NOT AG_CURL STREQUAL "system")
  set(AG_CURL_BUILTIN ON)
endif()

if(NOT AG_CURL_BUILTIN)
  message(STATUS "libcurl: the system's libcurl.so.4, loaded on first use (for a built-in one that starts ~6 ms "
                 "faster: deploy/fetch-curl-source.sh, then configure again)")
  return()
endif()

file(STRINGS "${_curl_src}/include/curl/curlver.h" _curl_version REGEX "^#define LIBCURL_VERSION \"")
string(REGEX REPLACE ".*\"(.*)\".*" "\\1" _curl_version "${_curl_version}")

include(ExternalProject)
# One build dir per version: a newer source never meets the CMake cache of an older one.
set(_curl_bin "${CMAKE_BINARY_DIR}/curl-builtin-${_curl_version}")
set(_curl_lib "${_curl_bin}/lib/libcurl.a")
# Everything off that a Docker Engine client does not use; what stays: HTTP/1.1, Unix sockets, the threaded
# resolver (timeouts hold while resolving a tcp:// host), proxies from the environment as the system libcurl does.
ExternalProject_Add(
  curl_builtin_build
  SOURCE_DIR "${_curl_src}"
  BINARY_DIR "${_curl_bin}"
  CMAKE_ARGS -DCMAKE_BUILD_TYPE=Release
             -DCMAKE_C_COMPILER=${CMAKE_C_COMPILER}
             -DCMAKE_POSITION_INDEPENDENT_CODE=ON
             -DBUILD_SHARED_LIBS=OFF
             -DBUILD_CURL_EXE=OFF
             -DBUILD_TESTING=OFF
             -DHTTP_ONLY=ON
             -DCURL_ENABLE_SSL=OFF
             -DCURL_USE_OPENSSL=OFF
             -DCURL_ZLIB=OFF
             -DCURL_BROTLI=OFF
             -DCURL_ZSTD=OFF
             -DUSE_LIBIDN2=OFF
             -DUSE_NGHTTP2=OFF
             -DCURL_USE_LIBSSH2=OFF
             -DCURL_USE_LIBPSL=OFF
             -DCURL_USE_GSSAPI=OFF
             -DENABLE_UNIX_SOCKETS=ON
             -DENABLE_THREADED_RESOLVER=ON
             -DENABLE_WEBSOCKETS=OFF
             -DCURL_DISABLE_COOKIES=ON
             -DCURL_DISABLE_ALTSVC=ON
             -DCURL_DISABLE_HSTS=ON
             -DCURL_DISABLE_DOH=ON
             -DCURL_DISABLE_NETRC=ON
             -DCURL_DISABLE_MIME=ON
             -DCURL_DISABLE_NTLM=ON
             -DCURL_DISABLE_CRYPTO_AUTH=ON
             -DCURL_DISABLE_LDAP=ON
             -DCURL_DISABLE_LDAPS=ON
             -DCURL_CA_BUNDLE=none
             -DCURL_CA_PATH=none
  INSTALL_COMMAND ""
  BUILD_BYPRODUCTS "${_curl_lib}"
  LOG_CONFIGURE ON
  LOG_BUILD ON
  LOG_OUTPUT_ON_FAILURE ON)

add_library(ag_curl_builtin STATIC IMPORTED GLOBAL)
set_target_properties(ag_curl_builtin PROPERTIES IMPORTED_LOCATION "${_curl_lib}"
                                                 INTERFACE_INCLUDE_DIRECTORIES "${_curl_src}/include"
                                                 INTERFACE_COMPILE_DEFINITIONS "CURL_STATICLIB;DK_CURL_BUILTIN=1")
add_dependencies(ag_curl_builtin curl_builtin_build)
# Its symbols stay inside the binary: the system's libcurl, loaded for TLS engines, must bind to its own.
target_link_options(ag_curl_builtin INTERFACE "LINKER:--exclude-libs,libcurl.a")
message(STATUS "libcurl: built in, ${_curl_version} from ${_curl_src} (HTTP over Unix sockets and TCP; TLS engines "
               "use the system's libcurl.so.4)")
