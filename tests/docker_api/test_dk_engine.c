/* docker_api against the real engine (DOCKER_HOST, else /var/run/docker.sock) with the test image. Everything a test
 * creates carries AG_TEST_LABEL_KEY=<random id of this test> (test_label.h) and is removed by the test's fini. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "docker.h"
#include "test_label.h"

#define IMAGE "cleanup-test/busybox:latest"

static struct dk_client *cl;
static char test_id[33];
static char label[64];       /* AG_TEST_LABEL_KEY "=<id>" */
static char other_label[64]; /* same key, another id: must never show up in our lists */

static void must(int k, ca_error **ep, const char *what) {
  ca_error *e = *ep;
  cr_assert_geq(k, 0, "%s: %s", what, e ? e->msg : "(no error)");
}

static void random_hex(char out[33]) {
  unsigned char b[16];
  cr_assert_eq(getrandom(b, sizeof(b), 0), (ssize_t)sizeof(b));
  for (int i = 0; i < 16; i++)
    sprintf(out + 2 * i, "%02x", b[i]);
}

static void setup(void) {
  signal(SIGPIPE, SIG_IGN);
  cr_assert_eq(dk_global_init(NULL), 0);
  random_hex(test_id);
  snprintf(label, sizeof(label), AG_TEST_LABEL_KEY "=%s", test_id);
  char other[33];
  random_hex(other);
  snprintf(other_label, sizeof(other_label), AG_TEST_LABEL_KEY "=%s", other);
  ca_error *e = NULL;
  int k = dk_client_new(NULL, &cl, &e);
  must(k, &e, "connect to the engine");
}

/* Removes whatever carries a label of this test, whatever the test did. */
static void remove_labeled(const char *lbl) {
  static const enum dk_kind kinds[] = {DK_CONTAINER, DK_NETWORK, DK_VOLUME};
  for (size_t k = 0; k < ELEMENTSOF(kinds); k++) {
    const struct dk_filter f[] = {{"label", lbl}, {0}};
    struct dk_list *l = NULL;
    if (dk_list(cl, kinds[k], f, &l, NULL) < 0)
      continue;
    const char **ids = calloc(l->n + 1, sizeof(char *));
    ca_error **errs = calloc(l->n + 1, sizeof(ca_error *));
    for (size_t i = 0; i < l->n; i++)
      ids[i] = l->items[i].id;
    (void)dk_remove_many(cl, kinds[k], ids, l->n, 8, errs, NULL); /* best effort in teardown */
    for (size_t i = 0; i < l->n; i++)
      ca_error_free(errs[i]);
    free(errs);
    free(ids);
    dk_list_free(l);
  }
}

static void teardown(void) {
  if (cl) {
    remove_labeled(label);
    remove_labeled(other_label);
  }
  dk_client_free(cl);
  cl = NULL;
}

TestSuite(engine, .init = setup, .fini = teardown, .timeout = 300 * AG_TIMEOUT_SCALE);

static char *create(const char *const *cmd, const char *extra_label, int64_t memory) {
  const char *labels[] = {label, extra_label, NULL};
  struct dk_container_spec spec = {
      .image = IMAGE, .cmd = cmd, .labels = labels, .network_mode = "none", .memory_bytes = memory};
  char *id = NULL;
  ca_error *e = NULL;
  must(dk_container_create(cl, &spec, &id, &e), &e, "create");
  return id;
}

struct output {
  ca_buf out, err;
};

static int on_output(void *ud, enum dk_stream s, const char *data, size_t len) {
  struct output *o = ud;
  return ca_buf_append(s == DK_STDOUT ? &o->out : &o->err, data, len, NULL) < 0 ? 1 : 0;
}

Test(engine, version_and_negotiation) {
  _cleanup_free_ char *version = NULL, *os = NULL;
  ca_error *e = NULL;
  must(dk_engine_version(cl, &version, &os, &e), &e, "version");
  cr_assert(version[0] >= '1' && version[0] <= '9', "version %s", version);
  cr_assert_str_eq(os, "linux");
  /* Debian 12's docker.io (20.10) speaks API 1.41, below our maximum: the engine's version is used. (An engine above
   * our maximum gets ours: test_dk_fake.c covers both sides against a fake daemon.) */
  cr_assert_str_eq(dk_client_api_version(cl), "1.41", "engine %s", version);
  struct dk_client *c2 = NULL;
  must(dk_client_clone(cl, &c2, &e), &e, "clone");
  cr_assert_str_eq(dk_client_api_version(c2), "1.41");
  _cleanup_free_ char *v2 = NULL, *os2 = NULL;
  must(dk_engine_version(c2, &v2, &os2, &e), &e, "version through the clone");
  cr_assert_str_eq(v2, version);
  dk_client_free(c2);
}

/* The client's connections to the engine socket, counted, each checked for close-on-exec: a command the agent starts
 * must not inherit one (it would hold root's Docker socket). A connection's peer is the name the engine's socket was
 * bound to, which need not be the name the client dialled: on a stock Debian 12 host systemd's docker.socket binds
 * /run/docker.sock and the client reaches it as /var/run/docker.sock (/var/run is a link to /run); a dockerd started
 * by hand binds the name it was given. Both names are compared resolved. */
static int engine_connections(const char *socket_path, int *ret_without_cloexec) {
  int n = 0;
  char want[PATH_MAX], got[PATH_MAX];
  if (!realpath(socket_path, want))
    snprintf(want, sizeof(want), "%s", socket_path);
  *ret_without_cloexec = 0;
  for (int fd = 3; fd < 1024; fd++) {
    struct sockaddr_un peer;
    socklen_t len = sizeof(peer);
    if (getpeername(fd, (struct sockaddr *)&peer, &len) < 0 || peer.sun_family != AF_UNIX)
      continue;
    if (strcmp(realpath(peer.sun_path, got) ? got : peer.sun_path, want) != 0)
      continue;
    n++;
    if (!(fcntl(fd, F_GETFD) & FD_CLOEXEC))
      (*ret_without_cloexec)++;
  }
  return n;
}

