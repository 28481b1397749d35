/* container-seq against the real engine: results, JUnit, checkpoint and resume, self-protection, signals and the
 * guardian. Every container is made by the agent with the session label, which the scenario helpers count; test
 * files reach the host only through the scenario dir mounted at /out. */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "scenario.h"
#include "seq.h"
#include "session.h"

#define IMAGE "cleanup-test/busybox:latest"

static struct scenario sc;
static char mount_arg[160], cp_path[160], junit_path[160];
/* An agent or proxy a test started and has not reaped yet: teardown ends it when an assertion cut the test short. */
static pid_t live_agent, live_proxy;

static void setup(void) {
  scenario_setup(&sc);
  snprintf(mount_arg, sizeof(mount_arg), "%s:/out", sc.dir);
  snprintf(cp_path, sizeof(cp_path), "%s/checkpoint.json", sc.dir);
  snprintf(junit_path, sizeof(junit_path), "%s/junit.xml", sc.dir);
}
static void teardown(void) {
  if (live_agent > 0) {
    kill(live_agent, SIGTERM);
    waitpid(live_agent, NULL, 0);
  }
  if (live_proxy > 0) {
    kill(-live_proxy, SIGKILL);
    waitpid(live_proxy, NULL, 0);
  }
  scenario_teardown(&sc);
}

static int wait_agent(pid_t pid) {
  int rc = scenario_wait(pid);
  live_agent = 0;
  return rc;
}

TestSuite(container_seq, .init = setup, .fini = teardown, .timeout = 180 * AG_TIMEOUT_SCALE);

/* Writes <dir>/<name> (a test file run as `sh /out/<name>` in the container). */
static void test_file(const char *name, const char *body) {
  char path[256];
  snprintf(path, sizeof(path), "%s/%s", sc.dir, name);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(body, f);
  fclose(f);
}

static const char *scenario_stdout(void) {
  char path[128];
  snprintf(path, sizeof(path), "%s/out", sc.dir);
  return scenario_read_text(path);
}

/* The last line of s (without its newline) in ret. */
static void last_line(const char *s, char *ret, size_t len) {
  size_t n = strlen(s);
  while (n > 0 && s[n - 1] == '\n')
    n--;
  size_t start = n;
  while (start > 0 && s[start - 1] != '\n')
    start--;
  snprintf(ret, len, "%.*s", (int)(n - start), s + start);
}

/* The session id a test file printed as "<file> | <id>" (its other lines are skipped). */
static bool session_from_output(const char *out, const char *file, char ret[static 33]) {
  char needle[64];
  snprintf(needle, sizeof(needle), "%s | ", file);
  for (const char *p = strstr(out, needle); p; p = strstr(p + 1, needle)) {
    snprintf(ret, 33, "%s", p + strlen(needle));
    if (ca_session_id_valid(ret))
      return true;
  }
  return false;
}

/* argv: container-seq --image IMG --mount <dir>:/out --workdir /out [extra...] then files, --, sh {}. */
static const char **seq_args(const char *const *extra, const char *const *files) {
  static const char *argv[64];
  size_t n = 0;
  const char *head[] = {"container-seq", "--image", IMAGE, "--mount", mount_arg, "--workdir", "/out"};
  for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
    argv[n++] = head[i];
  for (size_t i = 0; extra && extra[i]; i++)
    argv[n++] = extra[i];
  for (size_t i = 0; files[i]; i++)
    argv[n++] = files[i];
  argv[n++] = "--";
  argv[n++] = "sh";
  argv[n++] = "{}";
  argv[n] = NULL;
  return argv;
}

/* Loads the checkpoint at cp_path for files and returns the number of finished results; fills the session id. */
static size_t load_checkpoint(const char *const *files, size_t n, struct seq_result *results, char session[33]) {
  const char *text = scenario_read_text(cp_path);
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(seq_checkpoint_parse(text, strlen(text), files, n, results, &err), 0, "checkpoint: %s\n%s",
               err ? err->msg : "", text);
  cJSON *j = cJSON_Parse(text);
  const cJSON *s = cJSON_GetObjectItemCaseSensitive(j, "session");
  cr_assert(cJSON_IsString(s) && ca_session_id_valid(s->valuestring));
  snprintf(session, 33, "%s", s->valuestring);
  cJSON_Delete(j);
  size_t done = 0;
  for (size_t i = 0; i < n; i++)
    done += results[i].outcome != SEQ_PENDING;
  return done;
}

