/* libcurl behind a table of the functions docker_api calls, one of two:
 *   - the built-in one (cmake/Curl.cmake: a static libcurl with HTTP over Unix sockets and plain TCP only), used for
 *     every engine that does not need TLS: it costs nothing to load;
 *   - the system's libcurl.so.4, dlopen()ed on first use, for TLS engines, and for every engine when the binary was
 *     built without the built-in one or CLEANUP_AGENT_LIBCURL=system is set. Linking it would cost every start of the
 *     agent ~6 ms (libcurl4's 31 shared libraries and their constructors), also for commands and runs that never talk
 *     to an engine.
 * The types and constants come from <curl/curl.h> either way (the same libcurl version). */
#pragma once

#include <curl/curl.h>

#include "common.h"

/* The soname and the Debian package that ships it, for messages. */
#define DK_CURL_SONAME "libcurl.so.4"
#define DK_CURL_PACKAGE "libcurl4"
/* CLEANUP_AGENT_LIBCURL=system: the system's libcurl for every engine (a way around a problem of the built-in one). */
#define DK_CURL_ENV "CLEANUP_AGENT_LIBCURL"

/* The functions of struct dk_curl_api (one field each), in one list for the names dlsym looks up and the built-in
 * table: X(field) stands for curl_<field>. */
#define DK_CURL_FUNCTIONS(X)                                                                                           \
  X(global_init)                                                                                                       \
  X(easy_init)                                                                                                         \
  X(easy_cleanup)                                                                                                      \
  X(easy_reset)                                                                                                        \
  X(easy_setopt)                                                                                                       \
  X(easy_perform)                                                                                                      \
  X(easy_strerror)                                                                                                     \
  X(multi_init)                                                                                                        \
  X(multi_cleanup)                                                                                                     \
  X(multi_setopt)                                                                                                      \
  X(multi_add_handle)                                                                                                  \
  X(multi_remove_handle)                                                                                               \
  X(multi_perform)                                                                                                     \
  X(multi_poll)                                                                                                        \
  X(multi_info_read)                                                                                                   \
  X(multi_strerror)                                                                                                    \
  X(slist_append)                                                                                                      \
  X(slist_free_all)

struct dk_curl_api {
  const char *name; /* "built-in libcurl 7.88.1" or "libcurl.so.4", for messages */
  CURLcode (*global_init)(long flags);
  CURL *(*easy_init)(void);
  void (*easy_cleanup)(CURL *easy);
  void (*easy_reset)(CURL *easy);
  CURLcode (*easy_setopt)(CURL *easy, CURLoption option, ...);
  CURLcode (*easy_perform)(CURL *easy);
  const char *(*easy_strerror)(CURLcode code);
  CURLM *(*multi_init)(void);
  CURLMcode (*multi_cleanup)(CURLM *multi);
  CURLMcode (*multi_setopt)(CURLM *multi, CURLMoption option, ...);
  CURLMcode (*multi_add_handle)(CURLM *multi, CURL *easy);
  CURLMcode (*multi_remove_handle)(CURLM *multi, CURL *easy);
  CURLMcode (*multi_perform)(CURLM *multi, int *running);
  CURLMcode (*multi_poll)(CURLM *multi, struct curl_waitfd extra_fds[], unsigned extra_nfds, int timeout_ms,
                          int *numfds);
  CURLMsg *(*multi_info_read)(CURLM *multi, int *msgs_in_queue);
  const char *(*multi_strerror)(CURLMcode code);
  struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
  void (*slist_free_all)(struct curl_slist *list);
};

/* The libcurl for an engine that needs TLS or not, loaded and initialised once per process (thread-safe; later calls
 * return the first outcome). Fails with a message naming the library and the package to install. */
int dk_curl_get(bool tls, const struct dk_curl_api **ret, ca_error **err);