Test(engine, connections_are_close_on_exec) {
  /* The engine the client uses, as it found it: DOCKER_HOST, else the default socket. */
  const char *host = getenv("DOCKER_HOST");
  cr_assert(!host || !*host || strncmp(host, "unix://", 7) == 0, "the engine is not on a unix socket: %s", host);
  const char *path = host && *host ? host + 7 : "/var/run/docker.sock";
  ca_error *e = NULL;
  struct dk_list *l = NULL;
  const struct dk_filter f[] = {{"label", label}, {0}};
  must(dk_list(cl, DK_CONTAINER, f, &l, &e), &e, "list");
  dk_list_free(l);
  struct dk_list *ls[2] = {0};
  const struct dk_list_query q[] = {{DK_NETWORK, f}, {DK_VOLUME, f}};
  must(dk_list_many(cl, q, 2, ls, &e), &e, "list many");
  dk_list_free(ls[0]);
  dk_list_free(ls[1]);
  int without = 0, n = engine_connections(path, &without);
  cr_assert_geq(n, 1, "no connection to %s left open to check (keep-alive)", path);
  cr_assert_eq(without, 0, "%d of %d connections to %s are not close-on-exec", without, n, path);
}

Test(engine, lazy_client_connects_in_the_background) {
  ca_error *e = NULL;
  struct dk_client *lazy = NULL;
  struct dk_client_options o = {.lazy = true};
  must(dk_client_new(&o, &lazy, &e), &e, "lazy client");
  cr_assert_str_eq(dk_client_api_version(lazy), "", "a lazy client has not negotiated yet");
  dk_client_connect_start(lazy, NULL, NULL);
  const struct dk_filter f[] = {{"label", label}, {0}};
  struct dk_list *l = NULL;
  must(dk_list(lazy, DK_CONTAINER, f, &l, &e), &e, "list through the lazy client");
  cr_assert_eq(l->n, 0);
  dk_list_free(l);
  must(dk_client_connect(lazy, &e), &e, "connect again");
  cr_assert_str_eq(dk_client_api_version(lazy), dk_client_api_version(cl));
  dk_client_free(lazy);

  /* connected on the first call, without dk_client_connect_start */
  must(dk_client_new(&o, &lazy, &e), &e, "lazy client");
  _cleanup_free_ char *version = NULL, *os = NULL;
  must(dk_engine_version(lazy, &version, &os, &e), &e, "version through the lazy client");
  cr_assert_str_eq(os, "linux");
  dk_client_free(lazy);

  /* freed while the background connection may still run */
  must(dk_client_new(&o, &lazy, &e), &e, "lazy client");
  dk_client_connect_start(lazy, NULL, NULL);
  dk_client_free(lazy);
}

/* What the first call in the background saw: run's pressure check makes its network list there. */
struct first_call {
  pthread_t thread;
  char api_version[16];
  unsigned pools;
  int listed;
};

static void first_call(struct dk_client *c, void *userdata) {
  struct first_call *f = userdata;
  f->thread = pthread_self();
  snprintf(f->api_version, sizeof(f->api_version), "%s", dk_client_api_version(c));
  f->listed = dk_network_pools_used(c, &f->pools, NULL);
}

Test(engine, a_lazy_clients_first_call_runs_in_the_background_once_connected) {
  ca_error *e = NULL;
  struct dk_client *lazy = NULL;
  struct dk_client_options o = {.lazy = true};
  must(dk_client_new(&o, &lazy, &e), &e, "lazy client");
  struct first_call f = {.listed = 1};
  dk_client_connect_start(lazy, first_call, &f);
  must(dk_client_connect(lazy, &e), &e, "connect");
  cr_assert_eq(f.listed, 0, "the first call did not run, or its network list failed");
  cr_assert(!pthread_equal(f.thread, pthread_self()), "the first call ran in the caller's thread");
  cr_assert_str_eq(f.api_version, dk_client_api_version(cl), "the first call ran before the negotiation");
  unsigned pools = 0;
  must(dk_network_pools_used(lazy, &pools, &e), &e, "the client works after its first call");
  cr_assert_eq(pools, f.pools);
  dk_client_free(lazy);
}

/* A socket nobody listens on (an engine that died and left it): a lazy client is made, and every call fails with
 * the same connection error. */
