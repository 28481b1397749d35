/* cleanup-agent check (issue 24) on this host, as root and as a user without privileges, with a state dir that is
 * read-only and an engine that does not exist: the verdicts a user would read, through --format json parsed, and the
 * exit codes (0: what run needs with its defaults works, 3: it does not). Each check gets its own state dir and
 * cgroup root, removed afterwards. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[64], state[96], cgname[64], cgroot[160];

static const char *cgroup2_mount(void) {
  struct stat st;
  return stat("/sys/fs/cgroup/unified/cgroup.procs", &st) == 0 ? "/sys/fs/cgroup/unified" : "/sys/fs/cgroup";
}

static void setup(void) {
  strcpy(dir, "/var/tmp/ag-check-test-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  cr_assert_eq(chmod(dir, 0755), 0);
  snprintf(state, sizeof(state), "%s/state", dir);
  snprintf(cgname, sizeof(cgname), "cleanup-agent-check-test-%s", dir + strlen(dir) - 6);
  snprintf(cgroot, sizeof(cgroot), "%s/%s", cgroup2_mount(), cgname);
}

static void teardown(void) {
  char cmd[512];
  /* Deepest first: the root check made, and its v1 parents. */
  snprintf(cmd, sizeof(cmd), "find /sys/fs/cgroup -maxdepth 7 -depth -type d -path '*%s*' -exec rmdir {} + 2>/dev/null",
           cgname);
  if (system(cmd) != 0) { /* nothing to remove is fine */
  }
  snprintf(cmd, sizeof(cmd), "umount -l %s 2>/dev/null; rm -rf %s", state, dir);
  if (system(cmd) != 0) {
  }
}

/* Runs the shell command cmd, its stdout into out; returns its exit code. */
static int shell(const char *cmd, char *out, size_t size) {
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t n = fread(out, 1, size - 1, p);
  out[n] = '\0';
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* `[prefix] cleanup-agent --state-dir S --cgroup-root R [globals] check --format json`, parsed; *ret_code its exit. */
static cJSON *check_json(const char *prefix, const char *globals, int *ret_code) {
  char cmd[1024];
  static char out[32768];
  snprintf(cmd, sizeof(cmd), "%s %s --state-dir %s --cgroup-root %s %s check --format json", prefix, AG_BINARY, state,
           cgroot, globals);
  *ret_code = shell(cmd, out, sizeof(out));
  cJSON *j = cJSON_Parse(out);
  cr_assert_not_null(j, "check --format json printed no JSON (exit %d): %s", *ret_code, out);
  return j;
}

static const cJSON *verdict(const cJSON *j, const char *name) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "checks"), name);
  cr_assert_not_null(v, "no verdict '%s'", name);
  return v;
}

static bool ok(const cJSON *j, const char *name) {
  return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(verdict(j, name), "ok"));
}

static const char *str(const cJSON *o, const char *key) {
  const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
  return s ? s : "";
}

static const char *fix(const cJSON *j, const char *name) {
  return str(verdict(j, name), "fix");
}

/* The mode this host has, from its mounts: what check must report. */
static const char *host_mode(void) {
  struct stat st;
  if (stat("/sys/fs/cgroup/cgroup.controllers", &st) == 0)
    return "unified";
  return stat("/sys/fs/cgroup/unified/cgroup.procs", &st) == 0 ? "hybrid" : "legacy";
}

TestSuite(check, .init = setup, .fini = teardown, .timeout = 60 * AG_TIMEOUT_SCALE);

