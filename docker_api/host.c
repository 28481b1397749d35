/* Where the engine is, found the way the docker CLI finds it: DOCKER_HOST, then the active docker context, then the
 * rootless socket, then the system's. The docker CLI keeps each context in <config dir>/contexts/meta/<sha256 of the
 * name>/meta.json and its TLS files in <config dir>/contexts/tls/<same>/docker/; rather than hashing the name, the
 * meta dir is scanned for the meta.json whose "Name" is the context (no crypto dependency for one lookup). */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "docker-internal.h"

#define CONFIG_MAX (1u << 20) /* config.json and meta.json: far above what the docker CLI writes */

DEFINE_TRIVIAL_CLEANUP_FUNC(DIR *, closedir)

/* The JSON document in path; -ENOENT (err untouched) when there is no such file. Symlinks are followed, as the
 * docker CLI follows them (dotfile managers link config.json). */
static int read_json(const char *path, cJSON **ret, ca_error **err) {
  _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno == ENOENT)
    return -ENOENT;
  if (fd < 0)
    return ca_error_set(err, errno, "%s: %s", path, strerror(errno));
  _cleanup_free_ char *buf = malloc(CONFIG_MAX + 1);
  if (!buf)
    return ca_error_set(err, ENOMEM, "out of memory");
  size_t len = 0;
  for (ssize_t n; len <= CONFIG_MAX; len += (size_t)n)
    if ((n = read(fd, buf + len, CONFIG_MAX + 1 - len)) <= 0) {
      if (n < 0 && errno == EINTR) {
        n = 0;
        continue;
      }
      if (n < 0)
        return ca_error_set(err, errno, "%s: %s", path, strerror(errno));
      break;
    }
  if (len > CONFIG_MAX)
    return ca_error_set(err, EFBIG, "%s: larger than %u bytes", path, CONFIG_MAX);
  return ca_json_parse(buf, len, path, ret, err);
}

/* $DOCKER_CONFIG, else ~/.docker; NULL without either (or out of memory). */
static char *config_dir(void) {
  const char *d = getenv("DOCKER_CONFIG"), *home = getenv("HOME");
  char *s;
  if (d && d[0])
    return strdup(d);
  if (!home || !home[0] || asprintf(&s, "%s/.docker", home) < 0)
    return NULL;
  return s;
}

/* The active context's name (NULL for none: unset, or "default") and where it was named. A config.json that cannot
 * be read or parsed is an error, as it is for the docker CLI's context commands. */
static int active_context(const char *dir, char **ret_name, char **ret_from, ca_error **err) {
  const char *v = getenv("DOCKER_CONTEXT");
  _cleanup_free_ char *path = NULL;
  _cleanup_json_ cJSON *config = NULL;
  const char *name = NULL;
  if (v && v[0]) {
    name = v;
    *ret_from = strdup("DOCKER_CONTEXT");
  } else if (dir) {
    if (asprintf(&path, "%s/config.json", dir) < 0)
      return ca_error_set(err, ENOMEM, "out of memory");
    int r = read_json(path, &config, err);
    if (r == -ENOENT)
      return 0;
    if (r < 0)
      return r;
    if ((r = ca_json_string(config, "currentContext", &name, err)) < 0) {
      (void)ca_error_wrap(err, "%s", path); /* r already carries the code */
      return r;
    }
    if (asprintf(ret_from, "currentContext in %s", path) < 0)
      *ret_from = NULL;
  }
  if (!name || !name[0] || streq(name, "default")) {
    free(*ret_from);
    *ret_from = NULL;
    return 0;
  }
  if (!*ret_from || !(*ret_name = strdup(name)))
    return ca_error_set(err, ENOMEM, "out of memory");
  return 0;
}