Test(container_seq, five_files_pass_fail_timeout_oom_junit_and_nothing_left) {
  test_file("t1.sh", "echo $CLEANUP_AGENT_SESSION\necho 'to stderr' >&2\n");
  test_file("t2.sh", "echo 'before failing: <&> \"quoted\"'\nprintf 'bell \\007 esc \\033[1m done\\n'\nexit 3\n");
  test_file("t3.sh", "echo sleeping\nsleep 1000\n");
  /* One line that never ends: memory as fast as it reads. After half a second: containerd 1.6's shim watches a
   * container's cgroup for OOM only once `runc start` returned, so an OOM in the first milliseconds is lost for the
   * engine (and reported as a plain exit 137) on a loaded host (DESIGN.md, container-seq). */
  test_file("t4.sh", "sleep 0.5\ntail /dev/zero\n");
  test_file("t5.sh", "echo '3 passed, 0 failed, 0 skipped'\n");
  const char *files[] = {"t1.sh", "t2.sh", "t3.sh", "t4.sh", "t5.sh", NULL};
  /* The timeout counts from the container's start: scaled on a slow host (under TCG with ASan, t1 ran past 2 s). */
  const int timeout_s = 2 * AG_TIMEOUT_SCALE;
  char timeout[16], timed_out[64];
  snprintf(timeout, sizeof(timeout), "%ds", timeout_s);
  snprintf(timed_out, sizeof(timed_out), "\nFAIL t3.sh: timeout after %s\n", timeout);
  int rc = scenario_run(
      &sc, seq_args((const char *[]){"--memory", "16M", "--timeout", timeout, "--junit", junit_path, NULL}, files));
  const char *out = scenario_stdout();
  cr_assert_eq(rc, 1, "exit %d\nstdout:\n%s\nstderr:\n%s", rc, out, scenario_stderr(&sc));
  cr_assert_not_null(strstr(out, "\nPASS t1.sh ("), "%s", out);
  cr_assert_not_null(strstr(out, "t1.sh | to stderr\n"), "%s", out);
  cr_assert_not_null(strstr(out, "t2.sh | before failing: <&> \"quoted\"\n"), "%s", out);
  cr_assert_not_null(strstr(out, "\nFAIL t2.sh: exit 3\n"), "%s", out);
  cr_assert_not_null(strstr(out, "t3.sh | sleeping\n"), "%s", out);
  cr_assert_not_null(strstr(out, timed_out), "%s", out);
  cr_assert_not_null(strstr(out, "\nFAIL t4.sh: OOM-killed at 16M\n"), "%s", out);
  /* A test's output cannot pose as the summary: it is prefixed. */
  cr_assert_not_null(strstr(out, "t5.sh | 3 passed, 0 failed, 0 skipped\n"), "%s", out);
  cr_assert_not_null(strstr(out, "\nPASS t5.sh ("), "%s", out);
  char last[128];
  last_line(out, last, sizeof(last));
  cr_assert_str_eq(last, "2 passed, 3 failed, 0 skipped");
  /* Results in file order: one test at a time. */
  cr_assert_lt(strstr(out, "PASS t1.sh"), strstr(out, "t2.sh |"));
  cr_assert_lt(strstr(out, "FAIL t3.sh"), strstr(out, "FAIL t4.sh"));

  char id[33];
  cr_assert(session_from_output(out, "t1.sh", id), "%s", out);
  scenario_assert_nothing_left(&sc, id);

  /* JUnit: well-formed for a real XML parser, with the right counts, reasons and escaped output. */
  char cmd[2048];
  snprintf(cmd, sizeof(cmd),
           "/usr/bin/python3 -c 'import sys, xml.etree.ElementTree as E; s = E.parse(sys.argv[1]).getroot(); "
           "c = s.findall(\"testcase\"); "
           "assert s.tag == \"testsuite\" and s.get(\"tests\") == \"5\" and s.get(\"failures\") == \"3\", s.attrib; "
           "assert [x.get(\"name\") for x in c] == [\"t1.sh\",\"t2.sh\",\"t3.sh\",\"t4.sh\",\"t5.sh\"]; "
           "f = [x.find(\"failure\") for x in c]; "
           "assert [x is None for x in f] == [True, False, False, False, True]; "
           "assert [f[i].get(\"type\") for i in (1,2,3)] == [\"exit\",\"timeout\",\"oom\"]; "
           "assert f[1].get(\"message\") == \"exit 3\" and \"<&> \\\"quoted\\\"\" in f[1].text, f[1].text; "
           "assert all(float(x.get(\"time\")) >= 0 for x in c); assert float(c[2].get(\"time\")) >= %d' %s",
           timeout_s, junit_path);
  cr_assert_eq(system(cmd), 0, "invalid JUnit:\n%s", scenario_read_text(junit_path));
  const char *xml = scenario_read_text(junit_path);
  cr_assert_not_null(strstr(xml, "bell \\x07 esc \\x1b[1m done"), "%s", xml);
  cr_assert_null(strchr(xml, '\033'), "a raw control character in the XML");
}

