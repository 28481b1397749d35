/* The built-in libcurl, or the system's loaded on first use (see curl_dl.h). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "curl_dl.h"

/* ---- the system's libcurl.so.4 ------------------------------------------------------------------------------- */

static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static bool load_done;
static int load_code;      /* 0: loaded; else the errno of the failure */
static char load_msg[512]; /* the failure, repeated to every later caller */
static struct dk_curl_api system_api;

static const struct {
  const char *name;
  size_t offset;
} symbols[] = {
#define SYM(field) {"curl_" #field, offsetof(struct dk_curl_api, field)},
    DK_CURL_FUNCTIONS(SYM)
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
  struct dk_curl_api api = {.name = DK_CURL_SONAME};
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
    snprintf(load_msg, sizeof(load_msg), "cannot initialise %s: %s", DK_CURL_SONAME, api.easy_strerror(cc));
    return;
  }
  system_api = api;
}

static int system_get(const struct dk_curl_api **ret, ca_error **err) {
  pthread_mutex_lock(&load_lock);
  if (!load_done) {
    load_locked();
    load_done = true;
  }
  int code = load_code;
  pthread_mutex_unlock(&load_lock);
  if (code)
    return ca_error_set(err, code, "%s", load_msg);
  *ret = &system_api;
  return 0;
}

/* ---- the built-in libcurl ------------------------------------------------------------------------------------ */

#ifdef DK_CURL_BUILTIN
#define FIELD(field) .field = curl_##field,
static const struct dk_curl_api builtin_api = {.name = "built-in libcurl " LIBCURL_VERSION, DK_CURL_FUNCTIONS(FIELD)};
#undef FIELD
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;
static CURLcode builtin_init_code;

static void builtin_init(void) {
  /* Nothing to initialise without TLS but the clock and the resolver; it never fails short of out of memory. */
  builtin_init_code = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static bool want_system(void) {
  const char *v = getenv(DK_CURL_ENV);
  return v && strcmp(v, "system") == 0;
}
#endif

int dk_curl_get(bool tls, const struct dk_curl_api **ret, ca_error **err) {
#ifdef DK_CURL_BUILTIN
  if (!tls && !want_system()) {
    (void)pthread_once(&builtin_once, builtin_init);
    if (builtin_init_code != CURLE_OK)
      return ca_error_set(err, EIO, "cannot initialise the %s: %s", builtin_api.name,
                          curl_easy_strerror(builtin_init_code));
    *ret = &builtin_api;
    return 0;
  }
#else
  (void)tls;
#endif
  return system_get(ret, err);
}
