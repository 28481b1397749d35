#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <limits.h>
#include <signal.h>
#include <sched.h>
#include <stdio.h>
#include <sys/mount.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "cli_run.h"
#include "scenario.h"
#include "session.h"
#include "test_label.h"

#define CGROUP2 "/sys/fs/cgroup/unified"

static const char *cgroup2_mount(void) {
  struct stat st;
  return stat(CGROUP2 "/cgroup.procs", &st) == 0 ? CGROUP2 : "/sys/fs/cgroup";
}

void scenario_setup(struct scenario *s) {
  memset(s, 0, sizeof(*s));
  /* The engine first: a setup that fails leaves nothing behind (the teardown does not run then). */
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(dk_client_new(NULL, &s->dk, &err), 0, "the docker suites need a Docker engine: %s", err ? err->msg : "");
  /* Not under /tmp: --private-tmp hides the host's /tmp from the command. */
  strcpy(s->dir, "/var/tmp/ag-run-test-XXXXXX");
  cr_assert_not_null(mkdtemp(s->dir));
  snprintf(s->state, sizeof(s->state), "%s/state", s->dir);
  char id[9];
  snprintf(id, sizeof(id), "%s", s->dir + strlen(s->dir) - 6);
  snprintf(s->cgroup_root, sizeof(s->cgroup_root), "%s/cleanup-agent-test-%s", cgroup2_mount(), id);
  snprintf(s->test_label, sizeof(s->test_label), AG_TEST_LABEL_KEY "=%s", id);
}

static void remove_cgroup_tree(const char *path) {
  DIR *d = opendir(path);
  if (!d)
    return;
  struct dirent *de;
  while ((de = readdir(d)))
    if (de->d_type == DT_DIR && de->d_name[0] != '.') {
      char sub[512];
      snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name);
      remove_cgroup_tree(sub);
    }
  closedir(d);
  rmdir(path);
}

/* The v1 parents of a hybrid host that bear root's name (under the mount, or under this process's own v1 cgroup, as
 * the module makes them), with whatever leaves a killed session left in them: no test leaves a cgroup behind. */
static void remove_v1_trees(const char *root) {
  const char *base = strrchr(root, '/');
  if (!base)
    return;
  static const char *const controllers[] = {"memory", "pids", "cpu"};
  for (size_t c = 0; c < 3; c++)
    for (int depth = 0; depth < 3; depth++) {
      char pattern[256];
      snprintf(pattern, sizeof(pattern), "/sys/fs/cgroup/%s%s%s", controllers[c],
               depth == 0   ? ""
               : depth == 1 ? "/*"
                            : "/*/*",
               base);
      glob_t g;
      if (glob(pattern, GLOB_ONLYDIR, NULL, &g) == 0)
        for (size_t i = 0; i < g.gl_pathc; i++)
          remove_cgroup_tree(g.gl_pathv[i]);
      globfree(&g);
    }
}

void scenario_teardown(struct scenario *s) {
  if (s->dk) {
    const struct dk_filter f[] = {{"label", s->test_label}, {NULL, NULL}};
    enum dk_kind kinds[] = {DK_CONTAINER, DK_NETWORK, DK_VOLUME};
    for (size_t k = 0; k < 3; k++) {
      struct dk_list *l = NULL;
      if (dk_list(s->dk, kinds[k], f, &l, NULL) == 0) {
        for (size_t i = 0; i < l->n; i++)
          (void)dk_remove(s->dk, kinds[k], l->items[i].id, NULL);
        dk_list_free(l);
      }
    }
    dk_client_free(s->dk);
  }
  remove_cgroup_tree(s->cgroup_root);
  remove_v1_trees(s->cgroup_root);
  /* The agent also made v1 parents of the same name on hybrid hosts: the module removes what it made. */
  cg_root_options o = {.root = s->cgroup_root};
  cg_root *root = NULL;
  if (cg_root_open(&o, &root, NULL) == 0) {
    (void)cg_root_remove(root, NULL); /* the assertions above already said what was left */
    cg_root_free(root);
  }
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf --one-file-system '%s'", s->dir);
  cr_expect_eq(system(cmd), 0, "cannot remove %s", s->dir);
}

const char *scenario_script(struct scenario *s, const char *name, const char *body) {
  static char path[256];
  snprintf(path, sizeof(path), "%s/%s", s->dir, name);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fprintf(f, "#!/bin/sh\nOUT='%s'\nTEST_LABEL='%s'\n%s\n", s->dir, s->test_label, body);
  fclose(f);
  chmod(path, 0755);
  return path;
}

pid_t scenario_start(struct scenario *s, const char *const *args) {
  return scenario_start_in(s, args, NULL);
}