Test(check, root_on_this_host_everything_works) {
  cr_assert_eq(geteuid(), 0, "this suite runs as root");
  int code;
  cJSON *j = check_json("", "", &code);
  cr_assert_eq(code, 0, "check exits 0 as root with a running engine, got %d", code);
  cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "ok")));
  cr_assert_str_eq(str(j, "user"), "root");
  cr_assert_str_eq(str(j, "cgroup_driver"), "cgroupfs");
  cr_assert_str_eq(str(j, "cgroup_mode"), host_mode());
  cr_assert_str_eq(str(j, "tracking"), "cgroup");
  cr_assert_str_eq(str(j, "cgroup_root"), cgroot);
  cr_assert_str_eq(str(j, "state_dir"), state);
  for (const char *const *n = (const char *const[]){"state_dir", "tracking", "kill", "limit_memory", "limit_pids",
                                                    "limit_cpu", "oom_report", "engine", "proxy", "guardian", NULL};
       *n; n++) {
    cr_assert(ok(j, *n), "verdict %s is no: %s", *n, str(verdict(j, *n), "detail"));
    cr_assert(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(verdict(j, *n), "fix")), "a yes has no fix");
  }
  cr_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "engine_answers")));
  cr_assert_neq(str(j, "engine_version")[0], '\0');
  cJSON_Delete(j);
  /* It leaves nothing in the state dir: its lock probe had no name. */
  char out[256];
  snprintf(out, sizeof(out), "ls -A %s/sessions | wc -l", state);
  char n[16];
  shell(out, n, sizeof(n));
  cr_assert_eq(atoi(n), 0, "check left files in the state dir");
}

Test(check, table_is_one_screen_with_the_same_verdicts) {
  char cmd[512], out[16384];
  snprintf(cmd, sizeof(cmd), "%s --state-dir %s --cgroup-root %s check", AG_BINARY, state, cgroot);
  cr_assert_eq(shell(cmd, out, sizeof(out)), 0, "%s", out);
  cr_assert_not_null(strstr(out, "cgroup driver    cgroupfs"), "%s", out);
  cr_assert_not_null(strstr(out, "yes  memory limit (--memory)"), "%s", out);
  cr_assert_not_null(strstr(out, "yes  Docker engine"), "%s", out);
  cr_assert_not_null(strstr(out, "(found by: "), "%s", out);
  int lines = 0;
  for (const char *p = out; *p; p++)
    lines += *p == '\n';
  cr_assert_leq(lines, 40, "more than one screen: %d lines", lines);
}

Test(check, read_only_state_dir_is_a_no_with_its_fix) {
  char cmd[1024], out[32768];
  cr_assert_eq(mkdir(state, 0700), 0);
  cr_assert_eq(mkdir(strcat(strcpy(cmd, state), "/sessions"), 0700), 0);
  /* Root writes through any mode: the state dir is a read-only bind mount in a mount namespace of its own. */
  snprintf(cmd, sizeof(cmd),
           "unshare -m sh -c 'mount --make-rprivate / && mount --bind -o ro %s %s && exec %s --state-dir %s "
           "--cgroup-root %s check --format json'",
           state, state, AG_BINARY, state, cgroot);
  int code = shell(cmd, out, sizeof(out));
  cJSON *j = cJSON_Parse(out);
  cr_assert_not_null(j, "%s", out);
  cr_assert_eq(code, 3, "a state dir run cannot write is exit 3, got %d", code);
  cr_assert_not(ok(j, "state_dir"));
  cr_assert_not_null(strstr(str(verdict(j, "state_dir"), "detail"), "Read-only file system"));
  cr_assert_not_null(strstr(fix(j, "state_dir"), "--state-dir"));
  cr_assert_not(ok(j, "guardian"), "the guardian holds its lock there");
  cr_assert_not(ok(j, "proxy"), "the proxy's socket lives there");
  cr_assert_str_eq(fix(j, "guardian"), fix(j, "state_dir"));
  cr_assert(ok(j, "tracking") && ok(j, "engine"), "the rest still works");
  cJSON_Delete(j);
}

Test(check, docker_host_without_an_engine_is_a_no_with_its_fix) {
  char env[256];
  snprintf(env, sizeof(env), "env DOCKER_HOST=unix://%s/no-engine.sock", dir);
  int code;
  cJSON *j = check_json(env, "", &code);
  cr_assert_eq(code, 3, "no engine is exit 3, got %d", code);
  cr_assert_not(ok(j, "engine"));
  cr_assert_str_eq(str(j, "engine_source"), "DOCKER_HOST");
  cr_assert_not_null(strstr(str(j, "engine"), "no-engine.sock"));
  cr_assert_not_null(strstr(str(verdict(j, "engine"), "detail"), "does not exist"));
  cr_assert_not_null(strstr(fix(j, "engine"), "start the engine"));
  cr_assert(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(j, "engine_answers")));
  cr_assert(ok(j, "proxy"), "the proxy is given even before the engine answers");
  cr_assert(ok(j, "limit_memory") && ok(j, "state_dir"));
  cJSON_Delete(j);
}