Test(container_seq, self_protect_exits_42_and_resume_runs_only_the_rest) {
  test_file("a1.sh", "echo ran a1\n");
  test_file("a2.sh", "echo ran a2\nexit 1\n");
  test_file("a3.sh", "echo ran a3\n");
  test_file("a4.sh", "echo ran a4\n");
  const char *files[] = {"a1.sh", "a2.sh", "a3.sh", "a4.sh", NULL};
  /* Any host is over 1% CPU or 1% memory; the window is shortened so the test is quick. */
  setenv("CLEANUP_AGENT_PROTECT_WINDOW", "1s", 1);
  int rc = scenario_run(
      &sc, seq_args((const char *[]){"--checkpoint", cp_path, "--cpu-limit", "1", "--mem-limit", "1", NULL}, files));
  unsetenv("CLEANUP_AGENT_PROTECT_WINDOW");
  const char *err = scenario_stderr(&sc);
  cr_assert_eq(rc, 42, "exit %d: %s", rc, err);
  cr_assert_not_null(strstr(err, "stopped to protect the host"), "%s", err);
  cr_assert_not_null(strstr(err, "resume with --resume"), "%s", err);

  struct seq_result results[4] = {0};
  char id1[33];
  size_t done = load_checkpoint(files, 4, results, id1);
  cr_assert_lt(done, 4, "self-protect should stop the run before the end");
  scenario_assert_nothing_left(&sc, id1);
  char first_out[8192];
  snprintf(first_out, sizeof(first_out), "%s", scenario_stdout());
  char last[128], want[128];
  last_line(first_out, last, sizeof(last));
  size_t p1 = 0, f1 = 0;
  for (size_t i = 0; i < 4; i++) {
    p1 += results[i].outcome == SEQ_PASS;
    f1 += results[i].outcome == SEQ_FAIL;
    seq_result_done(&results[i]);
  }
  snprintf(want, sizeof(want), "%zu passed, %zu failed, %zu skipped", p1, f1, 4 - done);
  cr_assert_str_eq(last, want);

  rc = scenario_run(&sc, seq_args((const char *[]){"--checkpoint", cp_path, "--resume", NULL}, files));
  const char *out = scenario_stdout();
  cr_assert_eq(rc, 1, "exit %d (a2 fails)\n%s\n%s", rc, out, scenario_stderr(&sc));
  for (size_t i = 0; i < 4; i++) {
    char line[64];
    snprintf(line, sizeof(line), "%s | ran", files[i]);
    if (i < done)
      cr_assert_null(strstr(out, line), "%s ran again after --resume:\n%s", files[i], out);
    else
      cr_assert_not_null(strstr(out, line), "%s did not run after --resume:\n%s", files[i], out);
  }
  last_line(out, last, sizeof(last));
  cr_assert_str_eq(last, "3 passed, 1 failed, 0 skipped", "%s", out);
  char id2[33];
  struct seq_result r2[4] = {0};
  cr_assert_eq(load_checkpoint(files, 4, r2, id2), 4);
  for (size_t i = 0; i < 4; i++) {
    cr_assert_eq(r2[i].outcome, i == 1 ? SEQ_FAIL : SEQ_PASS);
    seq_result_done(&r2[i]);
  }
  scenario_assert_nothing_left(&sc, id2);
}