Test(engine, lazy_client_reports_a_dead_engine_on_every_call) {
  char dir[] = "/tmp/dk-lazy-XXXXXX", path[64], host[80];
  cr_assert(mkdtemp(dir));
  snprintf(path, sizeof(path), "%s/docker.sock", dir);
  snprintf(host, sizeof(host), "unix://%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0); /* bound, never listening: connect is refused */

  ca_error *e = NULL;
  struct dk_client *lazy = NULL;
  struct dk_client_options o = {.host = host, .retries = -1, .lazy = true};
  must(dk_client_new(&o, &lazy, &e), &e, "a lazy client only checks that the socket exists");
  struct first_call fc = {.listed = 1};
  dk_client_connect_start(lazy, first_call, &fc);
  cr_assert_lt(dk_client_connect(lazy, &e), 0);
  cr_assert_eq(fc.listed, 1, "the first call ran on a client that did not connect");
  cr_assert_eq(dk_error_kind(e), DK_ERR_TRANSIENT, "%s", e->msg);
  cr_assert(strstr(e->msg, "refused") && strstr(e->msg, path), "%s", e->msg);
  char first[512];
  snprintf(first, sizeof(first), "%s", e->msg);
  ca_error_free(e);
  e = NULL;
  struct dk_list *l = NULL;
  cr_assert_lt(dk_list(lazy, DK_CONTAINER, NULL, &l, &e), 0);
  cr_assert_str_eq(e->msg, first, "every call repeats the connection error");
  ca_error_free(e);
  e = NULL;
  dk_client_free(lazy);

  /* a non-lazy client fails at once with the same words */
  o.lazy = false;
  cr_assert_lt(dk_client_new(&o, &lazy, &e), 0);
  cr_assert_str_eq(e->msg, first);
  ca_error_free(e);
  close(fd);
  unlink(path);
  rmdir(dir);
}

Test(engine, full_lifecycle_with_limits_logs_and_exit_code) {
  char tmp[] = "/tmp/dk-bind-XXXXXX";
  cr_assert_not_null(mkdtemp(tmp));
  char file[64];
  snprintf(file, sizeof(file), "%s/greeting", tmp);
  FILE *f = fopen(file, "w");
  fputs("hello from the host", f);
  fclose(f);
  /* the container runs as uid 1234 */
  chmod(tmp, 0755);
  chmod(file, 0644);

  /* The limits as the container sees them: under cgroup v1 (a hybrid or legacy host: the engine's cgroups are v1)
   * in the memory and pids hierarchies, under pure cgroup v2 (a stock Debian 12 host) in its own cgroup's files. */
  struct stat st;
  bool v2 = stat("/sys/fs/cgroup/cgroup.controllers", &st) == 0;
  char script[256];
  snprintf(script, sizeof(script),
           "echo out-$FOO; pwd; id -u; cat %s; cat /host/greeting; echo; echo to-stderr >&2; exit 3",
           v2 ? "/sys/fs/cgroup/memory.max /sys/fs/cgroup/pids.max"
              : "/sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max");
  const char *cmd[] = {"sh", "-c", script, NULL};
  const char *env[] = {"FOO=bar", NULL};
  const char *labels[] = {label, AG_TEST_LABEL_NS "extra=a \"quoted\" =value \xc3\xbc", NULL};
  struct dk_mount mounts[] = {{.type = DK_MOUNT_BIND, .source = tmp, .target = "/host", .read_only = true}};
  struct dk_container_spec spec = {.image = IMAGE,
                                   .cmd = cmd,
                                   .env = env,
                                   .labels = labels,
                                   .working_dir = "/tmp",
                                   .user = "1234",
                                   .mounts = mounts,
                                   .n_mounts = 1,
                                   .network_mode = "none",
                                   .memory_bytes = 64 << 20,
                                   .cpus = 0.5,
                                   .pids_limit = 64,
                                   .stop_signal = "SIGTERM",
                                   .stop_timeout_s = 3,
                                   .init = true};
  _cleanup_free_ char *id = NULL;
  ca_error *e = NULL;
  must(dk_container_create(cl, &spec, &id, &e), &e, "create");

  _cleanup_(dk_wait_freep) struct dk_wait *w = NULL;
  must(dk_wait_begin(cl, id, DK_WAIT_NEXT_EXIT, &w, &e), &e, "wait begin");
  must(dk_container_start(cl, id, &e), &e, "start");
  struct output o = {.out = CA_BUF_INIT(1 << 20), .err = CA_BUF_INIT(1 << 20)};
  struct dk_logs_options lo = {.follow = true, .on_output = on_output, .userdata = &o};
  struct dk_cancel deadline = {.deadline_usec = ca_now_monotonic_usec() + 60 * 1000000ULL};
  must(dk_container_logs(cl, id, &lo, &deadline, &e), &e, "logs");
  int code = -1;
  must(dk_wait_end(w, &deadline, &code, &e), &e, "wait end");
  cr_assert_eq(code, 3);
  cr_assert_str_eq(ca_buf_str(&o.out), "out-bar\n/tmp\n1234\n67108864\n64\nhello from the host\n");
  cr_assert_str_eq(ca_buf_str(&o.err), "to-stderr\n");

  _cleanup_(dk_container_info_freep) struct dk_container_info *info = NULL;
  must(dk_container_inspect(cl, id, &info, &e), &e, "inspect");
  cr_assert_str_eq(info->id, id);
  cr_assert_str_eq(info->status, "exited");
  cr_assert_eq(info->exit_code, 3);
  cr_assert_not(info->running);
  cr_assert_not(info->oom_killed);
  cr_assert_str_eq(info->image, IMAGE);
  cr_assert_str_eq(dk_labels_get(&info->labels, AG_TEST_LABEL_KEY), test_id);
  cr_assert_str_eq(dk_labels_get(&info->labels, AG_TEST_LABEL_NS "extra"), "a \"quoted\" =value \xc3\xbc");
  uint64_t now = ca_now_realtime_usec();
  /* under load the engine may stamp StartedAt after a fast process already exited: both follow creation */
  cr_assert(info->created_us > 0 && info->created_us <= info->started_us && info->created_us <= info->finished_us,
            "created %lld started %lld finished %lld", (long long)info->created_us, (long long)info->started_us,
            (long long)info->finished_us);
  cr_assert_lt((uint64_t)info->finished_us, now + 5000000);
  cr_assert_gt((uint64_t)info->created_us, now - 120000000);

  /* non-following logs of the exited container give the same output again */
  ca_buf_reset(&o.out);
  ca_buf_reset(&o.err);
  lo.follow = false;
  lo.no_stderr = true;
  must(dk_container_logs(cl, id, &lo, NULL, &e), &e, "logs again");
  cr_assert_str_eq(ca_buf_str(&o.out), "out-bar\n/tmp\n1234\n67108864\n64\nhello from the host\n");
  cr_assert_eq(o.err.len, 0);

  cr_assert_eq(dk_remove(cl, DK_CONTAINER, id, &e), 0, "remove: %s", e ? e->msg : "");
  cr_assert_eq(dk_remove(cl, DK_CONTAINER, id, &e), 1, "second remove reports already gone");
  ca_buf_free(&o.out);
  ca_buf_free(&o.err);
  unlink(file);
  rmdir(tmp);
}

Test(engine, kill_running_container) {
  const char *cmd[] = {"sleep", "300", NULL};
  _cleanup_free_ char *id = create(cmd, NULL, 0);
  ca_error *e = NULL;
  _cleanup_(dk_wait_freep) struct dk_wait *w = NULL;
  must(dk_wait_begin(cl, id, DK_WAIT_NEXT_EXIT, &w, &e), &e, "wait begin");
  must(dk_container_start(cl, id, &e), &e, "start");
  cr_assert_eq(dk_container_start(cl, id, &e), 0, "starting a running container is fine");

  /* the wait does not return while the container runs */
  struct dk_cancel soon = {.deadline_usec = ca_now_monotonic_usec() + 300000};
  int code = -1;
  _cleanup_error_ ca_error *te = NULL;
  cr_assert_eq(dk_wait_end(w, &soon, &code, &te), -ETIMEDOUT);

  cr_assert_eq(dk_container_kill(cl, id, NULL, &e), 0, "kill: %s", e ? e->msg : "");
  must(dk_wait_end(w, NULL, &code, &e), &e, "wait end after kill");
  cr_assert_eq(code, 137);
  cr_assert_eq(dk_container_kill(cl, id, "SIGTERM", &e), 1, "kill of a stopped container reports not running");
  cr_assert_eq(dk_container_stop(cl, id, 1, &e), 1, "stop of a stopped container reports not running");

  _cleanup_error_ ca_error *ne = NULL;
  cr_assert_lt(dk_container_kill(cl, "no-such-container-dk-test", NULL, &ne), 0);
  cr_assert_eq(dk_error_kind(ne), DK_ERR_NOT_FOUND, "%s", ne->msg);
}

Test(engine, stop_with_grace_period) {
  const char *cmd[] = {"sleep", "300", NULL};
  _cleanup_free_ char *id = create(cmd, NULL, 0);
  ca_error *e = NULL;
  must(dk_container_start(cl, id, &e), &e, "start");
  uint64_t t0 = ca_now_monotonic_usec();
  cr_assert_eq(dk_container_stop(cl, id, 1, &e), 0, "stop: %s", e ? e->msg : "");
  uint64_t took = ca_now_monotonic_usec() - t0;
  _cleanup_(dk_container_info_freep) struct dk_container_info *info = NULL;
  must(dk_container_inspect(cl, id, &info, &e), &e, "inspect");
  cr_assert_str_eq(info->status, "exited");
  cr_assert_not(info->running);
  /* sleep as PID 1 ignores SIGTERM once it runs: then the stop waits the grace period and kills */
  if (info->exit_code == 137)
    cr_assert_geq(took, 900000, "killed before the grace period: %llu us", (unsigned long long)took);
}

Test(engine, force_remove_running_container) {
  const char *cmd[] = {"sleep", "300", NULL};
  _cleanup_free_ char *id = create(cmd, NULL, 0);
  ca_error *e = NULL;
  must(dk_container_start(cl, id, &e), &e, "start");
  cr_assert_eq(dk_remove(cl, DK_CONTAINER, id, &e), 0, "remove: %s", e ? e->msg : "");
  struct dk_container_info *info = NULL;
  _cleanup_error_ ca_error *ie = NULL;
  cr_assert_lt(dk_container_inspect(cl, id, &info, &ie), 0);
  cr_assert_eq(dk_error_kind(ie), DK_ERR_NOT_FOUND);
  cr_assert(strstr(ie->msg, "No such container"), "%s", ie->msg);
  cr_assert_eq(ie->detail, 404);
}

/* Runs one container that goes over its memory limit; returns whether OOMKilled was reported within a second. */
static bool one_oom_run(void) {
  /* dd allocates and touches a 64 MiB block: far over the 8 MiB limit without swap. The shim of containerd 1.6
   * starts watching the cgroup for OOM only after `runc start` returns: an OOM before that is lost for good, which
   * a loaded host makes likely (4 in 30 with the CPU oversubscribed six times). The second of sleep first lets the
   * watch begin (0 in 30 under the same load). */
  const char *cmd[] = {"sh", "-c", "sleep 1; dd if=/dev/zero of=/dev/null bs=64M count=1; s=$?; sleep 0.2; exit $s",
                       NULL};
  _cleanup_free_ char *id = create(cmd, NULL, 8 << 20);
  ca_error *e = NULL;
  _cleanup_(dk_wait_freep) struct dk_wait *w = NULL;
  must(dk_wait_begin(cl, id, DK_WAIT_NEXT_EXIT, &w, &e), &e, "wait begin");
  must(dk_container_start(cl, id, &e), &e, "start");
  int code = -1;
  must(dk_wait_end(w, NULL, &code, &e), &e, "wait end");
  cr_assert_eq(code, 137);
  /* the engine handles the OOM and the exit notifications separately: OOMKilled may turn true after the wait */
  for (int i = 0; i < 10; i++) {
    _cleanup_(dk_container_info_freep) struct dk_container_info *info = NULL;
    must(dk_container_inspect(cl, id, &info, &e), &e, "inspect");
    cr_assert_eq(info->exit_code, 137);
    if (info->oom_killed)
      return true;
    usleep(100000);
  }
  return false;
}

Test(engine, oom_killed_is_reported) {
  /* Should the engine still lose an OOM notification (OOMKilled then stays false for good), three containers in a
   * row without it mean the field is not read. */
  int misses = 0;
  while (!one_oom_run()) {
    misses++;
    cr_assert_lt(misses, 3, "OOMKilled never reported in %d runs", misses);
  }
  if (misses)
    fprintf(stderr, "oom: OOMKilled was lost by the engine %d time(s) before being reported\n", misses);
}

Test(engine, auto_remove_with_wait_removed) {
  const char *cmd[] = {"sh", "-c", "exit 7", NULL};
  const char *labels[] = {label, NULL};
  struct dk_container_spec spec = {
      .image = IMAGE, .cmd = cmd, .labels = labels, .network_mode = "none", .auto_remove = true};
  _cleanup_free_ char *id = NULL;
  ca_error *e = NULL;
  must(dk_container_create(cl, &spec, &id, &e), &e, "create");
  _cleanup_(dk_wait_freep) struct dk_wait *w = NULL;
  must(dk_wait_begin(cl, id, DK_WAIT_REMOVED, &w, &e), &e, "wait begin");
  must(dk_container_start(cl, id, &e), &e, "start");
  int code = -1;
  must(dk_wait_end(w, NULL, &code, &e), &e, "wait end");
  cr_assert_eq(code, 7);
  struct dk_container_info *info = NULL;
  _cleanup_error_ ca_error *ie = NULL;
  cr_assert_lt(dk_container_inspect(cl, id, &info, &ie), 0);
  cr_assert_eq(dk_error_kind(ie), DK_ERR_NOT_FOUND, "still there after removed: %s", ie->msg);
}

Test(engine, errors_carry_the_daemon_message) {
  const char *cmd[] = {"/no/such/binary", NULL};
  _cleanup_free_ char *id = create(cmd, NULL, 0);
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_lt(dk_container_start(cl, id, &e), 0);
  cr_assert_eq(dk_error_kind(e), DK_ERR_FINAL, "%s", e->msg);
  cr_assert(strstr(e->msg, "/no/such/binary"), "message lacks the daemon's text: %s", e->msg);
  cr_assert_geq(e->detail, 400);

  const char *labels[] = {label, NULL};
  struct dk_container_spec bad = {.image = "cleanup-test/no-such-image:latest", .labels = labels};
  char *none = NULL;
  _cleanup_error_ ca_error *ie = NULL;
  cr_assert_lt(dk_container_create(cl, &bad, &none, &ie), 0);
  cr_assert_eq(dk_error_kind(ie), DK_ERR_NOT_FOUND, "%s", ie->msg);
  cr_assert(strstr(ie->msg, "no-such-image"), "%s", ie->msg);

  const char *bad_labels[] = {"k=line\nbreak", NULL};
  struct dk_container_spec badl = {.image = IMAGE, .labels = bad_labels};
  _cleanup_error_ ca_error *le = NULL;
  cr_assert_eq(dk_container_create(cl, &badl, &none, &le), -EINVAL);
}

Test(engine, name_conflict_and_resent_create) {
  char name[64];
  snprintf(name, sizeof(name), "dk-test-%s", test_id);
  const char *cmd[] = {"true", NULL};
  const char *labels[] = {label, NULL};
  struct dk_container_spec spec = {.image = IMAGE, .name = name, .cmd = cmd, .labels = labels};
  _cleanup_free_ char *id = NULL, *again = NULL;
  ca_error *e = NULL;
  must(dk_container_create(cl, &spec, &id, &e), &e, "create");
  /* the same request again (as libcurl re-sends on a dead reused connection): it is ours */
  must(dk_container_create(cl, &spec, &again, &e), &e, "create again");
  cr_assert_str_eq(again, id);
  /* someone else's container of that name is a conflict */
  const char *theirs[] = {other_label, NULL};
  struct dk_container_spec other = {.image = IMAGE, .name = name, .cmd = cmd, .labels = theirs};
  char *none = NULL;
  _cleanup_error_ ca_error *ce = NULL;
  cr_assert_lt(dk_container_create(cl, &other, &none, &ce), 0);
  cr_assert_eq(dk_error_kind(ce), DK_ERR_CONFLICT, "%s", ce->msg);
  cr_assert_eq(ce->detail, 409);
}

static bool contains(const struct dk_list *l, const char *id) {
  for (size_t i = 0; i < l->n; i++)
    if (strcmp(l->items[i].id, id) == 0)
      return true;
  return false;
}

Test(engine, list_by_label_returns_exactly_ours) {
  const char *cmd[] = {"true", NULL};
  char *ours[3];
  for (int i = 0; i < 3; i++)
    ours[i] = create(cmd, i == 0 ? AG_TEST_LABEL_NS "odd=a \"b\"=c \xc3\xbc" : NULL, 0);
  const char *their_labels[] = {other_label, NULL};
  struct dk_container_spec spec = {.image = IMAGE, .cmd = cmd, .labels = their_labels};
  _cleanup_free_ char *theirs = NULL;
  ca_error *e = NULL;
  must(dk_container_create(cl, &spec, &theirs, &e), &e, "create theirs");
  must(dk_container_start(cl, ours[1], &e), &e, "start");

  const struct dk_filter f[] = {{"label", label}, {0}};
  _cleanup_(dk_list_freep) struct dk_list *l = NULL;
  must(dk_list(cl, DK_CONTAINER, f, &l, &e), &e, "list");
  cr_assert_eq(l->n, 3);
  for (int i = 0; i < 3; i++)
    cr_assert(contains(l, ours[i]), "missing %s", ours[i]);
  cr_assert_not(contains(l, theirs));
  for (size_t i = 0; i < l->n; i++) {
    cr_assert_str_eq(dk_item_label(&l->items[i], AG_TEST_LABEL_KEY), test_id);
    cr_assert_str_eq(l->items[i].image, IMAGE);
    cr_assert_not_null(l->items[i].names[0]);
    cr_assert_neq(l->items[i].names[0][0], '/');
    cr_assert_gt(l->items[i].created_us, 0);
  }

  /* a label value with quotes, '=' and unicode travels intact through the filter */
  const struct dk_filter odd[] = {{"label", label}, {"label", AG_TEST_LABEL_NS "odd=a \"b\"=c \xc3\xbc"}, {0}};
  _cleanup_(dk_list_freep) struct dk_list *lo = NULL;
  must(dk_list(cl, DK_CONTAINER, odd, &lo, &e), &e, "list odd");
  cr_assert_eq(lo->n, 1);
  cr_assert_str_eq(lo->items[0].id, ours[0]);

  /* status values are ORed; created ones are listed too */
  const struct dk_filter st[] = {{"label", label}, {"status", "created"}, {"status", "dead"}, {0}};
  _cleanup_(dk_list_freep) struct dk_list *ls = NULL;
  must(dk_list(cl, DK_CONTAINER, st, &ls, &e), &e, "list by status");
  cr_assert_eq(ls->n, 2, "created ones: %zu", ls->n);
  cr_assert_not(contains(ls, ours[1]));
  for (size_t i = 0; i < ls->n; i++)
    cr_assert_str_eq(ls->items[i].state, "created");

  const struct dk_filter badf[] = {{"no-such-filter", "x"}, {0}};
  struct dk_list *lb = NULL;
  _cleanup_error_ ca_error *fe = NULL;
  cr_assert_lt(dk_list(cl, DK_CONTAINER, badf, &lb, &fe), 0);
  cr_assert_eq(fe->detail, 400, "%s", fe->msg);
  for (int i = 0; i < 3; i++)
    free(ours[i]);
}

Test(engine, list_many_lists_each_query_in_one_go) {
  char name[64];
  snprintf(name, sizeof(name), "dk-kinds-%s", test_id);
  const char *labels[] = {label, NULL};
  const char *cmd[] = {"true", NULL};
  _cleanup_free_ char *net = NULL, *vol = NULL, *ctr = create(cmd, NULL, 0);
  ca_error *e = NULL;
  must(dk_network_create(cl, name, labels, true, &net, &e), &e, "network create");
  must(dk_volume_create(cl, name, labels, &vol, &e), &e, "volume create");
  char theirs_name[80];
  snprintf(theirs_name, sizeof(theirs_name), "dk-kinds-theirs-%s", test_id);
  const char *their_labels[] = {other_label, NULL};
  _cleanup_free_ char *their_vol = NULL;
  must(dk_volume_create(cl, theirs_name, their_labels, &their_vol, &e), &e, "their volume create");

  const struct dk_filter f[] = {{"label", label}, {0}};
  const struct dk_filter theirs[] = {{"label", other_label}, {0}};
  /* each listing by its own filters, in one call: ours by our label, theirs by theirs */
  const struct dk_list_query q[] = {{DK_VOLUME, f},      {DK_CONTAINER, f},      {DK_NETWORK, f},
                                    {DK_VOLUME, theirs}, {DK_CONTAINER, theirs}, {DK_NETWORK, theirs}};
  struct dk_list *l[6] = {0};
  must(dk_list_many(cl, q, 6, l, &e), &e, "list many");
  cr_assert(l[0]->n == 1 && contains(l[0], name), "volumes: %zu", l[0]->n);
  cr_assert(l[1]->n == 1 && contains(l[1], ctr), "containers: %zu", l[1]->n);
  cr_assert(l[2]->n == 1 && contains(l[2], net), "networks: %zu", l[2]->n);
  cr_assert(l[3]->n == 1 && contains(l[3], theirs_name), "their volumes: %zu", l[3]->n);
  cr_assert(l[4]->n == 0 && l[5]->n == 0, "their containers %zu, networks %zu", l[4]->n, l[5]->n);
  for (int i = 0; i < 6; i++)
    dk_list_free(l[i]);

  /* more than the connections it may open: refused, nothing listed */
  const struct dk_list_query seven[] = {q[0], q[1], q[2], q[3], q[4], q[5], q[0]};
  cr_assert_lt(dk_list_many(cl, seven, 7, l, &e), 0);
  cr_assert_eq(e->code, EINVAL, "%s", e->msg);
  ca_error_free(e);
  e = NULL;

  /* a bad filter fails the whole call with the daemon's word and returns no lists */
  const struct dk_filter badf[] = {{"no-such-filter", "x"}, {0}};
  struct dk_list *lb[3] = {(struct dk_list *)1, (struct dk_list *)1, (struct dk_list *)1};
  const struct dk_list_query bad[] = {{DK_VOLUME, badf}, {DK_CONTAINER, badf}, {DK_NETWORK, badf}};
  cr_assert_lt(dk_list_many(cl, bad, 3, lb, &e), 0);
  cr_assert_eq(e->detail, 400, "%s", e->msg);
  cr_assert(!lb[0] && !lb[1] && !lb[2]);
  ca_error_free(e);
}

Test(engine, networks_and_volumes_lifecycle) {
  char name[64];
  snprintf(name, sizeof(name), "dk-test-%s", test_id);
  const char *labels[] = {label, AG_TEST_LABEL_NS "kind=net", NULL};
  _cleanup_free_ char *net = NULL, *vol = NULL, *anon = NULL;
  ca_error *e = NULL;
  must(dk_network_create(cl, name, labels, true, &net, &e), &e, "network create");
  must(dk_volume_create(cl, name, labels, &vol, &e), &e, "volume create");
  cr_assert_str_eq(vol, name);
  must(dk_volume_create(cl, NULL, labels, &anon, &e), &e, "anonymous volume create");
  cr_assert_str_neq(anon, name);

  const struct dk_filter f[] = {{"label", label}, {0}};
  _cleanup_(dk_list_freep) struct dk_list *nl = NULL, *vl = NULL;
  must(dk_list(cl, DK_NETWORK, f, &nl, &e), &e, "network list");
  cr_assert_eq(nl->n, 1);
  cr_assert_str_eq(nl->items[0].id, net);
  cr_assert_str_eq(nl->items[0].names[0], name);
  cr_assert_str_eq(dk_item_label(&nl->items[0], AG_TEST_LABEL_NS "kind"), "net");
  cr_assert_gt(nl->items[0].created_us, 0);
  must(dk_list(cl, DK_VOLUME, f, &vl, &e), &e, "volume list");
  cr_assert_eq(vl->n, 2);
  cr_assert(contains(vl, name) && contains(vl, anon));

  /* a container using the volume keeps it: the removal is a conflict, not a success */
  const char *cmd[] = {"sh", "-c", "echo kept > /data/f", NULL};
  const char *clabels[] = {label, NULL};
  struct dk_mount m[] = {{.type = DK_MOUNT_VOLUME, .source = name, .target = "/data"}};
  struct dk_container_spec spec = {
      .image = IMAGE, .cmd = cmd, .labels = clabels, .mounts = m, .n_mounts = 1, .network_mode = "none"};
  _cleanup_free_ char *cid = NULL;
  must(dk_container_create(cl, &spec, &cid, &e), &e, "create with volume");
  _cleanup_error_ ca_error *ve = NULL;
  cr_assert_lt(dk_remove(cl, DK_VOLUME, name, &ve), 0);
  cr_assert_eq(dk_error_kind(ve), DK_ERR_CONFLICT, "%s", ve->msg);
  cr_assert_eq(dk_remove(cl, DK_CONTAINER, cid, &e), 0);

  cr_assert_eq(dk_remove(cl, DK_NETWORK, net, &e), 0, "%s", e ? e->msg : "");
  cr_assert_eq(dk_remove(cl, DK_NETWORK, net, &e), 1);
  cr_assert_eq(dk_remove(cl, DK_VOLUME, name, &e), 0, "%s", e ? e->msg : "");
  cr_assert_eq(dk_remove(cl, DK_VOLUME, name, &e), 1);
  cr_assert_eq(dk_remove(cl, DK_VOLUME, anon, &e), 0);
  _cleanup_(dk_list_freep) struct dk_list *nl2 = NULL, *vl2 = NULL;
  must(dk_list(cl, DK_NETWORK, f, &nl2, &e), &e, "network list");
  must(dk_list(cl, DK_VOLUME, f, &vl2, &e), &e, "volume list");
  cr_assert_eq(nl2->n + vl2->n, 0);
}

/* ---- events ------------------------------------------------------------------------------------------------ */

struct seen {
  pthread_mutex_t lock;
  char id[80];
  bool start, die;
  char exit_code[16];
  int result;
  ca_error *err;
  struct dk_client *c;
  struct dk_cancel cancel;
  const struct dk_filter *filters;
  int64_t since_us;
};

static int on_event(void *ud, const struct dk_event *ev) {
  struct seen *s = ud;
  pthread_mutex_lock(&s->lock);
  if (strcmp(ev->type, "container") == 0 && strcmp(ev->id, s->id) == 0) {
    if (strcmp(ev->action, "start") == 0)
      s->start = true;
    if (strcmp(ev->action, "die") == 0) {
      s->die = true;
      const char *c = dk_labels_get(&ev->attributes, "exitCode");
      snprintf(s->exit_code, sizeof(s->exit_code), "%s", c ? c : "");
    }
  }
  bool done = s->die;
  pthread_mutex_unlock(&s->lock);
  return done ? 1 : 0;
}

static void *events_thread(void *arg) {
  struct seen *s = arg;
  struct dk_events_options o = {.filters = s->filters, .since_us = s->since_us, .on_event = on_event, .userdata = s};
  s->result = dk_events(s->c, &o, &s->cancel, &s->err);
  return NULL;
}

Test(engine, events_show_start_and_die_of_our_container) {
  const char *cmd[] = {"sh", "-c", "exit 5", NULL};
  _cleanup_free_ char *id = create(cmd, NULL, 0);
  const struct dk_filter f[] = {{"type", "container"}, {"label", label}, {0}};
  struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER, .filters = f};
  snprintf(s.id, sizeof(s.id), "%s", id);
  s.cancel.deadline_usec = ca_now_monotonic_usec() + 60 * 1000000ULL;
  /* replay from just before the subscription, so events between thread start and subscription are not lost */
  s.since_us = (int64_t)ca_now_realtime_usec() - 1000000;
  ca_error *e = NULL;
  must(dk_client_clone(cl, &s.c, &e), &e, "clone");
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, events_thread, &s), 0);
  must(dk_container_start(cl, id, &e), &e, "start");
  pthread_join(t, NULL);
  cr_assert_eq(s.result, 0, "events: %s", s.err ? s.err->msg : "");
  cr_assert(s.start, "no start event");
  cr_assert(s.die, "no die event");
  cr_assert_str_eq(s.exit_code, "5");
  dk_client_free(s.c);
}

