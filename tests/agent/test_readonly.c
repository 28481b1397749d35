/* ps, kill and gc --dry-run change nothing they only read (issue 19): no state dir, cgroup root or supervisor cgroup
 * made, no registry moved aside, no gc.lock written; a registry that cannot be read is an error, not corruption; a
 * registry of a newer agent is kept and named; registry files set aside as corrupt are named by ps and gc --dry-run
 * and removed by gc once old enough. The agent runs as a user would run it, with its own state dir and cgroup root
 * and an engine address where no engine answers (nothing here needs one, and no gc here can touch the real one). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "cli_run.h"
#include "session.h"

#define CGROUP2 "/sys/fs/cgroup/unified"
#define ID "0123456789abcdef0123456789abcdef"
#define ID2 "fedcba9876543210fedcba9876543210"
#define ID3 "00000000000000000000000000000abc"

static char dir[64], state[96], sessions[112], cgname[64], cgroot[160], no_engine[128];

static const char *cgroup2_mount(void) {
  struct stat st;
  return stat(CGROUP2 "/cgroup.procs", &st) == 0 ? CGROUP2 : "/sys/fs/cgroup";
}

static void setup(void) {
  strcpy(dir, "/var/tmp/ag-ro-test-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  snprintf(state, sizeof(state), "%s/state", dir);
  snprintf(sessions, sizeof(sessions), "%s/sessions", state);
  snprintf(cgname, sizeof(cgname), "cleanup-agent-ro-test-%s", dir + strlen(dir) - 6);
  snprintf(cgroot, sizeof(cgroot), "%s/%s", cgroup2_mount(), cgname);
  snprintf(no_engine, sizeof(no_engine), "unix://%s/no-engine.sock", dir);
}

/* Every directory named name in the cgroup trees (the v2 root, its v1 parents, a supervisor below): how many. */
static int cgroup_dirs_named(const char *name) {
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "find /sys/fs/cgroup -maxdepth 7 -type d -name '%s*' 2>/dev/null | wc -l", name);
  FILE *p = popen(cmd, "r");
  int n = -1;
  cr_assert_eq(fscanf(p, "%d", &n), 1);
  pclose(p);
  return n;
}

static void teardown(void) {
  char cmd[512];
  /* Deepest first: whatever a failed run made (root, v1 parents, a supervisor in the delegated test). */
  snprintf(cmd, sizeof(cmd), "find /sys/fs/cgroup -maxdepth 7 -depth -type d -path '*%s*' -exec rmdir {} + 2>/dev/null",
           cgname);
  if (system(cmd) != 0) { /* nothing to remove is the good case */
  }
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  cr_expect_eq(system(cmd), 0);
}

TestSuite(readonly, .init = setup, .fini = teardown, .timeout = 120 * AG_TIMEOUT_SCALE);

/* The arguments of the agent with this test's state dir, cgroup root and engine address, then args; the binary first
 * when with_binary. */
static void agent_argv(const char *argv[static 32], bool with_binary, const char *const *args) {
  size_t n = 0;
  if (with_binary)
    argv[n++] = AG_BINARY;
  const char *globals[] = {"--state-dir", state, "--cgroup-root", cgroot, "--docker-host", no_engine};
  for (size_t i = 0; i < ELEMENTSOF(globals); i++)
    argv[n++] = globals[i];
  for (size_t i = 0; args[i] && n < 31; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
}

static void agent(struct cli_result *r, const char *const *args) {
  const char *argv[32];
  agent_argv(argv, false, args);
  cli_run(r, argv, NULL);
}

/* Names, sizes, modes and modification times of everything under the state dir: what a reader must leave as it was. */
static char *snapshot(void) {
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "cd '%s' && find . -printf '%%p %%y %%s %%m %%T@\\n' | sort", state);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  static char buf[8192];
  size_t n = fread(buf, 1, sizeof(buf) - 1, p);
  buf[n] = '\0';
  pclose(p);
  return strdup(buf);
}

static void make_state(void) {
  struct ag_state *st = NULL;
  cr_assert_eq(ag_state_open(state, &st, NULL), 0);
  ag_state_free(st);
}

static void write_file(const char *name, const char *text) {
  char p[256];
  snprintf(p, sizeof(p), "%s/%s", sessions, name);
  FILE *f = fopen(p, "w");
  cr_assert_not_null(f, "%s", p);
  fputs(text, f);
  fclose(f);
}

static bool state_file_exists(const char *name) {
  char p[256];
  snprintf(p, sizeof(p), "%s/%s", sessions, name);
  struct stat st;
  return lstat(p, &st) == 0;
}