/* Starts a run whose second file writes <dir>/started and sleeps; returns once it is running. */
static pid_t start_long_run(void) {
  test_file("s1.sh", "echo quick\n");
  test_file("s2.sh", "echo $CLEANUP_AGENT_SESSION > /out/started.tmp && mv /out/started.tmp /out/started\n"
                     "exec sleep 1000\n");
  test_file("s3.sh", "echo never\n");
  const char *files[] = {"s1.sh", "s2.sh", "s3.sh", NULL};
  pid_t pid = live_agent = scenario_start(&sc, seq_args((const char *[]){"--checkpoint", cp_path, NULL}, files));
  char id[128];
  cr_assert(scenario_read_marker(&sc, "started", 60000, id), "s2.sh never started: %s", scenario_stderr(&sc));
  return pid;
}

Test(container_seq, sigterm_mid_test_exits_143_with_checkpoint_and_no_container) {
  pid_t pid = start_long_run();
  char id[128];
  cr_assert(scenario_read_marker(&sc, "started", 0, id));
  cr_assert_geq(scenario_count_docker(&sc, DK_CONTAINER, id), 1, "s2's container at least");
  cr_assert_eq(kill(pid, SIGTERM), 0);
  int rc = wait_agent(pid);
  cr_assert_eq(rc, 143, "exit %d: %s", rc, scenario_stderr(&sc));
  scenario_assert_nothing_left(&sc, id);

  const char *files[] = {"s1.sh", "s2.sh", "s3.sh"};
  struct seq_result results[3] = {0};
  char cp_id[33];
  cr_assert_eq(load_checkpoint(files, 3, results, cp_id), 1);
  cr_assert_str_eq(cp_id, id);
  cr_assert_eq(results[0].outcome, SEQ_PASS);
  cr_assert_eq(results[1].outcome, SEQ_PENDING, "the interrupted file must run again on --resume");
  cr_assert_eq(results[2].outcome, SEQ_PENDING);
  for (size_t i = 0; i < 3; i++)
    seq_result_done(&results[i]);
  const char *err = scenario_stderr(&sc);
  cr_assert_not_null(strstr(err, "stopped by SIGTERM after 1 of 3 files"), "%s", err);
  char last[128];
  last_line(scenario_stdout(), last, sizeof(last));
  cr_assert_str_eq(last, "1 passed, 0 failed, 2 skipped");
}

Test(container_seq, sigkill_of_the_agent_the_guardian_removes_the_containers) {
  pid_t pid = start_long_run();
  char id[128];
  cr_assert(scenario_read_marker(&sc, "started", 0, id));
  cr_assert_gt(scenario_count_docker(&sc, DK_CONTAINER, id), 0);
  cr_assert_eq(kill(pid, SIGKILL), 0);
  cr_assert_eq(wait_agent(pid), 128 + SIGKILL);
  for (int waited = 0; scenario_count_docker(&sc, DK_CONTAINER, id) > 0 && waited < 5000; waited += 100)
    usleep(100 * 1000);
  cr_assert_eq(scenario_count_docker(&sc, DK_CONTAINER, id), 0, "the guardian did not remove the containers in 5 s: %s",
               scenario_stderr(&sc));
  /* The next container may have been in flight: the registry stays while the guardian watches for it (10 s). */
  bool clean = scenario_wait_nothing_left(&sc, id, 15000);
  cr_assert(clean, "the guardian did not clean session %s in 15 s: %d containers, %d state files left; stderr:\n%s", id,
            scenario_count_docker(&sc, DK_CONTAINER, id), scenario_count_state_files(&sc), scenario_stderr(&sc));
  cr_assert_not_null(strstr(scenario_stderr(&sc), "guardian: the agent died"), "%s", scenario_stderr(&sc));
}

Test(container_seq, checkpoint_for_another_file_list_is_refused) {
  test_file("x1.sh", "echo $CLEANUP_AGENT_SESSION\n");
  test_file("x2.sh", "exit 0\n");
  test_file("x3.sh", "exit 0\n");
  int rc = scenario_run(
      &sc, seq_args((const char *[]){"--checkpoint", cp_path, NULL}, (const char *[]){"x1.sh", "x2.sh", NULL}));
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  char id[33];
  cr_assert(session_from_output(scenario_stdout(), "x1.sh", id));
  scenario_assert_nothing_left(&sc, id);
  char before[4096];
  snprintf(before, sizeof(before), "%s", scenario_read_text(cp_path));

  rc = scenario_run(&sc, seq_args((const char *[]){"--checkpoint", cp_path, "--resume", NULL},
                                  (const char *[]){"x1.sh", "x3.sh", NULL}));
  const char *err = scenario_stderr(&sc);
  cr_assert_eq(rc, 125, "exit %d: %s", rc, err);
  cr_assert_eq(strchr(err, '\n'), err + strlen(err) - 1, "not one line: %s", err);
  cr_assert_not_null(strstr(err, "made for another file list (2 files: x1.sh, x2.sh)"), "%s", err);
  cr_assert_str_eq(scenario_read_text(cp_path), before, "the refused checkpoint was changed");
  cr_assert_eq(scenario_count_state_files(&sc), 0);
  cr_assert_str_eq(scenario_stdout(), "", "nothing should have run");
}