/* Fills h from the endpoint of meta.json's "docker" endpoint; meta_id is its dir under contexts/meta. */
static int take_endpoint(const cJSON *meta, const char *dir, const char *meta_id, const char *name, struct dk_host *h,
                         ca_error **err) {
  const cJSON *endpoints = NULL, *docker = NULL;
  const char *host = NULL;
  if (ca_json_object(meta, "Endpoints", &endpoints, err) < 0 || ca_json_object(endpoints, "docker", &docker, err) < 0 ||
      ca_json_string(docker, "Host", &host, err) < 0 ||
      ca_json_bool(docker, "SkipTLSVerify", &h->tls_skip_verify, err) < 0)
    return -EBADMSG;
  if (!host || !host[0])
    return ca_error_set(err, EINVAL, "no docker endpoint (Endpoints.docker.Host)");
  if (h->tls_skip_verify && strncmp(host, "tcp://", 6) == 0)
    return ca_error_set(err, ENOTSUP, "SkipTLSVerify is not supported (the engine's certificate is always verified)");
  if (!(h->url = strdup(host)) || asprintf(&h->origin, "docker context '%s'", name) < 0 ||
      asprintf(&h->tls_dir, "%s/contexts/tls/%s/docker", dir, meta_id) < 0) {
    h->origin = h->tls_dir = NULL;
    return ca_error_set(err, ENOMEM, "out of memory");
  }
  struct stat st;
  if (stat(h->tls_dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
    free(h->tls_dir);
    h->tls_dir = NULL;
  }
  return 0;
}

/* The context named name, from the meta.json under dir/contexts/meta that names it. */
static int load_context(const char *dir, const char *name, const char *from, struct dk_host *h, ca_error **err) {
  _cleanup_free_ char *meta_dir = NULL;
  if (!dir)
    return ca_error_set(err, ENOENT, "docker context '%s' (%s) does not exist: neither DOCKER_CONFIG nor HOME is set",
                        name, from);
  if (asprintf(&meta_dir, "%s/contexts/meta", dir) < 0)
    return ca_error_set(err, ENOMEM, "out of memory");
  _cleanup_(closedirp) DIR *d = opendir(meta_dir);
  if (!d && errno != ENOENT)
    return ca_error_set(err, errno, "docker context '%s' (%s): %s: %s", name, from, meta_dir, strerror(errno));
  for (struct dirent *de; d && (de = readdir(d));) {
    if (de->d_name[0] == '.')
      continue;
    _cleanup_free_ char *path = NULL;
    _cleanup_json_ cJSON *meta = NULL;
    const char *n = NULL;
    if (asprintf(&path, "%s/%s/meta.json", meta_dir, de->d_name) < 0)
      return ca_error_set(err, ENOMEM, "out of memory");
    /* Another context's unreadable meta.json is not this one's problem: the docker CLI skips it as well. */
    if (read_json(path, &meta, NULL) < 0 || ca_json_string(meta, "Name", &n, NULL) < 0 || !n || !streq(n, name))
      continue;
    int r = take_endpoint(meta, dir, de->d_name, name, h, err);
    if (r < 0)
      (void)ca_error_wrap(err, "docker context '%s': %s", name, path); /* r already carries the code */
    return r;
  }
  return ca_error_set(err, ENOENT, "docker context '%s' (%s) does not exist: no meta.json in %s names it", name, from,
                      meta_dir);
}

/* The rootless engine's socket, $XDG_RUNTIME_DIR/docker.sock, when there is one. */
static int rootless_socket(struct dk_host *h, ca_error **err) {
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  struct stat st;
  if (!xdg || xdg[0] != '/')
    return 0;
  _cleanup_free_ char *path = NULL;
  if (asprintf(&path, "%s/docker.sock", xdg) < 0)
    return ca_error_set(err, ENOMEM, "out of memory");
  if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
    return 0;
  if (asprintf(&h->url, "unix://%s", path) < 0 || !(h->origin = strdup("rootless socket"))) {
    h->url = NULL;
    return ca_error_set(err, ENOMEM, "out of memory");
  }
  return 1;
}

static int set_host(struct dk_host *h, const char *url, const char *origin, ca_error **err) {
  if (!(h->url = strdup(url)) || (origin && !(h->origin = strdup(origin))))
    return ca_error_set(err, ENOMEM, "out of memory");
  return 0;
}

int dk_host_find(const char *given, const char *given_origin, struct dk_host *ret, ca_error **err) {
  _cleanup_(dk_host_done) struct dk_host h = {0};
  const char *env = getenv("DOCKER_HOST");
  int r;
  if (given && given[0])
    r = set_host(&h, given, given_origin, err);
  else if (env && env[0])
    r = set_host(&h, env, "DOCKER_HOST", err);
  else {
    _cleanup_free_ char *dir = config_dir(), *name = NULL, *from = NULL;
    r = active_context(dir, &name, &from, err);
    if (r >= 0 && name)
      r = load_context(dir, name, from, &h, err);
    else if (r >= 0 && (r = rootless_socket(&h, err)) == 0)
      r = set_host(&h, DK_DEFAULT_HOST, NULL, err);
  }
  if (r < 0)
    return r;
  *ret = h;
  h = (struct dk_host){0};
  return 0;
}

void dk_host_done(struct dk_host *h) {
  if (h) {
    free(h->url);
    free(h->origin);
    free(h->tls_dir);
    *h = (struct dk_host){0};
  }
}