Test(engine, events_cancel_from_another_thread_and_deadline) {
  char none[96];
  snprintf(none, sizeof(none), "%s-nothing-matches", label);
  const struct dk_filter f[] = {{"label", none}, {0}};
  struct seen s = {.lock = PTHREAD_MUTEX_INITIALIZER, .filters = f};
  ca_error *e = NULL;
  must(dk_client_clone(cl, &s.c, &e), &e, "clone");
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, events_thread, &s), 0);
  usleep(300000);
  uint64_t t0 = ca_now_monotonic_usec();
  dk_cancel_request(&s.cancel);
  pthread_join(t, NULL);
  uint64_t took = ca_now_monotonic_usec() - t0;
  cr_assert_eq(s.result, -ECANCELED, "result %d: %s", s.result, s.err ? s.err->msg : "");
  cr_assert_lt(took, 500000, "cancel took %llu us", (unsigned long long)took);
  ca_error_free(s.err);

  /* the same client works after a cancelled stream, and a deadline ends the next one */
  struct dk_events_options o = {.filters = f, .on_event = on_event, .userdata = &s};
  struct dk_cancel dl = {.deadline_usec = ca_now_monotonic_usec() + 200000};
  _cleanup_error_ ca_error *de = NULL;
  t0 = ca_now_monotonic_usec();
  cr_assert_eq(dk_events(s.c, &o, &dl, &de), -ETIMEDOUT);
  took = ca_now_monotonic_usec() - t0;
  cr_assert(took >= 150000 && took < 700000, "deadline took %llu us", (unsigned long long)took);
  dk_client_free(s.c);
}