Test(container_seq, usage_errors_are_one_line_and_125) {
  const char *bad[][8] = {
      {"container-seq", "t.sh", "--", "sh", NULL},
      {"container-seq", "--image", IMAGE, "--", "sh", NULL},
      {"container-seq", "--image", IMAGE, "t.sh", NULL},
      {"container-seq", "--image", IMAGE, "t.sh", "--", NULL},
      {"container-seq", "--image", IMAGE, "--memory", "lots", "t.sh", "--", "sh"},
      {"container-seq", "--image", IMAGE, "--mount", "relative", "t.sh", "--", "sh"},
      {"container-seq", "--image", IMAGE, "--cpu-limit", "150", "t.sh", "--", "sh"},
      {"container-seq", "--image", IMAGE, "--bogus", "t.sh", "--", "sh"},
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    const char *args[10] = {0};
    for (size_t k = 0; k < 8 && bad[i][k]; k++)
      args[k] = bad[i][k];
    int rc = scenario_run(&sc, args);
    const char *e = scenario_stderr(&sc);
    cr_assert_eq(rc, 125, "case %zu exited %d: %s", i, rc, e);
    cr_assert_eq(strchr(e, '\n'), e + strlen(e) - 1, "case %zu: not one line: %s", i, e);
  }
  cr_assert_eq(scenario_count_state_files(&sc), 0);
}

Test(container_seq, missing_image_is_an_agent_failure_and_leaves_nothing) {
  test_file("m1.sh", "exit 0\n");
  const char *args[] = {"container-seq",
                        "--image",
                        "cleanup-test/no-such-image:latest",
                        "--checkpoint",
                        cp_path,
                        "m1.sh",
                        "--",
                        "sh",
                        "{}",
                        NULL};
  int rc = scenario_run(&sc, args);
  const char *e = scenario_stderr(&sc);
  cr_assert_eq(rc, 125, "exit %d: %s", rc, e);
  cr_assert_not_null(strstr(e, "no-such-image"), "%s", e);
  cr_assert_eq(scenario_count_state_files(&sc), 0, "the session was not cleaned up");
}

/* ---- the engine going away: a unix-socket proxy to the real engine that the test kills and restarts ---------- */

static const char *engine_socket(void) {
  const char *h = getenv("DOCKER_HOST");
  return h && strncmp(h, "unix://", 7) == 0 ? h + 7 : "/var/run/docker.sock";
}

static _Noreturn void proxy_connection(int c) {
  int d = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof(a.sun_path), "%s", engine_socket());
  if (d < 0 || connect(d, (struct sockaddr *)&a, sizeof(a)) < 0)
    _exit(1);
  struct pollfd p[2] = {{.fd = c, .events = POLLIN}, {.fd = d, .events = POLLIN}};
  char buf[65536];
  for (;;) {
    if (poll(p, 2, -1) < 0)
      _exit(1);
    for (int i = 0; i < 2; i++) {
      if (!p[i].revents)
        continue;
      ssize_t n = read(p[i].fd, buf, sizeof(buf));
      if (n <= 0)
        _exit(0);
      for (ssize_t off = 0; off < n;) {
        ssize_t w = write(p[1 - i].fd, buf + off, (size_t)(n - off));
        if (w <= 0)
          _exit(0);
        off += w;
      }
    }
  }
}