/* A registry the agent would write, with the version given. */
static void write_registry(const char *id, int version) {
  char text[512];
  snprintf(text, sizeof(text),
           "{\"version\":%d,\"session\":\"%s\",\"mode\":\"run\",\"host\":\"h\",\"boot_id\":\"b\",\"owner_pid\":1,"
           "\"owner_start\":1,\"created\":1700000000,\"expires\":0,\"guardian_pid\":0,\"command\":[\"true\"]}",
           version, id);
  char name[64];
  snprintf(name, sizeof(name), "%s.json", id);
  write_file(name, text);
}

Test(readonly, ps_kill_and_dry_run_on_a_fresh_host_create_nothing) {
  const char *const *cmds[] = {
      (const char *[]){"ps", NULL},
      (const char *[]){"ps", "--format", "json", NULL},
      (const char *[]){"gc", "--dry-run", NULL},
      (const char *[]){"gc", "--dry-run", "--format", "json", NULL},
      (const char *[]){"kill", ID, NULL},
  };
  for (size_t i = 0; i < ELEMENTSOF(cmds); i++) {
    struct cli_result r;
    agent(&r, cmds[i]);
    cr_assert_eq(access(state, F_OK), -1, "'%s' created the state dir %s", cmds[i][0], state);
    cr_assert_eq(cgroup_dirs_named(cgname), 0, "'%s %s' created the cgroup root %s (or its v1 parents)", cmds[i][0],
                 cmds[i][1], cgroot);
    if (streq(cmds[i][0], "kill"))
      cr_assert_eq(r.status, 1, "kill of a session that is not here: %s", r.err);
    else
      cr_assert_eq(r.status, 0, "%s %s: %s", cmds[i][0], cmds[i][1], r.err);
  }
}

Test(readonly, kill_of_a_dead_session_does_not_make_a_cgroup_root) {
  make_state();
  write_registry(ID, 1);
  struct cli_result r;
  agent(&r, (const char *[]){"kill", ID, NULL});
  cr_assert_eq(cgroup_dirs_named(cgname), 0, "kill created the cgroup root %s: %s", cgroot, r.err);
}

Test(readonly, a_corrupt_registry_is_named_and_left_in_place_by_readers) {
  make_state();
  write_file(ID ".json", "{\"version\":1,\"session\":\"0123"); /* truncated by a crash or a full disk */
  _cleanup_free_ char *before = snapshot();
  const char *const *cmds[] = {
      (const char *[]){"ps", NULL},
      (const char *[]){"gc", "--dry-run", NULL},
  };
  for (size_t i = 0; i < ELEMENTSOF(cmds); i++) {
    struct cli_result r;
    agent(&r, cmds[i]);
    cr_assert_eq(r.status, 0, "%s", r.err);
    _cleanup_free_ char *after = snapshot();
    cr_assert_str_eq(after, before, "'%s %s' changed the state dir (%s)", cmds[i][0], cmds[i][1] ? cmds[i][1] : "",
                     r.err);
  }
  struct cli_result r;
  agent(&r, (const char *[]){"ps", NULL});
  cr_assert_not_null(strstr(r.err, "corrupt"), "ps does not say the registry is corrupt: %s", r.err);
  cr_assert_not_null(strstr(r.err, ID ".json"), "ps does not name the file: %s", r.err);
  cr_assert_null(strstr(r.err, "moved aside"), "%s", r.err);
}

