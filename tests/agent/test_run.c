/* run against the real engine and the host's cgroups: whatever the command does and however it ends, nothing of it
 * is left in /proc, the engine, the cgroup tree or the state dir. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli_run.h"
#include "scenario.h"
#include "session.h"

static struct scenario sc;

static void setup(void) {
  scenario_setup(&sc);
}
static void teardown(void) {
  scenario_teardown(&sc);
}

TestSuite(run, .init = setup, .fini = teardown, .timeout = 120 * AG_TIMEOUT_SCALE);

static char *make_container(const char *const *labels);
static bool container_exists(const char *id);

/* A suite that leaks everything it can: daemons that double-fork and ignore SIGTERM, a setsid escapee, 50 background
 * sleepers, and a container, network and volume labeled with the session. */
static const char leaky[] =
    "L=\"--label io.cleanup-agent.session=$CLEANUP_AGENT_SESSION --label $TEST_LABEL\"\n"
    "docker run -d --network none $L cleanup-test/busybox:latest sleep 1000 >/dev/null || exit 90\n"
    "docker network create $L net-$CLEANUP_AGENT_SESSION >/dev/null || exit 91\n"
    "docker volume create $L >/dev/null || exit 92\n"
    "( trap '' TERM INT; ( trap '' TERM HUP INT; exec sleep 1000 ) & ) &\n"
    "setsid sh -c 'trap \"\" TERM HUP INT; sleep 1000 & exec sleep 1000' &\n"
    "i=0; while [ $i -lt 50 ]; do sleep 1000 & i=$((i+1)); done\n"
    "echo $CLEANUP_AGENT_SESSION > $OUT/session.tmp && mv $OUT/session.tmp $OUT/session\n";

Test(run, leaky_suite_exits_with_its_status_and_leaves_nothing) {
  char body[4096];
  snprintf(body, sizeof(body), "%sexit 3\n", leaky);
  const char *script = scenario_script(&sc, "leaky.sh", body);
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert_eq(rc, 3, "run exited %d: %s", rc, scenario_stderr(&sc));
  char id[128];
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  cr_assert(ca_session_id_valid(id), "CLEANUP_AGENT_SESSION='%s'", id);
  scenario_assert_nothing_left(&sc, id);
  const char *err = scenario_stderr(&sc);
  cr_assert_not_null(strstr(err, "processes outlived the command: "), "%s", err);
  cr_assert_not_null(strstr(err, "removed 1 container, 1 network, 1 volume"), "%s", err);
}

/* The fds the command holds (ls -l /proc/self/fd as the command, its own directory fd left out), as "0 1 2", with the
 * whole listing in ret_listing. */
static void command_fds(const char *listing, char *ret, size_t size) {
  ret[0] = '\0';
  for (const char *line = listing; *line;) {
    const char *end = strchrnul(line, '\n'), *arrow = strstr(line, " -> ");
    if (arrow && arrow < end) {
      const char *num = arrow;
      while (num > line && num[-1] != ' ')
        num--;
      const char *target = arrow + 4;
      bool own_dir = strncmp(target, "/proc/", 6) == 0 && strncmp(end - 3, "/fd", 3) == 0;
      if (!own_dir)
        snprintf(ret + strlen(ret), size - strlen(ret), "%s%.*s", ret[0] ? " " : "", (int)(arrow - num), num);
    }
    line = *end ? end + 1 : end;
  }
}

/* The command holds 0, 1 and 2 and nothing else of the agent: not its connections to the engine (the start-up
 * collection below talks to it), nor its lock, signalfd, cgroup or proxy fds. */