/* Listens on path and forwards every connection to the engine; the whole proxy is one process group. */
static pid_t start_proxy(const char *path) {
  unlink(path);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    setpgid(0, 0);
    signal(SIGCHLD, SIG_IGN);
    int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    if (l < 0 || bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 64) < 0)
      _exit(1);
    for (;;) {
      int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
      if (c < 0)
        continue;
      if (fork() == 0) {
        close(l);
        proxy_connection(c);
      }
      close(c);
    }
  }
  setpgid(pid, pid);
  for (int i = 0; i < 100 && access(path, F_OK) != 0; i++)
    usleep(20000);
  cr_assert_eq(access(path, F_OK), 0, "the proxy did not start");
  live_proxy = pid;
  return pid;
}

/* The engine "goes away": the listener and every forwarded connection die at once. */
static void stop_proxy(pid_t pid) {
  kill(-pid, SIGKILL);
  waitpid(pid, NULL, 0);
  live_proxy = 0;
}

static pid_t start_through_proxy(const char *host, const char *const *files) {
  const char **args = seq_args((const char *[]){"--checkpoint", cp_path, NULL}, files);
  static const char *argv[70];
  argv[0] = "--docker-host";
  argv[1] = host;
  size_t n = 2;
  for (size_t i = 0; args[i]; i++)
    argv[n++] = args[i];
  argv[n] = NULL;
  return live_agent = scenario_start(&sc, argv);
}

Test(container_seq, engine_back_within_the_retry_budget_the_interrupted_file_runs_again) {
  test_file("e1.sh", "echo $CLEANUP_AGENT_SESSION\n");
  /* First attempt: tell the test we are running and hang; the rerun after the engine is back passes. */
  test_file("e2.sh", "if [ -e /out/started ]; then echo second attempt; exit 0; fi\n"
                     "echo $CLEANUP_AGENT_SESSION > /out/started.tmp && mv /out/started.tmp /out/started\n"
                     "exec sleep 1000\n");
  test_file("e3.sh", "echo e3\n");
  char sock[160], host[176];
  snprintf(sock, sizeof(sock), "%s/proxy.sock", sc.dir);
  snprintf(host, sizeof(host), "unix://%s", sock);
  pid_t proxy = start_proxy(sock);
  setenv("CLEANUP_AGENT_ENGINE_RETRY", "30s", 1);
  pid_t pid = start_through_proxy(host, (const char *[]){"e1.sh", "e2.sh", "e3.sh", NULL});
  unsetenv("CLEANUP_AGENT_ENGINE_RETRY");
  char id[128];
  cr_assert(scenario_read_marker(&sc, "started", 60000, id), "e2.sh never started: %s", scenario_stderr(&sc));
  stop_proxy(proxy);
  usleep(1500 * 1000);
  proxy = start_proxy(sock);
  int rc = wait_agent(pid);
  /* The engine stays up past the end: a create the engine's going away left unanswered (the next container, made
   * ahead) is watched for 10 s after it, at the engine the session recorded. */
  bool clean = scenario_wait_nothing_left(&sc, id, 20000);
  stop_proxy(proxy);
  const char *out = scenario_stdout();
  cr_assert_eq(rc, 0, "exit %d\n%s\n%s", rc, out, scenario_stderr(&sc));
  cr_assert_not_null(strstr(scenario_stderr(&sc), "the Docker engine went away"), "%s", scenario_stderr(&sc));
  cr_assert_not_null(strstr(out, "e2.sh | second attempt\n"), "%s", out);
  char last[128];
  last_line(out, last, sizeof(last));
  cr_assert_str_eq(last, "3 passed, 0 failed, 0 skipped");
  cr_assert(clean, "session %s is left: %s", id, scenario_stderr(&sc));
  scenario_assert_nothing_left(&sc, id);
}