Test(check, a_docker_context_that_does_not_exist_is_a_no_with_its_fix) {
  int code;
  char env[256];
  snprintf(env, sizeof(env), "env -u DOCKER_HOST DOCKER_CONFIG=%s DOCKER_CONTEXT=no-such-context", dir);
  cJSON *j = check_json(env, "", &code);
  cr_assert_eq(code, 3, "no engine found is exit 3, got %d", code);
  cr_assert_not(ok(j, "engine"));
  cr_assert_not_null(strstr(str(verdict(j, "engine"), "detail"), "'no-such-context'"), "%s",
                     str(verdict(j, "engine"), "detail"));
  cr_assert_not_null(strstr(fix(j, "engine"), "docker context use default"));
  cr_assert_not(ok(j, "proxy"), "no engine to stand in front of");
  cr_assert(ok(j, "state_dir") && ok(j, "tracking"), "the rest is still checked");
  cJSON_Delete(j);
}

Test(check, nobody_gets_process_tracking_and_the_fixes) {
  char cmd[512], out[256];
  /* A state dir of nobody's own, so that the verdicts are about cgroups and the engine, not XDG_RUNTIME_DIR. */
  snprintf(cmd, sizeof(cmd), "install -d -m 700 -o nobody %s", state);
  cr_assert_eq(shell(cmd, out, sizeof(out)), 0);
  int code;
  cJSON *j = check_json("runuser -u nobody --", "", &code);
  cr_assert_str_eq(str(j, "user"), "nobody");
  cr_assert_str_eq(str(j, "tracking"), "process", "nobody cannot write the cgroup root");
  cr_assert(ok(j, "tracking"), "process tracking still tracks");
  cr_assert(ok(j, "state_dir"), "%s", str(verdict(j, "state_dir"), "detail"));
  for (const char *const *n =
           (const char *const[]){"kill", "limit_memory", "limit_pids", "limit_cpu", "oom_report", NULL};
       *n; n++) {
    cr_assert_not(ok(j, *n), "%s is a yes for nobody", *n);
    cr_assert_not_null(strstr(fix(j, *n), "Delegate=yes"), "%s: %s", *n, fix(j, *n));
    cr_assert_not_null(strstr(fix(j, *n), "loginctl enable-linger nobody"), "%s: %s", *n, fix(j, *n));
  }
  /* nobody is not in the docker group: the engine's socket refuses it, and the fix says which group. */
  cr_assert_not(ok(j, "engine"));
  cr_assert_not_null(strstr(fix(j, "engine"), "docker group"), "%s", fix(j, "engine"));
  cr_assert_eq(code, 3, "the engine is needed: exit 3, got %d", code);
  cJSON_Delete(j);
}

Test(check, no_state_dir_for_a_user_without_xdg_runtime_dir) {
  char cmd[512], out[32768];
  snprintf(cmd, sizeof(cmd), "runuser -u nobody -- env -u XDG_RUNTIME_DIR %s --cgroup-root %s check --format json",
           AG_BINARY, cgroot);
  int code = shell(cmd, out, sizeof(out));
  cJSON *j = cJSON_Parse(out);
  cr_assert_not_null(j, "%s", out);
  cr_assert_eq(code, 3);
  cr_assert_not(ok(j, "state_dir"));
  cr_assert_not_null(strstr(fix(j, "state_dir"), "loginctl enable-linger nobody"), "%s", fix(j, "state_dir"));
  cJSON_Delete(j);
}

Test(check, usage_errors_are_exit_2) {
  char cmd[512], out[4096];
  snprintf(cmd, sizeof(cmd), "%s check --format yaml 2>&1", AG_BINARY);
  cr_assert_eq(shell(cmd, out, sizeof(out)), 2, "%s", out);
  snprintf(cmd, sizeof(cmd), "%s check extra 2>&1", AG_BINARY);
  cr_assert_eq(shell(cmd, out, sizeof(out)), 2, "%s", out);
  snprintf(cmd, sizeof(cmd), "%s check --help", AG_BINARY);
  cr_assert_eq(shell(cmd, out, sizeof(out)), 0);
  cr_assert_not_null(strstr(out, "Exit status"));
}
