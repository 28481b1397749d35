/* The Docker proxy of a session: its socket in the state dir and its labels (apart from proxy.c, which the fuzz target
 * links alone). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "docker.h"
#include "proxy.h"
#include "receipt.h"
#include "session.h"

#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* A socket of the short dir that nobody listens on any more and that is older than a minute (a proxy listens from
 * its start to its end; the minute covers the instant between bind and listen) belonged to a session whose end and
 * whose collection never came: a state dir removed whole, say. Removed, so that the dir does not fill up. */
static void sweep_short_dir(const char *dir) {
  _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
  if (!d)
    return;
  dfd = -1; /* the DIR owns it now */
  struct dirent *de;
  struct stat st;
  time_t old = time(NULL) - 60;
  while ((de = readdir(d))) {
    char path[PATH_MAX];
    size_t n = strlen(de->d_name);
    if (n <= 5 || strcmp(de->d_name + n - 5, ".sock") != 0 ||
        fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISSOCK(st.st_mode) || st.st_mtime > old ||
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) < 0 || ag_proxy_engine_answers(path))
      continue;
    (void)unlinkat(dirfd(d), de->d_name, 0); /* best effort */
  }
  closedir(d);
}

/* The short dir exists, is ours and nobody else can put anything in it (0711: a socket is reached by its name, which
 * holds the session's random id; the dir is not listed). */
static int ensure_short_dir(const char *dir, ca_error **err) {
  if (mkdir(dir, 0711) < 0 && errno != EEXIST)
    return ca_error_set_errno(err, errno, "docker proxy: create %s", dir);
  struct stat st;
  if (lstat(dir, &st) < 0)
    return ca_error_set_errno(err, errno, "docker proxy: %s", dir);
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 0022))
    return ca_error_set(err, EPERM, "docker proxy: %s is not a directory that only uid %u can write", dir,
                        (unsigned)geteuid());
  sweep_short_dir(dir);
  return 0;
}

/* <sessions dir>/<id>.sock when that fits a Unix socket address and only we use it (the state dir is 0700), else
 * <short dir>/<id>.sock (0711: others reach it by its name). *share is cleared when there is no short dir. */
static int socket_path(struct ag_state *st, const char *id, bool *share, char **ret, ca_error **err) {
  _cleanup_free_ char *path = ag_session_socket_path(st, id);
  if (!path)
    return ca_error_set(err, ENOMEM, "out of memory");
  _cleanup_free_ char *probe = ag_session_short_socket_path(id);
  if (*share && (!probe || strlen(probe) > SUN_PATH_MAX))
    *share = false; /* no short dir: the socket stays the agent's user's, as the engine's own is not reachable */
  if (strlen(path) <= SUN_PATH_MAX && !*share) {
    *ret = TAKE_PTR(path);
    return 0;
  }
  _cleanup_free_ char *dir = ag_session_short_socket_dir(), *alt = ag_session_short_socket_path(id);
  if (!dir || !alt || strlen(alt) > SUN_PATH_MAX)
    return ca_error_set(err, ENAMETOOLONG,
                        "docker proxy: socket path %s is longer than a Unix socket allows (%zu) and there is no "
                        "short runtime dir (/run as root, else $XDG_RUNTIME_DIR); choose a shorter --state-dir",
                        path, SUN_PATH_MAX);
  int r = ensure_short_dir(dir, err);
  if (r < 0)
    return r;
  *ret = TAKE_PTR(alt);
  return 0;
}

/* connect_engine of a TCP or TLS engine: a stream through the proxy's own clone of the session's client. */
static int tcp_stream(void *ctx, ca_error **err) {
  int fd = -1;
  int r = dk_client_stream(ctx, &fd, err);
  return r < 0 ? r : fd;
}

static void tcp_client_free(void *ctx) {
  dk_client_free(ctx);
}

/* The proxy's config for a tcp:// engine: its streams come from a clone of dk (the proxy's to free), or, when the
 * engine did not answer at the start (a docker-in-docker service still booting), from a client made for it that
 * connects per stream once it is up. */
static int tcp_engine(const char *docker_host, const struct dk_client *dk, struct ag_proxy_config *cfg,
                      ca_error **err) {
  struct dk_client *c = NULL;
  struct dk_client_options o = {.host = docker_host, .lazy = true};
  int r = dk ? dk_client_clone(dk, &c, err) : dk_client_new(&o, &c, err);
  if (r < 0)
    return r;
  cfg->engine_socket = docker_host;
  cfg->connect_engine = tcp_stream;
  cfg->engine_ctx = c;
  cfg->engine_ctx_free = tcp_client_free;
  return 0;
}

int ag_proxy_start_session(struct ag_state *st, const struct ag_registry *reg, const char *docker_host,
                           const struct dk_client *dk, const char *const *extra_labels,
                           int (*reached)(void *ctx, ca_error **err), void *ctx, struct ag_proxy **ret,
                           ca_error **err) {
  const char *engine = ag_proxy_engine_socket(docker_host);
  /* An engine that does not answer yet (a dind service still booting) is reached per request, once it is up. */
  _cleanup_strv_free_ char **labels = ag_session_labels(reg, extra_labels);
  if (!labels)
    return ca_error_set(err, ENOMEM, "out of memory");
  /* Whoever may use the engine's socket may use the session's (an engine not there yet, or a TCP one: only the
   * agent's user). */
  struct stat es = {0};
  bool share =
      engine && stat(engine, &es) == 0 && S_ISSOCK(es.st_mode) && (es.st_uid != geteuid() || (es.st_mode & 0066));
  _cleanup_free_ char *path = NULL;
  int r = socket_path(st, reg->id, &share, &path, err);
  if (r < 0)
    return r;
  struct ag_proxy_config cfg = {.socket_path = path,
                                .engine_socket = engine,
                                .session_id = reg->id,
                                .labels = (const char *const *)labels,
                                .share = share,
                                .uid = es.st_uid,
                                .gid = es.st_gid,
                                .mode = es.st_mode,
                                .engine_reached = reached,
                                .engine_reached_ctx = ctx,
                                .observer = ag_receipt_observer()};
  if (!engine && (r = tcp_engine(docker_host, dk, &cfg, err)) < 0)
    return r;
  return ag_proxy_start(&cfg, ret, err);
}