Test(container_seq, engine_gone_for_good_checkpoint_then_the_next_start_collects) {
  test_file("g1.sh", "echo quick\n");
  test_file("g2.sh", "echo $CLEANUP_AGENT_SESSION > /out/started.tmp && mv /out/started.tmp /out/started\n"
                     "exec sleep 1000\n");
  test_file("g3.sh", "echo never\n");
  char sock[160], host[176];
  snprintf(sock, sizeof(sock), "%s/proxy.sock", sc.dir);
  snprintf(host, sizeof(host), "unix://%s", sock);
  pid_t proxy = start_proxy(sock);
  setenv("CLEANUP_AGENT_ENGINE_RETRY", "2s", 1);
  pid_t pid = start_through_proxy(host, (const char *[]){"g1.sh", "g2.sh", "g3.sh", NULL});
  unsetenv("CLEANUP_AGENT_ENGINE_RETRY");
  char id[128];
  cr_assert(scenario_read_marker(&sc, "started", 60000, id), "g2.sh never started: %s", scenario_stderr(&sc));
  stop_proxy(proxy);
  int rc = wait_agent(pid);
  const char *err = scenario_stderr(&sc);
  cr_assert_eq(rc, 125, "exit %d: %s", rc, err);
  cr_assert_not_null(strstr(err, "did not come back within 2s"), "%s", err);
  cr_assert_not_null(strstr(err, "resume with --resume"), "%s", err);
  const char *files[] = {"g1.sh", "g2.sh", "g3.sh"};
  struct seq_result results[3] = {0};
  char cp_id[33];
  cr_assert_eq(load_checkpoint(files, 3, results, cp_id), 1);
  for (size_t i = 0; i < 3; i++)
    seq_result_done(&results[i]);
  /* The real engine still has the session's containers and the registry says the session is dead. */
  cr_assert_geq(scenario_count_docker(&sc, DK_CONTAINER, id), 1);
  cr_assert_eq(scenario_count_state_files(&sc), 2, "the registry and lock are kept for a later collection");

  /* The next start collects it against the engine it recorded (the proxy's address), once that answers again. */
  proxy = start_proxy(sock);
  test_file("n1.sh", "exit 0\n");
  rc = scenario_run(&sc, seq_args(NULL, (const char *[]){"n1.sh", NULL}));
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  cr_assert_not_null(strstr(scenario_stderr(&sc), "collected 1 dead session"), "%s", scenario_stderr(&sc));
  cr_assert_eq(scenario_count_docker(&sc, DK_CONTAINER, id), 0);
  /* The registry goes once a guardian watched for creates still in flight (at most 10 s). */
  cr_assert(scenario_wait_nothing_left(&sc, id, 20000), "session %s was not forgotten within 20 s", id);
  stop_proxy(proxy);
}

/* The two session commands record the same things about a session: what a later cleanup (the guardian, the next
 * start, gc) reads from the registry must not depend on which command made it. Each session's command copies its
 * own registry while it runs: container-seq's test reads the state dir through the /out mount. */
Test(container_seq, registry_records_what_runs_registry_records) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "cat %s/sessions/$CLEANUP_AGENT_SESSION.json > %s/run-registry.json\n", sc.state, sc.dir);
  const char *script = scenario_script(&sc, "copy.sh", cmd);
  const char *run_args[] = {"run", "--", script, NULL};
  cr_assert_eq(scenario_run(&sc, run_args), 0, "%s", scenario_stderr(&sc));
  test_file("t1.sh", "cat /out/state/sessions/$CLEANUP_AGENT_SESSION.json > /out/seq-registry.json\n");
  const char *files[] = {"t1.sh", NULL};
  cr_assert_eq(scenario_run(&sc, seq_args(NULL, files)), 0, "%s", scenario_stderr(&sc));

  char path[256];
  snprintf(path, sizeof(path), "%s/run-registry.json", sc.dir);
  cJSON *run = cJSON_Parse(scenario_read_text(path));
  snprintf(path, sizeof(path), "%s/seq-registry.json", sc.dir);
  cJSON *seq = cJSON_Parse(scenario_read_text(path));
  cr_assert(cJSON_IsObject(run) && cJSON_IsObject(seq), "both sessions' registries were copied");
  const cJSON *item;
  cJSON_ArrayForEach(item, run) {
    cr_expect(cJSON_HasObjectItem(seq, item->string), "container-seq's registry lacks run's \"%s\"", item->string);
  }
  cJSON_ArrayForEach(item, seq) {
    cr_expect(cJSON_HasObjectItem(run, item->string), "run's registry lacks container-seq's \"%s\"", item->string);
  }
  const cJSON *root = cJSON_GetObjectItemCaseSensitive(seq, "cgroup_root");
  cr_assert(cJSON_IsString(root), "container-seq records its cgroup root");
  cr_assert_str_eq(root->valuestring, cJSON_GetObjectItemCaseSensitive(run, "cgroup_root")->valuestring);
  cr_assert_str_eq(cJSON_GetObjectItemCaseSensitive(seq, "mode")->valuestring, "container-seq");
  cJSON_Delete(run);
  cJSON_Delete(seq);
}