/* ---- bulk -------------------------------------------------------------------------------------------------- */

struct creator {
  struct dk_client *c;
  char **ids;
  size_t from, to;
  int failures;
};

static void *create_range(void *arg) {
  struct creator *cr = arg;
  const char *cmd[] = {"sleep", "300", NULL};
  const char *labels[] = {label, NULL};
  struct dk_container_spec spec = {.image = IMAGE, .cmd = cmd, .labels = labels, .network_mode = "none"};
  for (size_t i = cr->from; i < cr->to; i++) {
    ca_error *e = NULL;
    if (dk_container_create(cr->c, &spec, &cr->ids[i], &e) < 0 || dk_container_start(cr->c, cr->ids[i], &e) < 0)
      cr->failures++;
    ca_error_free(e);
  }
  return NULL;
}

Test(engine, bulk_removal_of_50_running_containers) {
  enum { N = 50, THREADS = 4 };
  char *ids[N + 2] = {0};
  struct creator cr[THREADS];
  pthread_t t[THREADS];
  ca_error *e = NULL;
  for (int i = 0; i < THREADS; i++) {
    cr[i] = (struct creator){.ids = ids, .from = (size_t)i * N / THREADS, .to = (size_t)(i + 1) * N / THREADS};
    must(dk_client_clone(cl, &cr[i].c, &e), &e, "clone");
    cr_assert_eq(pthread_create(&t[i], NULL, create_range, &cr[i]), 0);
  }
  int failures = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    failures += cr[i].failures;
    dk_client_free(cr[i].c);
  }
  cr_assert_eq(failures, 0);
  const struct dk_filter running[] = {{"label", label}, {"status", "running"}, {0}};
  _cleanup_(dk_list_freep) struct dk_list *before = NULL;
  must(dk_list(cl, DK_CONTAINER, running, &before, &e), &e, "list");
  cr_assert_eq(before->n, N);

  /* two ids that do not exist count as gone, not as failures */
  ids[N] = strdup("dk-test-no-such-container-1");
  ids[N + 1] = strdup("dk-test-no-such-container-2");
  ca_error *errs[N + 2] = {0};
  uint64_t t0 = ca_now_monotonic_usec();
  int k = dk_remove_many(cl, DK_CONTAINER, (const char *const *)ids, N + 2, 8, errs, &e);
  uint64_t took = ca_now_monotonic_usec() - t0;
  cr_assert_eq(k, 0, "bulk: %s", e ? e->msg : "");
  for (int i = 0; i < N + 2; i++)
    cr_assert_null(errs[i], "item %d: %s", i, errs[i]->msg);
  const struct dk_filter f[] = {{"label", label}, {0}};
  _cleanup_(dk_list_freep) struct dk_list *after = NULL;
  must(dk_list(cl, DK_CONTAINER, f, &after, &e), &e, "list");
  cr_assert_eq(after->n, 0, "%zu left", after->n);
  /* criterion's own logging leaks under LeakSanitizer: plain stderr */
  fprintf(stderr, "bulk: removed %d running containers in %.0f ms\n", N, took / 1000.0);
  for (int i = 0; i < N + 2; i++)
    free(ids[i]);
}