pid_t scenario_start_in(struct scenario *s, const char *const *args, void (*prepare)(struct scenario *s)) {
  char out[128], err[128];
  snprintf(out, sizeof(out), "%s/out", s->dir);
  snprintf(err, sizeof(err), "%s/err", s->dir);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(o, 1);
    dup2(e, 2);
    (void)close_range(3, ~0U, 0); /* as a user's shell starts it: 0, 1 and 2 only */
    if (prepare)
      prepare(s);
    const char *argv[64] = {AG_BINARY, "--state-dir", s->state, "--cgroup-root", s->cgroup_root};
    size_t n = 5;
    if (s->docker_host[0]) {
      argv[n++] = "--docker-host";
      argv[n++] = s->docker_host;
    }
    for (size_t i = 0; args[i] && n < 63; i++)
      argv[n++] = args[i];
    argv[n] = NULL;
    execv(AG_BINARY, (char **)argv);
    _exit(99);
  }
  return pid;
}

int scenario_wait(pid_t pid) {
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

int scenario_run(struct scenario *s, const char *const *args) {
  return scenario_wait(scenario_start(s, args));
}

static const char *read_into(const char *path, char *buf, size_t size) {
  buf[0] = '\0';
  FILE *f = fopen(path, "r");
  if (f) {
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = '\0';
    fclose(f);
  }
  return buf;
}

const char *scenario_read_text(const char *path) {
  static char buf[65536];
  return read_into(path, buf, sizeof(buf));
}

const char *scenario_stderr(struct scenario *s) {
  /* Its own buffer: assertions print it next to what scenario_read_text returned. */
  static char buf[65536];
  char path[128];
  snprintf(path, sizeof(path), "%s/err", s->dir);
  return read_into(path, buf, sizeof(buf));
}

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

bool scenario_read_marker(struct scenario *s, const char *name, int timeout_ms, char *ret) {
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", s->dir, name);
  for (int waited = 0; waited <= timeout_ms * AG_TIMEOUT_SCALE; waited += 50) {
    FILE *f = fopen(path, "r");
    if (f) {
      bool ok = fgets(ret, 128, f) != NULL;
      fclose(f);
      if (ok && strchr(ret, '\n')) {
        ret[strcspn(ret, "\n")] = '\0';
        return true;
      }
    }
    sleep_ms(50);
  }
  return false;
}

int scenario_count_processes(const char *id) {
  return cli_count_session_processes(id);
}

int scenario_count_docker(struct scenario *s, enum dk_kind kind, const char *id) {
  char label[96];
  snprintf(label, sizeof(label), "io.cleanup-agent.session=%s", id);
  const struct dk_filter f[] = {{"label", label}, {NULL, NULL}};
  struct dk_list *l = NULL;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(dk_list(s->dk, kind, f, &l, &err), 0, "%s", err ? err->msg : "");
  int n = (int)l->n;
  dk_list_free(l);
  return n;
}

bool scenario_cgroup_exists(struct scenario *s, const char *id) {
  char path[256];
  snprintf(path, sizeof(path), "%s/run-%s", s->cgroup_root, id);
  return access(path, F_OK) == 0;
}

int scenario_count_state_files(struct scenario *s) {
  char path[128];
  snprintf(path, sizeof(path), "%s/sessions", s->state);
  DIR *d = opendir(path);
  if (!d)
    return 0;
  struct dirent *de;
  int n = 0;
  while ((de = readdir(d)))
    n += !streq(de->d_name, ".") && !streq(de->d_name, ".."); /* a leftover .tmp or .corrupt-* file counts too */
  closedir(d);
  return n;
}

/* Whether process pid (a /proc entry's name) has a session lock under prefix open: <id>.lock, or one made unnamed
 * (O_TMPFILE), which reads "#<inode> (deleted)" even once linked: a new session's, an agent's and its guardian's. A
 * lock whose file was removed ("<id>.lock (deleted)", a watcher closing its last ones) does not count. */
static bool holds_lock(const char *pid, const char *prefix) {
  char fds[300];
  snprintf(fds, sizeof(fds), "/proc/%s/fd", pid);
  DIR *d = opendir(fds);
  bool holds = false;
  for (struct dirent *f; d && !holds && (f = readdir(d));) {
    char link[600], target[PATH_MAX] = "";
    snprintf(link, sizeof(link), "%s/%s", fds, f->d_name);
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    size_t len = n > 0 ? (size_t)n : 0;
    target[len] = '\0';
    if (strncmp(target, prefix, strlen(prefix)) != 0)
      continue;
    const char *name = target + strlen(prefix);
    holds = name[0] == '#' || (len > 5 && streq(target + len - 5, ".lock"));
  }
  if (d)
    closedir(d);
  return holds;
}

/* The lock holders of s's state dir, each sent sig unless it is 0. */
static int lock_holders(struct scenario *s, int sig) {
  char dir[PATH_MAX], prefix[PATH_MAX + 16];
  cr_assert(realpath(s->state, dir), "realpath %s: %s", s->state, strerror(errno));
  snprintf(prefix, sizeof(prefix), "%s/sessions/", dir);
  DIR *proc = opendir("/proc");
  cr_assert(proc);
  int holders = 0;
  for (struct dirent *p; (p = readdir(proc));)
    if (strspn(p->d_name, "0123456789") == strlen(p->d_name) && atoi(p->d_name) != getpid() &&
        holds_lock(p->d_name, prefix)) {
      holders++;
      if (sig)
        kill(atoi(p->d_name), sig);
    }
  closedir(proc);
  return holders;
}

int scenario_count_lock_holders(struct scenario *s) {
  return lock_holders(s, 0);
}

void scenario_kill_lock_holders(struct scenario *s) {
  uint64_t end = ca_now_monotonic_usec() + 10000000ULL * AG_TIMEOUT_SCALE;
  while (lock_holders(s, SIGKILL) > 0) {
    cr_assert(ca_now_monotonic_usec() < end, "lock holders of %s outlived SIGKILL by 10 s", s->state);
    usleep(10 * 1000);
  }
}

int scenario_wait_bounded(pid_t pid, int timeout_ms) {
  int st;
  for (int waited = 0; waited <= timeout_ms * AG_TIMEOUT_SCALE; waited += 50) {
    if (waitpid(pid, &st, WNOHANG) == pid)
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    usleep(50 * 1000);
  }
  kill(pid, SIGKILL); /* our own child */
  waitpid(pid, &st, 0);
  return -1;
}

bool scenario_session_in_path(const char *path, char id[static 33]) {
  const char *p = strstr(path, "session%3D");
  p = p ? p + 10 : strstr(path, "session=");
  if (p && p[0] == '=')
    p++;
  if (!p || strspn(p, "0123456789abcdef") < 32)
    return false;
  memcpy(id, p, 32);
  id[32] = '\0';
  return true;
}

void scenario_assert_nothing_left(struct scenario *s, const char *id) {
  cr_assert_eq(scenario_count_processes(id), 0, "processes of session %s are left", id);
  cr_assert_eq(scenario_count_docker(s, DK_CONTAINER, id), 0, "containers of session %s are left", id);
  cr_assert_eq(scenario_count_docker(s, DK_NETWORK, id), 0, "networks of session %s are left", id);
  cr_assert_eq(scenario_count_docker(s, DK_VOLUME, id), 0, "volumes of session %s are left", id);
  cr_assert_not(scenario_cgroup_exists(s, id), "the cgroup of session %s is left", id);
  cr_assert_eq(scenario_count_state_files(s), 0, "state files are left in %s", s->state);
}

void scenario_dead_session(struct scenario *s, const char *docker_host, char id[static 33]) {
  struct ag_state *st = NULL;
  cr_assert_eq(ag_state_open(s->state, &st, NULL), 0);
  cr_assert_eq(ag_session_id_new(id, NULL), 0);
  int lock = -1;
  cr_assert_eq(ag_session_lock(st, id, true, &lock, NULL), 0);
  struct ag_registry reg = {.created = time(NULL), .docker_host = (char *)docker_host, .cgroup_root = s->cgroup_root};
  memcpy(reg.id, id, sizeof(reg.id));
  strcpy(reg.mode, "run");
  cr_assert_eq(ag_owner_self(&reg.owner, NULL), 0);
  reg.owner.pid = 1; /* not us */
  cr_assert_eq(ag_registry_write(st, &reg, NULL), 0);
  close(lock);
  ag_state_free(st);
}

bool scenario_wait_nothing_left(struct scenario *s, const char *id, int timeout_ms) {
  for (int waited = 0; waited <= timeout_ms * AG_TIMEOUT_SCALE; waited += 100) {
    if (scenario_count_processes(id) == 0 && scenario_count_docker(s, DK_CONTAINER, id) == 0 &&
        scenario_count_docker(s, DK_NETWORK, id) == 0 && scenario_count_docker(s, DK_VOLUME, id) == 0 &&
        !scenario_cgroup_exists(s, id) && scenario_count_state_files(s) == 0)
      return true;
    sleep_ms(100);
  }
  return false;
}

pid_t scenario_guardian_of(struct scenario *s, const char *id) {
  struct ag_state *st = NULL;
  struct ag_registry reg;
  cr_assert_eq(ag_state_open(s->state, &st, NULL), 0);
  cr_assert_eq(ag_registry_load(st, id, &reg, NULL), 0);
  ag_state_free(st);
  ag_registry_done(&reg);
  cr_assert_gt(reg.guardian_pid, 0);
  return reg.guardian_pid;
}

void scenario_without_cgroup(struct scenario *s) {
  char mnt[128];
  const char *slash = strrchr(s->cgroup_root, '/');
  snprintf(mnt, sizeof(mnt), "%.*s", (int)(slash - s->cgroup_root), s->cgroup_root);
  if (unshare(CLONE_NEWNS) < 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
      mount(NULL, mnt, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0) {
    dprintf(2, "test: cannot make %s read-only: %m\n", mnt);
    _exit(98);
  }
}

const char *scenario_out(struct scenario *s, const char *name) {
  static char path[256], text[8192];
  snprintf(path, sizeof(path), "%s/%s", s->dir, name);
  snprintf(text, sizeof(text), "%s", scenario_read_text(path));
  size_t n = strlen(text);
  while (n && text[n - 1] == '\n')
    text[--n] = '\0';
  return text;
}