/* Runs the agent as uid (with gid) and returns its exit status; stderr goes to <dir>/err. */
static int agent_as(uid_t uid, gid_t gid, const char *const *args, char *ret_err, size_t size) {
  char err_path[128];
  snprintf(err_path, sizeof(err_path), "%s/err", dir);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int e = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    int nul = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (e < 0 || nul < 0 || dup2(e, 2) < 0 || dup2(nul, 1) < 0 || setgroups(0, NULL) < 0 ||
        setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
      _exit(98);
    const char *argv[32];
    agent_argv(argv, true, args);
    execv(AG_BINARY, (char **)argv);
    _exit(99);
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  FILE *f = fopen(err_path, "r");
  size_t n = f ? fread(ret_err, 1, size - 1, f) : 0;
  ret_err[n] = '\0';
  if (f)
    fclose(f);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

Test(readonly, a_registry_that_cannot_be_read_is_an_error_not_corruption) {
  /* The state dir belongs to an unprivileged user; a registry in it that user may not read (root's, mode 0600) gives
   * EACCES: ps says so, and neither ps nor kill takes it for corruption and moves it aside. */
  const uid_t nobody = 65534;
  cr_assert_eq(chmod(dir, 0711), 0);
  cr_assert_eq(mkdir(state, 0700), 0);
  cr_assert_eq(mkdir(sessions, 0700), 0);
  cr_assert_eq(chown(state, nobody, nobody), 0);
  cr_assert_eq(chown(sessions, nobody, nobody), 0);
  write_registry(ID, 1);
  char p[256];
  snprintf(p, sizeof(p), "%s/" ID ".json", sessions);
  cr_assert_eq(chmod(p, 0600), 0);
  char err[4096];
  int status = agent_as(nobody, nobody, (const char *[]){"ps", NULL}, err, sizeof(err));
  cr_assert_eq(status, 0, "ps: %s", err);
  cr_assert(state_file_exists(ID ".json"), "ps moved an unreadable registry aside: %s", err);
  cr_assert_not_null(strstr(err, "ermission denied"), "ps does not say why it cannot read the registry: %s", err);
  cr_assert_null(strstr(err, "corrupt"), "an unreadable registry is not a corrupt one: %s", err);
  (void)agent_as(nobody, nobody, (const char *[]){"kill", ID, NULL}, err, sizeof(err));
  cr_assert(state_file_exists(ID ".json"), "kill moved an unreadable registry aside: %s", err);
  cr_assert_null(strstr(err, "corrupt"), "an unreadable registry is not a corrupt one: %s", err);
}

Test(readonly, a_registry_of_a_newer_agent_is_kept_and_named) {
  make_state();
  write_registry(ID, 2);
  _cleanup_free_ char *before = snapshot();
  struct cli_result r;
  agent(&r, (const char *[]){"ps", NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert_not_null(strstr(r.err, "version 2"), "ps does not say which version: %s", r.err);
  cr_assert_not_null(strstr(r.err, "newer"), "ps does not say a newer agent wrote it: %s", r.err);
  cr_assert_null(strstr(r.err, "corrupt"), "%s", r.err);
  _cleanup_free_ char *after_ps = snapshot();
  cr_assert_str_eq(after_ps, before, "ps changed the state dir");

  agent(&r, (const char *[]){"gc", "--dry-run", "--format", "json", NULL});
  cr_assert_null(strstr(r.out, ID), "gc --dry-run would collect a newer agent's session: %s", r.out);
  _cleanup_free_ char *after_dry = snapshot();
  cr_assert_str_eq(after_dry, before, "gc --dry-run changed the state dir");

  agent(&r, (const char *[]){"gc", NULL});
  cr_assert(state_file_exists(ID ".json"), "gc removed a newer agent's registry: %s", r.err);
  cr_assert_not_null(strstr(r.err, "version 2"), "gc does not say why it kept the session: %s", r.err);
  const char *first = strstr(r.err, "version 2");
  cr_assert(first && !strstr(first + 1, "version 2"), "one line about the newer registry, not more: %s", r.err);
}

Test(readonly, registry_files_set_aside_are_named_and_removed_by_gc_once_old) {
  make_state();
  char old_corrupt[96], young_corrupt[96], old_link[96];
  long long now = (long long)time(NULL);
  snprintf(old_corrupt, sizeof(old_corrupt), ID ".json.corrupt-%lld", now - 8 * 86400);
  snprintf(young_corrupt, sizeof(young_corrupt), ID2 ".json.corrupt-%lld", now - 3600);
  snprintf(old_link, sizeof(old_link), ID3 ".lock.symlink-%lld", now - 9 * 86400);
  write_file(old_corrupt, "{\"session\":");
  write_file(young_corrupt, "garbage");
  char p[256];
  snprintf(p, sizeof(p), "%s/%s", sessions, old_link);
  cr_assert_eq(symlink("/etc/hostname", p), 0);
  _cleanup_free_ char *before = snapshot();

  struct cli_result r;
  agent(&r, (const char *[]){"ps", NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strstr(r.err, old_corrupt) && strstr(r.err, young_corrupt) && strstr(r.err, old_link),
            "ps does not name every file set aside: %s", r.err);

  agent(&r, (const char *[]){"gc", "--dry-run", "--format", "json", NULL});
  cr_assert_eq(r.status, 0, "%s", r.err);
  cr_assert(strstr(r.out, old_corrupt) && strstr(r.out, old_link),
            "gc --dry-run does not name what it would remove: %s", r.out);
  cr_assert_null(strstr(r.out, young_corrupt), "gc --dry-run would remove a file set aside an hour ago: %s", r.out);
  _cleanup_free_ char *after = snapshot();
  cr_assert_str_eq(after, before, "gc --dry-run changed the state dir");

  agent(&r, (const char *[]){"gc", NULL});
  cr_assert_not(state_file_exists(old_corrupt), "gc left a corrupt registry set aside 8 days ago: %s", r.err);
  cr_assert_not(state_file_exists(old_link), "gc left a symlink set aside 9 days ago: %s", r.err);
  cr_assert(state_file_exists(young_corrupt), "gc removed a file set aside an hour ago: %s", r.err);
  cr_assert_eq(access("/etc/hostname", F_OK), 0, "the symlink's target is untouched");

  agent(&r, (const char *[]){"gc", "--older-than", "30m", NULL});
  cr_assert_not(state_file_exists(young_corrupt), "gc --older-than 30m left a file set aside an hour ago: %s", r.err);
}

Test(readonly, ps_and_dry_run_in_a_delegated_cgroup_move_nothing) {
  /* Without --cgroup-root, an agent in a delegated subtree uses it as its root; run moves itself into <it>/supervisor
   * to make room for leaves. ps and gc --dry-run make no such cgroup and move no process. */
  char deleg[200], sup[220];
  snprintf(deleg, sizeof(deleg), "%s/%s-delegated", cgroup2_mount(), cgname);
  snprintf(sup, sizeof(sup), "%s/supervisor", deleg);
  cr_assert_eq(mkdir(deleg, 0755), 0);
  cr_assert_eq(setxattr(deleg, "trusted.delegate", "1", 1, 0), 0, "%s", strerror(errno));
  const char *const *cmds[] = {(const char *[]){"ps", NULL}, (const char *[]){"gc", "--dry-run", NULL}};
  for (size_t i = 0; i < ELEMENTSOF(cmds); i++) {
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
      char procs[256];
      snprintf(procs, sizeof(procs), "%s/cgroup.procs", deleg);
      FILE *f = fopen(procs, "w");
      if (!f || fprintf(f, "0\n") < 0 || fclose(f) != 0)
        _exit(98);
      int nul = open("/dev/null", O_WRONLY);
      dup2(nul, 1);
      dup2(nul, 2);
      const char *argv[] = {AG_BINARY, "--state-dir", state, "--docker-host", no_engine, cmds[i][0], cmds[i][1], NULL};
      execv(AG_BINARY, (char **)argv);
      _exit(99);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s %s: status %d", cmds[i][0], cmds[i][1] ? cmds[i][1] : "", st);
    cr_assert_eq(access(sup, F_OK), -1, "'%s %s' made %s and moved itself there", cmds[i][0],
                 cmds[i][1] ? cmds[i][1] : "", sup);
  }
}

Test(readonly, a_cgroup_root_opened_as_it_is_lists_its_leaves_and_makes_none) {
  cg_root_options o = {.root = cgroot, .open_existing = true};
  cg_root *root = NULL;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(cg_root_open(&o, &root, &err), -ENOENT, "a root that does not exist: %s", err ? err->msg : "opened");
  cr_assert_eq(cgroup_dirs_named(cgname), 0);
  o.allow_process = true;
  cr_assert_eq(cg_root_open(&o, &root, NULL), 0);
  cr_assert_eq(cg_root_tracking(root), CG_TRACK_PROCESS, "nothing to look at: no cgroup");
  cg_root_free(root);
  cr_assert_eq(cgroup_dirs_named(cgname), 0);

  char leaf[256];
  snprintf(leaf, sizeof(leaf), "%s/run-" ID, cgroot);
  cr_assert_eq(mkdir(cgroot, 0755), 0);
  cr_assert_eq(mkdir(leaf, 0755), 0);
  cr_assert_eq(cg_root_open(&o, &root, NULL), 0);
  cr_assert_eq(cg_root_tracking(root), CG_TRACK_CGROUP);
  cr_assert_str_eq(cg_root_path(root), cgroot);
  char **ids = NULL;
  cr_assert_eq(cg_root_list_sessions(root, &ids, NULL), 0);
  cr_assert(ids[0] && streq(ids[0], ID) && !ids[1]);
  ca_strv_free(ids);
  cg_leaf *l = NULL;
  ca_error_free(TAKE_PTR(err));
  cr_assert_eq(cg_leaf_create(root, ID2, NULL, &l, &err), -EINVAL, "a leaf made under a root opened to look at it");
  cr_assert_eq(cg_leaf_open(root, ID, &l, NULL), 0);
  cg_leaf_free(l);
  cg_root_free(root);
  cr_assert_eq(cgroup_dirs_named(cgname), 1, "only the root the test made (no v1 parents)");
  cr_assert_eq(rmdir(leaf), 0);
  cr_assert_eq(rmdir(cgroot), 0);
}