Test(engine, bulk_reports_each_failure) {
  /* a volume in use cannot be removed: that item fails, the others succeed */
  char name[64];
  snprintf(name, sizeof(name), "dk-test-used-%s", test_id);
  const char *labels[] = {label, NULL};
  _cleanup_free_ char *used = NULL, *free1 = NULL, *free2 = NULL, *cid = NULL;
  ca_error *e = NULL;
  must(dk_volume_create(cl, name, labels, &used, &e), &e, "volume");
  must(dk_volume_create(cl, NULL, labels, &free1, &e), &e, "volume");
  must(dk_volume_create(cl, NULL, labels, &free2, &e), &e, "volume");
  const char *cmd[] = {"true", NULL};
  struct dk_mount m[] = {{.type = DK_MOUNT_VOLUME, .source = name, .target = "/data"}};
  struct dk_container_spec spec = {.image = IMAGE, .cmd = cmd, .labels = labels, .mounts = m, .n_mounts = 1};
  must(dk_container_create(cl, &spec, &cid, &e), &e, "create");
  const char *ids[] = {free1, used, free2};
  ca_error *errs[3] = {0};
  _cleanup_error_ ca_error *be = NULL;
  cr_assert_lt(dk_remove_many(cl, DK_VOLUME, ids, 3, 2, errs, &be), 0);
  cr_assert_null(errs[0]);
  cr_assert_not_null(errs[1]);
  cr_assert_null(errs[2]);
  cr_assert_eq(dk_error_kind(errs[1]), DK_ERR_CONFLICT, "%s", errs[1]->msg);
  cr_assert(strstr(be->msg, "1 of 3 failed"), "%s", be->msg);
  ca_error_free(errs[1]);
}

