/* libcurl, loaded on first use: dlopen("libcurl.so.4") behind a table of the functions docker_api calls. Linking it
 * costs every start of the agent ~5 ms (libcurl's dependencies and their constructors), also for commands and runs
 * that never talk to an engine. The types and constants still come from <curl/curl.h>. */
#pragma once

#include <curl/curl.h>

#include "common.h"

/* The soname and the Debian package that ships it, for messages. */
#define DK_CURL_SONAME "libcurl.so.4"
#define DK_CURL_PACKAGE "libcurl4"

struct dk_curl_api {
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

/* Filled by dk_curl_load; only valid after it succeeded. */
extern struct dk_curl_api dk_curl;

/* Loads and initialises libcurl once per process (thread-safe; later calls return the first outcome). Fails with a
 * message naming the library and the package to install. */
int dk_curl_load(ca_error **err);
/* True once dk_curl_load succeeded. */
bool dk_curl_loaded(void);