Test(run, the_command_inherits_only_stdin_stdout_and_stderr) {
  const char *dead = "fdfdfdfdfdfdfdfdfdfdfdfdfdfdfdfd";
  char cmd[512], label[96];
  snprintf(cmd, sizeof(cmd), "mkdir -p -m 700 %s %s/sessions && touch %s/sessions/%s.lock", sc.state, sc.state,
           sc.state, dead);
  cr_assert_eq(system(cmd), 0);
  snprintf(label, sizeof(label), "io.cleanup-agent.session=%s", dead);
  _cleanup_free_ char *cid = make_container((const char *[]){label, sc.test_label, NULL});

  int rc = scenario_run(&sc, (const char *[]){"run", "--", "ls", "-l", "/proc/self/fd", NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert_not_null(strstr(scenario_stderr(&sc), "collected 1 dead session"), "%s", scenario_stderr(&sc));
  cr_assert_not(container_exists(cid), "the start-up collection did not reach the engine");
  char path[128], fds[256];
  snprintf(path, sizeof(path), "%s/out", sc.dir);
  const char *listing = scenario_read_text(path);
  command_fds(listing, fds, sizeof(fds));
  cr_assert_str_eq(fds, "0 1 2", "the command holds fds %s:\n%s", fds, listing);
}

/* An fd the caller passes on (a shell's redirection, make's jobserver) still reaches the command. */
Test(run, an_fd_passed_to_the_agent_reaches_the_command) {
  char cmd[1024], path[128];
  snprintf(path, sizeof(path), "%s/passed", sc.dir);
  snprintf(cmd, sizeof(cmd),
           "echo passed-through > %s && %s --state-dir %s --cgroup-root %s run -- sh -c 'cat <&7' 7<%s > %s.out", path,
           AG_BINARY, sc.state, sc.cgroup_root, path, path);
  cr_assert_eq(system(cmd), 0);
  snprintf(path, sizeof(path), "%s/passed.out", sc.dir);
  cr_assert_str_eq(scenario_read_text(path), "passed-through\n");
}

Test(run, private_tmp_files_and_shared_memory_die_with_the_run) {
  char shm[128], tmpfile[128];
  snprintf(shm, sizeof(shm), "/dev/shm/cleanup-agent-test-%d", (int)getpid());
  snprintf(tmpfile, sizeof(tmpfile), "/tmp/cleanup-agent-test-%d", (int)getpid());
  char body[1024];
  snprintf(body, sizeof(body),
           "echo segment > %s && echo file > %s || exit 90\n"
           "test \"$(cat %s)\" = segment || exit 91\n"
           "( trap '' TERM; sleep 1000 & ) &\n"
           "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
           "exit 3\n",
           shm, tmpfile, shm);
  const char *script = scenario_script(&sc, "private.sh", body);
  int rc = scenario_run(&sc, (const char *[]){"run", "--private-tmp", "--", script, NULL});
  cr_assert_eq(rc, 3, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert_eq(access(shm, F_OK), -1, "%s is visible on the host after the run", shm);
  cr_assert_eq(access(tmpfile, F_OK), -1, "%s is visible on the host after the run", tmpfile);
  char id[128];
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  scenario_assert_nothing_left(&sc, id);
}

/* "no" means no: CLEANUP_AGENT_PRIVATE_TMP=no gives the command the host's /tmp, CLEANUP_AGENT_NO_DOCKER_PROXY=no
 * keeps the proxy (DOCKER_HOST is the session's socket, not the engine's). */
Test(run, boolean_variables_set_to_no_mean_no) {
  char marker[128];
  snprintf(marker, sizeof(marker), "/tmp/cleanup-agent-test-no-%d", (int)getpid());
  char body[1024];
  snprintf(body, sizeof(body), "echo here > %s || exit 90\necho \"$DOCKER_HOST\" > $OUT/host\n", marker);
  const char *script = scenario_script(&sc, "not-private.sh", body);
  setenv("CLEANUP_AGENT_PRIVATE_TMP", "no", 1);
  setenv("CLEANUP_AGENT_NO_DOCKER_PROXY", "no", 1);
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  unsetenv("CLEANUP_AGENT_PRIVATE_TMP");
  unsetenv("CLEANUP_AGENT_NO_DOCKER_PROXY");
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  bool on_host = access(marker, F_OK) == 0;
  unlink(marker);
  cr_assert(on_host, "CLEANUP_AGENT_PRIVATE_TMP=no gave the command a private /tmp");
  char host[128];
  cr_assert(scenario_read_marker(&sc, "host", 0, host));
  cr_assert_not_null(strstr(host, ".sock"), "CLEANUP_AGENT_NO_DOCKER_PROXY=no turned the proxy off: DOCKER_HOST=%s",
                     host);
}

Test(run, private_tmp_that_cannot_be_set_up_is_one_clear_line_and_125) {
  /* An unprivileged user (nobody) may not make a mount namespace: refused with one line, nothing left. */
  char home[] = "/var/tmp/ag-nobody-XXXXXX";
  cr_assert_not_null(mkdtemp(home));
  cr_assert_eq(chown(home, 65534, 65534), 0);
  char cmd[1024];
  snprintf(cmd, sizeof(cmd),
           "setpriv --reuid=65534 --regid=65534 --clear-groups env DOCKER_HOST=unix:///nonexistent %s "
           "--state-dir %s/state run --private-tmp -- /bin/true 2>%s/err; echo $? >%s/rc",
           AG_BINARY, home, home, home);
  cr_assert_eq(system(cmd), 0);
  char path[128], rc[16] = "", err[4096] = "";
  snprintf(path, sizeof(path), "%s/rc", home);
  FILE *f = fopen(path, "r");
  cr_assert_not_null(fgets(rc, sizeof(rc), f));
  fclose(f);
  snprintf(path, sizeof(path), "%s/err", home);
  f = fopen(path, "r");
  size_t n = fread(err, 1, sizeof(err) - 1, f);
  err[n] = '\0';
  fclose(f);
  cr_assert_eq(atoi(rc), 125, "exit %s: %s", rc, err);
  const char *line = strstr(err, "--private-tmp");
  cr_assert_not_null(line, "%s", err);
  cr_assert_not_null(strstr(line, "Operation not permitted"), "%s", err);
  snprintf(path, sizeof(path), "%s/state/sessions", home);
  char ls[256];
  snprintf(ls, sizeof(ls), "test -z \"$(ls -A %s)\"", path);
  cr_assert_eq(system(ls), 0, "state files left in %s", path);
  snprintf(cmd, sizeof(cmd), "rm -rf %s", home);
  cr_assert_eq(system(cmd), 0);
}

Test(run, timeout_kills_the_tree_and_exits_124) {
  const char *script = scenario_script(&sc, "slow.sh",
                                       "trap '' TERM\n"
                                       "sh -c 'trap \"\" TERM; exec sleep 1000' &\n"
                                       "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
                                       "sleep 1000\n");
  int rc = scenario_run(&sc, (const char *[]){"run", "--timeout", "1s", "--grace", "300ms", "--", script, NULL});
  cr_assert_eq(rc, 124, "run exited %d: %s", rc, scenario_stderr(&sc));
  char id[128];
  cr_assert(scenario_read_marker(&sc, "session", 0, id));
  scenario_assert_nothing_left(&sc, id);
  cr_assert_not_null(strstr(scenario_stderr(&sc), "--timeout 1s expired"), "%s", scenario_stderr(&sc));
}

/* The leaky suite, sleeping on, under `run --grace <grace>`. */
static void start_leaky(const char *grace, pid_t *ret_pid, char id[static 128]) {
  char body[4096];
  snprintf(body, sizeof(body), "%ssleep 1000\n", leaky);
  const char *script = scenario_script(&sc, "leaky-forever.sh", body);
  *ret_pid = scenario_start(&sc, (const char *[]){"run", "--grace", grace, "--", script, NULL});
  cr_assert(scenario_read_marker(&sc, "session", 60000, id), "the suite never got going: %s", scenario_stderr(&sc));
}

static void start_leaky_and_wait(pid_t *ret_pid, char id[static 128]) {
  start_leaky("1s", ret_pid, id);
}

Test(run, sigterm_to_the_agent_cleans_and_exits_143) {
  pid_t pid;
  char id[128];
  start_leaky_and_wait(&pid, id);
  cr_assert_eq(kill(pid, SIGTERM), 0);
  int rc = scenario_wait(pid);
  cr_assert_eq(rc, 143, "run exited %d: %s", rc, scenario_stderr(&sc));
  scenario_assert_nothing_left(&sc, id);
}

Test(run, sigkill_of_the_agent_the_guardian_cleans_within_3s) {
  pid_t pid;
  char id[128];
  start_leaky_and_wait(&pid, id);
  cr_assert_eq(kill(pid, SIGKILL), 0);
  cr_assert_eq(scenario_wait(pid), 128 + SIGKILL);
  cr_assert(scenario_wait_nothing_left(&sc, id, 3000), "the guardian did not clean session %s within 3 s", id);
  cr_assert_not_null(strstr(scenario_stderr(&sc), "guardian: the agent died"), "%s", scenario_stderr(&sc));
}

Test(run, sigkill_of_agent_and_guardian_the_next_run_collects) {
  pid_t pid;
  char id[128];
  start_leaky_and_wait(&pid, id);
  /* The guardian first, so that it cannot start cleaning: this is the whole job cgroup killed by a CI runner. */
  cr_assert_eq(kill(scenario_guardian_of(&sc, id), SIGKILL), 0);
  cr_assert_eq(kill(pid, SIGKILL), 0);
  cr_assert_eq(scenario_wait(pid), 128 + SIGKILL);
  usleep(300 * 1000);
  cr_assert_gt(scenario_count_processes(id), 50, "the killed session's tree should still be there");
  cr_assert_eq(scenario_count_docker(&sc, DK_CONTAINER, id), 1);

  int rc = scenario_run(&sc, (const char *[]){"run", "--", "true", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  cr_assert_not_null(strstr(scenario_stderr(&sc), "collected 1 dead session"), "%s", scenario_stderr(&sc));
  /* Its resources are gone now; its registry goes once a guardian watched 10 s for creates still in flight. */
  cr_assert_eq(scenario_count_processes(id), 0);
  cr_assert_eq(scenario_count_docker(&sc, DK_CONTAINER, id), 0);
  cr_assert(scenario_wait_nothing_left(&sc, id, 20000), "session %s was not forgotten within 20 s", id);
}

Test(run, memory_limit_oom_gives_137_and_says_so) {
  int rc = scenario_run(&sc, (const char *[]){"run", "--memory", "32M", "--", "sh", "-c", "exec tail /dev/zero", NULL});
  cr_assert_eq(rc, 137, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert_not_null(strstr(scenario_stderr(&sc), "killed by the OOM killer (memory limit 32M"), "%s",
                     scenario_stderr(&sc));
  cr_assert_eq(scenario_count_state_files(&sc), 0);
}

Test(run, exec_failures_and_usage_errors_are_one_line) {
  int rc = scenario_run(&sc, (const char *[]){"run", "--", "/nonexistent/cleanup-agent-cmd", NULL});
  cr_assert_eq(rc, 127, "%s", scenario_stderr(&sc));
  cr_assert_not_null(strstr(scenario_stderr(&sc), "command not found"), "%s", scenario_stderr(&sc));
  cr_assert_eq(scenario_count_state_files(&sc), 0);

  const char *plain = scenario_script(&sc, "not-exec.sh", "exit 0");
  chmod(plain, 0644);
  rc = scenario_run(&sc, (const char *[]){"run", "--", plain, NULL});
  cr_assert_eq(rc, 126, "%s", scenario_stderr(&sc));
  cr_assert_not_null(strstr(scenario_stderr(&sc), "Permission denied"), "%s", scenario_stderr(&sc));

  const char *bad[][6] = {
      {"run", "--memory", "lots", "--", "true", NULL},
      {"run", "--timeout", "5", "--", "true", NULL},
      {"run", "--label", "io.cleanup-agent.session=0123456789abcdef0123456789abcdef", "--", "true", NULL},
      {"run", NULL},
      {"run", "--bogus", "--", "true", NULL},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    rc = scenario_run(&sc, bad[i]);
    cr_assert_eq(rc, 125, "case %zu exited %d", i, rc);
    const char *e = scenario_stderr(&sc);
    cr_assert_eq(strchr(e, '\n'), e + strlen(e) - 1, "case %zu: not one line: %s", i, e);
  }
}

/* A script that exists but whose #! interpreter does not is not "command not found": the message names the
 * interpreter, as bash's does, and the exit code stays 127. */
Test(run, script_with_a_missing_interpreter_says_so) {
  char path[160];
  snprintf(path, sizeof(path), "%s/bad-interp.sh", sc.dir);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs("#!/nonexistent/interp -x\nexit 0\n", f);
  fclose(f);
  cr_assert_eq(chmod(path, 0755), 0);
  int rc = scenario_run(&sc, (const char *[]){"run", "--", path, NULL});
  const char *e = scenario_stderr(&sc);
  cr_assert_eq(rc, 127, "run exited %d: %s", rc, e);
  cr_assert_eq(strchr(e, '\n'), e + strlen(e) - 1, "not one line: %s", e);
  char want[256];
  snprintf(want, sizeof(want), "run: %s: bad interpreter /nonexistent/interp: No such file or directory", path);
  cr_assert_not_null(strstr(e, want), "%s", e);
  cr_assert_null(strstr(e, "command not found"), "%s", e);
}

static char *make_container(const char *const *labels) {
  struct dk_container_spec spec = {
      .image = "cleanup-test/busybox:latest",
      .cmd = (const char *[]){"sleep", "1000", NULL},
      .labels = labels,
      .network_mode = "none",
  };
  char *id = NULL;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(dk_container_create(sc.dk, &spec, &id, &err), 0, "%s", err ? err->msg : "");
  return id;
}

static bool container_exists(const char *id) {
  struct dk_container_info *info = NULL;
  int r = dk_container_inspect(sc.dk, id, &info, NULL);
  dk_container_info_free(info);
  return r == 0;
}

Test(run, corrupt_registry_is_moved_aside_and_its_session_still_collected) {
  const char *dead = "0badc0de0badc0de0badc0de0badc0de";
  char label[96];
  snprintf(label, sizeof(label), "io.cleanup-agent.session=%s", dead);
  _cleanup_free_ char *cid = make_container((const char *[]){label, sc.test_label, NULL});
  char path[256];
  snprintf(path, sizeof(path), "%s/sessions", sc.state);
  char cmd[1024];
  snprintf(cmd, sizeof(cmd), "mkdir -p -m 700 %s %s && printf '{\"session\": \"0bad' > %s/%s.json", sc.state, path,
           path, dead);
  cr_assert_eq(system(cmd), 0);

  int rc = scenario_run(&sc, (const char *[]){"run", "--", "true", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  const char *e = scenario_stderr(&sc);
  cr_assert_not_null(strstr(e, "is corrupt"), "%s", e);
  cr_assert_not_null(strstr(e, "moved aside"), "%s", e);
  cr_assert_not(container_exists(cid), "the dead session's container was not collected");
  snprintf(cmd, sizeof(cmd), "ls %s/%s.json.corrupt-* >/dev/null", path, dead);
  cr_assert_eq(system(cmd), 0, "the corrupt registry was not kept aside");
}

/* A lock or registry file planted as a symbolic link (here to /etc/passwd) is set aside once, with a warning, and
 * never followed: its target is untouched, and later runs and ps neither warn nor fail (ps names what was set aside).
 */
/* Plants a lock and a registry that are symbolic links, runs twice and checks they were set aside once. engine:
 * whether one answers (without one, nothing records where the planted ids' resources would be: they go anyway). */
static void symlinks_set_aside_once(bool engine) {
  const char *lock_id = "5e1f5e1f5e1f5e1f5e1f5e1f5e1f5e1f", *reg_id = "5e1f00005e1f00005e1f00005e1f0000";
  char dir[160], cmd[1024];
  snprintf(dir, sizeof(dir), "%s/sessions", sc.state);
  snprintf(cmd, sizeof(cmd),
           "mkdir -p -m 700 %s %s && ln -s /etc/passwd %s/%s.lock && ln -s /etc/passwd %s/%s.json && "
           "sha256sum /etc/passwd > %s/passwd.sum && stat -c %%Y%%s /etc/passwd > %s/passwd.stat",
           sc.state, dir, dir, lock_id, dir, reg_id, sc.dir, sc.dir);
  cr_assert_eq(system(cmd), 0);

  int rc = scenario_run(&sc, (const char *[]){"run", "--", "true", NULL});
  const char *e = scenario_stderr(&sc);
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, e);
  cr_assert_not_null(strstr(e, "symbolic link"), "no warning about the planted links: %s", e);
  for (int i = 0; i < 2; i++) {
    const char *name = i ? reg_id : lock_id, *ext = i ? "json" : "lock";
    snprintf(cmd, sizeof(cmd), "test ! -e %s/%s.%s && test ! -L %s/%s.%s", dir, name, ext, dir, name, ext);
    cr_assert_eq(system(cmd), 0, "%s.%s is still in place: %s", name, ext, e);
    snprintf(cmd, sizeof(cmd), "test \"$(readlink %s/%s.%s.symlink-*)\" = /etc/passwd", dir, name, ext);
    cr_assert_eq(system(cmd), 0, "%s.%s was not set aside as a link to /etc/passwd: %s", name, ext, e);
  }
  snprintf(cmd, sizeof(cmd),
           "sha256sum -c --status %s/passwd.sum && test \"$(stat -c %%Y%%s /etc/passwd)\" = \"$(cat %s/passwd.stat)\"",
           sc.dir, sc.dir);
  cr_assert_eq(system(cmd), 0, "/etc/passwd was changed");

  rc = scenario_run(&sc, (const char *[]){"run", "--", "true", NULL});
  cr_assert_eq(rc, 0, "the second run exited %d: %s", rc, scenario_stderr(&sc));
  if (engine)
    cr_assert_str_empty(scenario_stderr(&sc), "the second run still warns");
  else /* only the notices that there is no engine and which one it is */
    cr_assert_null(strstr(scenario_stderr(&sc), "warning"), "the second run still warns: %s", scenario_stderr(&sc));
  if (!engine) { /* gc only without an engine: never unrestricted against the shared one */
    rc = scenario_run(&sc, (const char *[]){"gc", NULL});
    cr_assert_eq(rc, 0, "gc exited %d: %s", rc, scenario_stderr(&sc));
    cr_assert_null(strstr(scenario_stderr(&sc), "error"), "gc: %s", scenario_stderr(&sc));
    cr_assert_null(strstr(scenario_stderr(&sc), "warning"), "gc: %s", scenario_stderr(&sc));
  }
  rc = scenario_run(&sc, (const char *[]){"ps", NULL});
  cr_assert_eq(rc, 0, "ps exited %d: %s", rc, scenario_stderr(&sc));
  /* No warning: ps names the two files set aside (issue 19), one line each, for gc to remove once old. */
  const char *pe = scenario_stderr(&sc);
  cr_assert(!strstr(pe, "warning") && cli_count_lines(pe) == 2 && strstr(pe, ".lock.symlink-") &&
                strstr(pe, ".json.symlink-"),
            "ps still warns, or does not name the files set aside: %s", pe);
  char out[160];
  snprintf(out, sizeof(out), "%s/out", sc.dir);
  cr_assert_null(strstr(scenario_read_text(out), lock_id), "ps still lists the planted lock's session");
}

Test(run, symlink_in_the_state_dir_is_set_aside_once) {
  symlinks_set_aside_once(true);
}

Test(run, symlink_in_the_state_dir_is_set_aside_once_without_an_engine) {
  snprintf(sc.docker_host, sizeof(sc.docker_host), "unix://%s/no-engine.sock", sc.dir);
  symlinks_set_aside_once(false);
}

/* False when process pid is gone or a zombie. */
static bool process_running(pid_t pid) {
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
  const char *st = scenario_read_text(path);
  const char *paren = strrchr(st, ')');
  return paren && paren[1] == ' ' && paren[2] != 'Z';
}

/* A CI runner's cancel, as GitHub's runner does it: SIGTERM to every process of the job (the agent, its guardian,
 * the command's tree), then SIGKILL of the agent a second later, well within its --grace (10 s by default). Other
 * runners add SIGHUP (GitLab's and Jenkins' agents when the job's terminal or session goes) and SIGINT (a Ctrl-C to
 * the process group): the guardian and the tree get those too (the agent only its TERM: a second signal makes it
 * kill the tree at once and finish before the SIGKILL, and then no guardian is needed). The guardian outlives them
 * and cleans up: the TERM-ignoring processes and the session's container are gone within seconds, without any later
 * start, and the guardian itself ends once its work is done. */
Test(run, runner_cancel_sigterm_to_all_then_sigkill_the_guardian_cleans) {
  pid_t agent;
  char id[128];
  start_leaky("10s", &agent, id);
  pid_t guardian = scenario_guardian_of(&sc, id);
  cr_assert_eq(scenario_count_docker(&sc, DK_CONTAINER, id), 1);
  char entry[160];
  snprintf(entry, sizeof(entry), "CLEANUP_AGENT_SESSION=%s", id);
  pid_t tree[256];
  int n = cli_find_env_processes(entry, tree, 256);
  cr_assert_gt(n, 50, "the command's tree: %d processes", n);

  cr_assert_eq(kill(agent, SIGTERM), 0); /* first: the command dying of the HUP is then the end of its grace */
  const int all[] = {SIGHUP, SIGINT, SIGTERM};
  for (size_t k = 0; k < ELEMENTSOF(all); k++) {
    (void)kill(guardian, all[k]); /* checked below: one that ended on it is gone */
    for (int i = 0; i < n && i < 256; i++)
      (void)kill(tree[i], all[k]); /* some may be gone already */
  }
  usleep(1000 * 1000);
  cr_assert(process_running(guardian), "SIGHUP, SIGINT or SIGTERM ended the guardian: %s", scenario_stderr(&sc));
  cr_assert_eq(kill(agent, SIGKILL), 0, "the agent ended within its grace");
  cr_assert_eq(scenario_wait(agent), 128 + SIGKILL);

  cr_assert(scenario_wait_nothing_left(&sc, id, 5000),
            "after the runner's cancel, session %s left %d processes and %d containers", id,
            scenario_count_processes(id), scenario_count_docker(&sc, DK_CONTAINER, id));
  for (int waited = 0; waited < 15000 && process_running(guardian); waited += 100)
    usleep(100 * 1000);
  cr_assert_not(process_running(guardian), "the guardian did not exit once its work was done");
}

Test(run, never_touches_what_is_not_provably_its_own_and_dead) {
  /* A live session of this host, holding its lock. */
  const char *live_script = scenario_script(&sc, "live.sh",
                                            "echo $CLEANUP_AGENT_SESSION > $OUT/session.tmp && "
                                            "mv $OUT/session.tmp $OUT/session\nexec sleep 1000\n");
  pid_t live = scenario_start(&sc, (const char *[]){"run", "--grace", "1s", "--", live_script, NULL});
  char live_id[128];
  cr_assert(scenario_read_marker(&sc, "session", 30000, live_id));

  /* A dead session: a lock file nobody holds. */
  const char *dead = "deaddeaddeaddeaddeaddeaddeaddead";
  char cmd[512], l_live[160], l_dead[96];
  snprintf(cmd, sizeof(cmd), "touch %s/sessions/%s.lock", sc.state, dead);
  cr_assert_eq(system(cmd), 0);
  snprintf(l_live, sizeof(l_live), "io.cleanup-agent.session=%s", live_id);
  snprintf(l_dead, sizeof(l_dead), "io.cleanup-agent.session=%s", dead);

  _cleanup_free_ char *unlabeled = make_container((const char *[]){sc.test_label, NULL});
  _cleanup_free_ char *of_live = make_container((const char *[]){l_live, sc.test_label, NULL});
  _cleanup_free_ char *kept =
      make_container((const char *[]){l_dead, "io.cleanup-agent.keep=true", sc.test_label, NULL});
  _cleanup_free_ char *bad_id =
      make_container((const char *[]){"io.cleanup-agent.session=../../../../etc/passwd", sc.test_label, NULL});
  _cleanup_free_ char *short_id =
      make_container((const char *[]){"io.cleanup-agent.session=dead", sc.test_label, NULL});
  _cleanup_free_ char *of_dead = make_container((const char *[]){l_dead, sc.test_label, NULL});

  /* Another run: its startup collection takes the dead session and nothing else. */
  int rc = scenario_run(&sc, (const char *[]){"run", "--", "true", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  cr_assert_not(container_exists(of_dead), "the dead session's container should be collected");
  cr_assert(container_exists(unlabeled), "an unlabeled container was removed");
  cr_assert(container_exists(of_live), "a live session's container was removed");
  cr_assert(container_exists(kept), "a keep=true container was removed");
  cr_assert(container_exists(bad_id), "a container with a malformed session label was removed");
  cr_assert(container_exists(short_id), "a container with a short session label was removed");
  cr_assert_eq(scenario_count_processes(live_id), 1, "the live session's command was touched");

  cr_assert_eq(kill(live, SIGTERM), 0);
  cr_assert_eq(scenario_wait(live), 143);
  cr_assert_not(container_exists(of_live), "the live session removes its own container when it ends");
  cr_assert(container_exists(kept), "keep=true survives its session");
}

/* ---- the engine, found the way the docker CLI finds it ------------------------------------------------------- */

/* A docker config dir as `docker context create` leaves it (each context under contexts/meta/<sha256 of its name>):
 * "symlinked" reaches the real engine through a symlink to its socket, so that the path tells which way was taken;
 * "dead" names a socket nobody answers. config.json makes "symlinked" current. Every other way to name an engine is
 * cleared, and XDG_RUNTIME_DIR is an empty dir. */
static struct { char config[160], live[160], dead[160], xdg[160]; } fx;

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "%s", path);
  fputs(text, f);
  cr_assert_eq(fclose(f), 0);
}

static void add_context(const char *sha, const char *name, const char *url) {
  char dir[300], path[320], meta[600];
  snprintf(dir, sizeof(dir), "mkdir -p %s/contexts/meta/%s", fx.config, sha);
  cr_assert_eq(system(dir), 0);
  snprintf(path, sizeof(path), "%s/contexts/meta/%s/meta.json", fx.config, sha);
  snprintf(meta, sizeof(meta),
           "{\"Name\":\"%s\",\"Metadata\":{},\"Endpoints\":{\"docker\":{\"Host\":\"%s\","
           "\"SkipTLSVerify\":false}}}",
           name, url);
  write_text(path, meta);
}

static void engine_fixture(void) {
  const char *h = getenv("DOCKER_HOST");
  const char *engine = h && strncmp(h, "unix://", 7) == 0 ? h + 7 : "/var/run/docker.sock";
  snprintf(fx.config, sizeof(fx.config), "%s/docker", sc.dir);
  snprintf(fx.live, sizeof(fx.live), "%s/live.sock", sc.dir);
  snprintf(fx.dead, sizeof(fx.dead), "%s/dead.sock", sc.dir);
  snprintf(fx.xdg, sizeof(fx.xdg), "%s/xdg", sc.dir);
  cr_assert_eq(symlink(engine, fx.live), 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  cr_assert_lt(strlen(fx.dead), sizeof(a.sun_path));
  memcpy(a.sun_path, fx.dead, strlen(fx.dead));
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0); /* bound, never listening: connect is refused */
  close(fd);
  cr_assert_eq(mkdir(fx.xdg, 0700), 0);
  char url[200];
  snprintf(url, sizeof(url), "unix://%s", fx.live);
  add_context("88c266918b3c8de8918ccfe2a27236ca78eadf7206a3ed9135c7ffbbbc8260da", "symlinked", url);
  snprintf(url, sizeof(url), "unix://%s", fx.dead);
  add_context("28a3a5e81d1e89f0efc70b63bf717b921373fc7fac70bc1b7e4d466799c0c6b0", "dead", url);
  char path[200];
  snprintf(path, sizeof(path), "%s/config.json", fx.config);
  write_text(path, "{\"auths\":{},\"currentContext\":\"symlinked\"}\n");
  setenv("DOCKER_CONFIG", fx.config, 1);
  setenv("XDG_RUNTIME_DIR", fx.xdg, 1);
  unsetenv("DOCKER_HOST");
  unsetenv("CLEANUP_AGENT_DOCKER_HOST");
  unsetenv("DOCKER_CONTEXT");
}

/* run -- (the DOCKER_HOST the command got), with --no-docker-proxy so that it is the engine's own address. */
static const char *command_docker_host(const char *const *globals, int want_rc) {
  const char *script =
      scenario_script(&sc, "host.sh", "echo \"$DOCKER_HOST\" > $OUT/host.tmp && mv $OUT/host.tmp $OUT/host");
  const char *args[16];
  size_t n = 0;
  for (; globals && globals[n]; n++)
    args[n] = globals[n];
  args[n++] = "run";
  args[n++] = "--no-docker-proxy";
  args[n++] = "--";
  args[n++] = script;
  args[n] = NULL;
  char path[200];
  snprintf(path, sizeof(path), "%s/host", sc.dir);
  unlink(path);
  int rc = scenario_run(&sc, args);
  cr_assert_eq(rc, want_rc, "run exited %d: %s", rc, scenario_stderr(&sc));
  static char host[128];
  cr_assert(scenario_read_marker(&sc, "host", 0, host), "the command did not run: %s", scenario_stderr(&sc));
  return host;
}

static void assert_says(const char *what, const char *fmt, ...) _printf_(2, 3);
static void assert_says(const char *what, const char *fmt, ...) {
  char want[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(want, sizeof(want), fmt, ap);
  va_end(ap);
  const char *e = scenario_stderr(&sc);
  cr_assert_not_null(strstr(e, want), "%s: stderr lacks \"%s\":\n%s", what, want, e);
}

Test(run, the_current_docker_context_names_the_engine_and_the_start_line_says_so) {
  engine_fixture();
  char want[200];
  snprintf(want, sizeof(want), "unix://%s", fx.live);
  cr_assert_str_eq(command_docker_host(NULL, 0), want, "%s", scenario_stderr(&sc));
  assert_says("start line", "engine unix://%s (docker context 'symlinked')", fx.live);

  /* Through the proxy too: the command's docker reaches the context's engine. */
  const char *script = scenario_script(&sc, "version.sh", "docker version --format '{{.Server.APIVersion}}' || exit 9");
  int rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  assert_says("start line with the proxy", "engine unix://%s (docker context 'symlinked')", fx.live);
}

Test(run, the_engine_is_found_in_the_docker_cli_order) {
  engine_fixture();
  char live[256], dead[256];
  snprintf(live, sizeof(live), "unix://%s", fx.live);
  snprintf(dead, sizeof(dead), "unix://%s", fx.dead);

  setenv("DOCKER_CONTEXT", "dead", 1); /* DOCKER_CONTEXT over config.json's currentContext */
  cr_assert_str_eq(command_docker_host(NULL, 0), dead);
  assert_says("DOCKER_CONTEXT", "engine %s (docker context 'dead')", dead);
  assert_says("DOCKER_CONTEXT", "%s", fx.dead); /* and the engine that does not answer is named */

  setenv("DOCKER_HOST", live, 1); /* DOCKER_HOST over any context */
  cr_assert_str_eq(command_docker_host(NULL, 0), live);
  assert_says("DOCKER_HOST", "engine %s (DOCKER_HOST)", live);

  setenv("CLEANUP_AGENT_DOCKER_HOST", dead, 1); /* ours over DOCKER_HOST */
  cr_assert_str_eq(command_docker_host(NULL, 0), dead);
  assert_says("CLEANUP_AGENT_DOCKER_HOST", "engine %s (CLEANUP_AGENT_DOCKER_HOST)", dead);

  cr_assert_str_eq(command_docker_host((const char *[]){"--docker-host", live, NULL}, 0), live); /* the flag last */
  assert_says("--docker-host", "engine %s (--docker-host)", live);

  unsetenv("DOCKER_HOST");
  unsetenv("CLEANUP_AGENT_DOCKER_HOST");
  setenv("DOCKER_CONTEXT", "default", 1); /* "default" is no context: the rootless socket, then the system's */
  cr_assert_str_eq(command_docker_host(NULL, 0), "unix:///var/run/docker.sock");
  cr_assert_null(strstr(scenario_stderr(&sc), "cleanup-agent: engine "), "a start line for the default engine: %s",
                 scenario_stderr(&sc));
  char rootless[180];
  snprintf(rootless, sizeof(rootless), "%s/docker.sock", fx.xdg);
  cr_assert_eq(symlink(fx.live, rootless), 0);
  snprintf(live, sizeof(live), "unix://%s", rootless);
  cr_assert_str_eq(command_docker_host(NULL, 0), live);
  assert_says("rootless", "engine %s (rootless socket)", live);
}

/* gc, kill and ps use the same engine as run; a context that does not exist is one line for every command. */
Test(run, every_command_follows_the_context_and_a_missing_one_is_one_line) {
  engine_fixture();
  setenv("DOCKER_CONTEXT", "dead", 1);
  (void)scenario_run(&sc, (const char *[]){"kill", "0123456789abcdef0123456789abcdef", NULL});
  assert_says("kill", "%s", fx.dead);
  int rc = scenario_run(&sc, (const char *[]){"gc", "--dry-run", NULL});
  assert_says("gc", "%s", fx.dead);

  setenv("DOCKER_CONTEXT", "nope", 1);
  /* gc with --dry-run: should the context be ignored, it must not collect on the real engine. */
  const char *id = "0123456789abcdef0123456789abcdef";
  const char *const cmds[][5] = {{"run", "--", "true", NULL},
                                 {"container-seq", "--no-such-option", NULL},
                                 {"gc", "--dry-run", NULL},
                                 {"ps", NULL},
                                 {"kill", id, NULL}};
  for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
    int want = streq(cmds[i][0], "run") || streq(cmds[i][0], "container-seq") ? 125 : 2;
    rc = scenario_run(&sc, cmds[i]);
    const char *e = scenario_stderr(&sc);
    cr_assert_eq(rc, want, "%s with a missing context exited %d: %s", cmds[i][0], rc, e);
    cr_assert_eq(cli_count_lines(e), 1, "%s: %s", cmds[i][0], e);
    cr_assert_not_null(strstr(e, "docker context 'nope'"), "%s: %s", cmds[i][0], e);
  }
  rc = scenario_run(&sc, (const char *[]){"run", "--help", NULL}); /* help needs no engine */
  cr_assert_eq(rc, 0, "run --help with a missing context exited %d: %s", rc, scenario_stderr(&sc));
  unsetenv("DOCKER_CONTEXT"); /* config.json's currentContext is checked as well */
  char path[200];
  snprintf(path, sizeof(path), "%s/config.json", fx.config);
  write_text(path, "{\"currentContext\":\"gone\"}\n");
  rc = scenario_run(&sc, (const char *[]){"run", "--", "true", NULL});
  cr_assert_eq(rc, 125, "run exited %d: %s", rc, scenario_stderr(&sc));
  assert_says("currentContext", "docker context 'gone'");
}

/* --label needs the proxy: asking for both --label and no proxy is a usage error; no proxy for another reason (a TCP
 * engine, a proxy that failed to start) is a warning. A proxy that fails to start is a warning in any case. */
Test(run, a_label_nothing_will_apply_is_never_silent) {
  engine_fixture();
  const char *script = scenario_script(&sc, "ran.sh", "echo ran > $OUT/ran");
  char ran[200];
  snprintf(ran, sizeof(ran), "%s/ran", sc.dir);
  int rc = scenario_run(&sc, (const char *[]){"run", "--no-docker-proxy", "--label", "team=a", "--", script, NULL});
  cr_assert_eq(rc, 125, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert_eq(cli_count_lines(scenario_stderr(&sc)), 1, "%s", scenario_stderr(&sc));
  assert_says("--no-docker-proxy", "--label");
  cr_assert_neq(access(ran, F_OK), 0, "the command ran");
  setenv("CLEANUP_AGENT_NO_DOCKER_PROXY", "yes", 1);
  rc = scenario_run(&sc, (const char *[]){"run", "--label", "team=a", "--", script, NULL});
  unsetenv("CLEANUP_AGENT_NO_DOCKER_PROXY");
  cr_assert_eq(rc, 125, "run exited %d: %s", rc, scenario_stderr(&sc));
  assert_says("CLEANUP_AGENT_NO_DOCKER_PROXY", "--label");

  /* An engine that does not answer yet (a dind still booting), a TCP one or a Unix one, gets the proxy all the same:
   * the label applies, and nothing warns. */
  rc = scenario_run(
      &sc, (const char *[]){"--docker-host", "tcp://127.0.0.1:1", "run", "--label", "team=a", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert_null(strstr(scenario_stderr(&sc), "--label team=a"), "%s", scenario_stderr(&sc));
  setenv("DOCKER_CONTEXT", "dead", 1);
  rc = scenario_run(&sc, (const char *[]){"run", "--label", "team=a", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert_null(strstr(scenario_stderr(&sc), "--label team=a"), "%s", scenario_stderr(&sc));
  cr_assert_null(strstr(scenario_stderr(&sc), "directly"), "%s", scenario_stderr(&sc));
}

/* A TCP context's TLS files reach a command given the engine itself (--no-docker-proxy) as the docker CLI's variables;
 * behind the proxy (a TCP context's or a Unix context's) it gets none, so that it does not try TLS on the session's
 * socket. */
Test(run, a_tcp_contexts_tls_files_reach_the_command_and_a_unix_context_clears_them) {
  engine_fixture();
  const char *sha = "a3f0d3f2a4a9d0c2b56e1b8c1b5b8f9c8a1d0e3f4b5c6d7e8f9a0b1c2d3e4f50"; /* any dir name will do */
  add_context(sha, "tls", "tcp://127.0.0.1:1");
  char tls[256], cmd[1200];
  snprintf(tls, sizeof(tls), "%s/contexts/tls/%s/docker", fx.config, sha);
  snprintf(cmd, sizeof(cmd), "mkdir -p %s && touch %s/ca.pem %s/cert.pem %s/key.pem", tls, tls, tls, tls);
  cr_assert_eq(system(cmd), 0);
  const char *script = scenario_script(
      &sc, "tls.sh", "echo \"$DOCKER_TLS_VERIFY $DOCKER_CERT_PATH\" > $OUT/tls.tmp && mv $OUT/tls.tmp $OUT/tls");
  setenv("DOCKER_CONTEXT", "tls", 1);
  int rc = scenario_run(&sc, (const char *[]){"run", "--no-docker-proxy", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  assert_says("start line", "engine tcp://127.0.0.1:1 (docker context 'tls')");
  char got[128], want[300];
  cr_assert(scenario_read_marker(&sc, "tls", 0, got));
  snprintf(want, sizeof(want), "1 %s", tls);
  cr_assert_str_eq(got, want);
  char marker[256];
  snprintf(marker, sizeof(marker), "%s/tls", sc.dir);
  cr_assert_eq(unlink(marker), 0);
  rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert(scenario_read_marker(&sc, "tls", 0, got));
  cr_assert_str_eq(got, " ", "the command behind the TCP context's proxy got TLS variables: '%s'", got);

  setenv("DOCKER_CONTEXT", "symlinked", 1);
  setenv("DOCKER_TLS_VERIFY", "1", 1);
  setenv("DOCKER_CERT_PATH", "/nonexistent", 1);
  rc = scenario_run(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert_eq(rc, 0, "run exited %d: %s", rc, scenario_stderr(&sc));
  cr_assert(scenario_read_marker(&sc, "tls", 0, got));
  cr_assert_str_eq(got, " ", "the command behind the proxy got TLS variables: '%s'", got);
}
