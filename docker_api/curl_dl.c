/* libcurl loaded on first use (see curl_dl.h). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "curl_dl.h"

struct dk_curl_api dk_curl;

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static bool load_done;
static int load_code;      /* 0: loaded; else the errno of the failure */
static char load_msg[512]; /* the failure, repeated to every later caller */

static const struct {
  const char *name;
  size_t offset;
} symbols[] = {
#define SYM(field)                                                                                                     \
  { "curl_" #field, offsetof(struct dk_curl_api, field) }
    SYM(global_init),      SYM(easy_init),           SYM(easy_cleanup),   SYM(easy_reset),    SYM(easy_setopt),
    SYM(easy_perform),     SYM(easy_strerror),       SYM(multi_init),     SYM(multi_cleanup), SYM(multi_setopt),
    SYM(multi_add_handle), SYM(multi_remove_handle), SYM(multi_perform),  SYM(multi_poll),    SYM(multi_info_read),
    SYM(multi_strerror),   SYM(slist_append),        SYM(slist_free_all),
#undef SYM
};

static void load_locked(void) {
  /* RTLD_LAZY: functions bind on their first call; most of libcurl's dependencies' symbols never are. */
  void *h = dlopen(DK_CURL_SONAME, RTLD_LAZY | RTLD_LOCAL);
  if (!h) {
    const char *e = dlerror();
    load_code = ELIBACC;
    snprintf(load_msg, sizeof(load_msg), "cannot load %s (%s): apt-get install %s", DK_CURL_SONAME,
             e ? e : "unknown error", DK_CURL_PACKAGE);
    return;
  }
  struct dk_curl_api api;
  for (size_t i = 0; i < ELEMENTSOF(symbols); i++) {
    void *f = dlsym(h, symbols[i].name);
    if (!f) {
      load_code = ELIBBAD;
      snprintf(load_msg, sizeof(load_msg), "%s lacks %s: a libcurl older than 7.66 (install a current %s)",
               DK_CURL_SONAME, symbols[i].name, DK_CURL_PACKAGE);
      return; /* the handle stays open: unloading a library whose constructors ran is not worth the risk */
    }
    memcpy((char *)&api + symbols[i].offset, &f, sizeof(f));
  }
  CURLcode cc = api.global_init(CURL_GLOBAL_DEFAULT);
  if (cc != CURLE_OK) {
    load_code = EIO;
    snprintf(load_msg, sizeof(load_msg), "cannot initialise libcurl: %s", api.easy_strerror(cc));
    return;
  }
  dk_curl = api;
}

int dk_curl_load(ca_error **err) {
  pthread_mutex_lock(&load_lock);
  if (!load_done) {
    load_locked();
    load_done = true;
  }
  int code = load_code;
  pthread_mutex_unlock(&load_lock);
  if (code)
    return ca_error_set(err, code, "%s", load_msg);
  return 0;
}

bool dk_curl_loaded(void) {
  pthread_mutex_lock(&load_lock);
  bool ok = load_done && load_code == 0;
  pthread_mutex_unlock(&load_lock);
  return ok;
}