Test(engine, bulk_starts_nothing_after_its_deadline) {
  /* a deadline already passed: every item fails with ETIMEDOUT, untried, and is still there */
  const char *labels[] = {label, NULL};
  _cleanup_free_ char *v1 = NULL, *v2 = NULL;
  ca_error *e = NULL;
  must(dk_volume_create(cl, NULL, labels, &v1, &e), &e, "volume");
  must(dk_volume_create(cl, NULL, labels, &v2, &e), &e, "volume");
  const char *ids[] = {v1, v2};
  ca_error *errs[2] = {0};
  _cleanup_error_ ca_error *be = NULL;
  cr_assert_lt(dk_remove_many_until(cl, DK_VOLUME, ids, 2, 8, ca_now_monotonic_usec(), errs, NULL, &be), 0);
  for (int i = 0; i < 2; i++) {
    cr_assert_not_null(errs[i], "item %d was removed after the deadline", i);
    cr_expect_eq(errs[i]->code, ETIMEDOUT, "%s", errs[i]->msg);
    cr_expect(strstr(errs[i]->msg, "before it was tried"), "%s", errs[i]->msg);
    ca_error_free(errs[i]);
  }
  cr_assert(strstr(be->msg, "2 of 2 failed"), "%s", be->msg);
  /* without a deadline the same removal goes through; an id asked twice was gone the second time */
  const char *again[] = {v1, v2, v1};
  ca_error *errs3[3] = {0};
  bool gone[3] = {0};
  cr_assert_eq(dk_remove_many_until(cl, DK_VOLUME, again, 3, 1, 0, errs3, gone, &e), 0, "%s", e ? e->msg : "");
  cr_expect(!gone[0] && !gone[1] && gone[2], "gone: %d %d %d", gone[0], gone[1], gone[2]);
}
