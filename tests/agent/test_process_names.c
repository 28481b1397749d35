/* The agent's helpers as an operator and a CI runner see them (issue 24): the guardian and the watcher for late
 * creates name themselves in ps (command line and comm), and drop the runners' tracking variables that would make a
 * runner kill them at the job's end, while the agent and the command keep them. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_run.h"
#include "scenario.h"

static struct scenario sc;

static void setup(void) {
  scenario_setup(&sc);
  /* What GitHub's runner, Jenkins and others put in a job's environment; the agent inherits it from here. */
  setenv("RUNNER_TRACKING_ID", "github_0c4ec24", 1);
  setenv("BUILD_ID", "jenkins-build-24", 1);
  setenv("JENKINS_NODE_COOKIE", "cookie-24", 1);
}

static void teardown(void) {
  scenario_teardown(&sc);
}

TestSuite(process_names, .init = setup, .fini = teardown, .timeout = 120 * AG_TIMEOUT_SCALE);

/* What `ps -o FIELD= -p PID` shows, trailing blanks cut (static buffer). */
static const char *ps_field(pid_t pid, const char *field) {
  static char out[512];
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "ps -o %s= -p %d", field, (int)pid);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t n = fread(out, 1, sizeof(out) - 1, p);
  pclose(p);
  while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
    n--;
  out[n] = '\0';
  return out;
}

/* Whether /proc/PID/environ holds an entry that starts with prefix ("NAME="). */
static bool environ_has(pid_t pid, const char *prefix) {
  char path[64], buf[65536];
  snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f, "%s", path);
  size_t n = fread(buf, 1, sizeof(buf) - 1, f);
  fclose(f);
  buf[n] = '\0';
  for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
    if (strncmp(buf + i, prefix, strlen(prefix)) == 0)
      return true;
  return false;
}

static void assert_scrubbed(pid_t pid, const char *who) {
  for (const char *const *v = (const char *const[]){"RUNNER_TRACKING_ID=", "BUILD_ID=", "JENKINS_NODE_COOKIE=", NULL};
       *v; v++)
    cr_assert_not(environ_has(pid, *v), "the %s (pid %d) still has %s in /proc/PID/environ", who, (int)pid, *v);
}

/* Starts run with a command that says its session and sleeps; its pid and session id. */
static pid_t start_sleeper(char id[static 128]) {
  char body[512];
  snprintf(body, sizeof(body),
           "echo \"$CLEANUP_AGENT_SESSION\" > %s/session.tmp && mv %s/session.tmp %s/session\n"
           "exec sleep 60\n",
           sc.dir, sc.dir, sc.dir);
  const char *script = scenario_script(&sc, "sleeper.sh", body);
  pid_t pid = scenario_start(&sc, (const char *[]){"run", "--", script, NULL});
  cr_assert(scenario_read_marker(&sc, "session", 30000, id), "the run never started: %s", scenario_stderr(&sc));
  return pid;
}

Test(process_names, guardian_names_itself_and_drops_the_runners_tracking_variables) {
  char id[128], want[200];
  pid_t agent = start_sleeper(id);
  pid_t guardian = scenario_guardian_of(&sc, id);
  snprintf(want, sizeof(want), "cleanup-agent: guardian of %s", id);
  cr_assert_str_eq(ps_field(guardian, "args"), want);
  cr_assert_str_eq(ps_field(guardian, "comm"), "ca-guardian");
  /* The agent's own command had them, and so has the command: only the guardian, which must outlive the job's end
   * to clean up, gives them up. */
  cr_assert(environ_has(agent, "RUNNER_TRACKING_ID=github_0c4ec24") && environ_has(agent, "BUILD_ID=") &&
            environ_has(agent, "JENKINS_NODE_COOKIE="));
  assert_scrubbed(guardian, "guardian");
  char entry[160];
  snprintf(entry, sizeof(entry), "CLEANUP_AGENT_SESSION=%s", id);
  pid_t tree[4];
  cr_assert_gt(cli_find_env_processes(entry, tree, 4), 0);
  cr_assert(environ_has(tree[0], "RUNNER_TRACKING_ID=github_0c4ec24"), "the command lost the runner's tracking id");
  cr_assert_eq(kill(agent, SIGTERM), 0);
  cr_assert_eq(scenario_wait(agent), 143);
  scenario_assert_nothing_left(&sc, id);
}

/* The pid of the process whose command line starts with prefix; 0 when there is none. */
static pid_t find_by_args(const char *prefix) {
  DIR *d = opendir("/proc");
  cr_assert_not_null(d);
  pid_t found = 0;
  for (struct dirent *de; !found && (de = readdir(d));) {
    char path[300], buf[256] = "";
    snprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
    FILE *f = fopen(path, "r");
    if (!f)
      continue;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (strncmp(buf, prefix, strlen(prefix)) == 0)
      found = atoi(de->d_name);
  }
  closedir(d);
  return found;
}

Test(process_names, late_create_watcher_names_itself_and_drops_the_variables) {
  char id[128], want[200];
  pid_t agent = start_sleeper(id);
  /* The whole job killed: the next start collects the session and hands it to a watcher for late creates. */
  cr_assert_eq(kill(scenario_guardian_of(&sc, id), SIGKILL), 0);
  cr_assert_eq(kill(agent, SIGKILL), 0);
  cr_assert_eq(scenario_wait(agent), 128 + SIGKILL);
  cr_assert_eq(scenario_run(&sc, (const char *[]){"run", "--", "true", NULL}), 0, "%s", scenario_stderr(&sc));
  snprintf(want, sizeof(want), "cleanup-agent: late-create watcher of %s", id);
  pid_t watcher = find_by_args(want);
  cr_assert_neq(watcher, 0, "no process shows '%s'", want);
  cr_assert_str_eq(ps_field(watcher, "args"), want);
  cr_assert_str_eq(ps_field(watcher, "comm"), "ca-watcher");
  assert_scrubbed(watcher, "watcher");
  cr_assert(scenario_wait_nothing_left(&sc, id, 20000), "the watcher did not forget session %s", id);
}

/* `cleanup-agent ps` of a session whose command is `sh -c '<script>'`: its stdout (static buffer). */
static const char *ps_of_script(const char *script, char id[static 128]) {
  char body[1024];
  snprintf(body, sizeof(body),
           ": start\necho \"$CLEANUP_AGENT_SESSION\" > %s/session.tmp && mv %s/session.tmp %s/session\n%s", sc.dir,
           sc.dir, sc.dir, script);
  pid_t agent = scenario_start(&sc, (const char *[]){"run", "--", "sh", "-c", body, NULL});
  cr_assert(scenario_read_marker(&sc, "session", 30000, id), "the run never started: %s", scenario_stderr(&sc));
  static char out[16384];
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "%s --state-dir %s ps", AG_BINARY, sc.state);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t n = fread(out, 1, sizeof(out) - 1, p);
  out[n] = '\0';
  cr_assert_eq(pclose(p), 0);
  cr_assert_eq(kill(agent, SIGTERM), 0);
  cr_assert_eq(scenario_wait(agent), 143);
  return out;
}

/* The line of session id in ps's table. */
static const char *row_of(const char *table, const char *id) {
  static char line[4096];
  const char *p = strstr(table, id);
  cr_assert_not_null(p, "ps does not list %s: %s", id, table);
  snprintf(line, sizeof(line), "%.*s", (int)strcspn(p, "\n"), p);
  return line;
}

Test(process_names, ps_shows_the_script_of_sh_c) {
  char id[128];
  /* A script longer than ps's column: what it starts with shows, quoted as a shell would take it, on one line. */
  const char *table =
      ps_of_script("exec sleep 60 # a comment long enough to make the script longer than any column "
                   "of a table: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                   "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n",
                   id);
  const char *row = row_of(table, id);
  cr_assert_not_null(strstr(row, "sh -c $': start\\necho \"$CLEANUP_AGENT_SESSION\" > "), "ps shows: %s", row);
  cr_assert_not_null(strstr(row, "..."), "a command cut to the column says so: %s", row);
  cr_assert_lt(strlen(row), 400, "ps's row is longer than a screen's width allows: %zu", strlen(row));
  /* One line per session: the script's newlines show as \n. */
  cr_assert_not_null(strstr(row, "\\n"), "%s", row);
  cr_assert_eq(cli_count_lines(table), 2, "a script with newlines broke the table into more lines: %s", table);
}

/* As a user without privileges (no PR_SET_MM), the name goes into the agent's own argv area, which the guardian
 * overwrites: ps shows it all the same when that area is long enough, as a runner's command line is. */
Test(process_names, guardian_of_a_user_without_privileges_names_itself) {
  char state[160], cmd[512], out[256];
  snprintf(state, sizeof(state), "%s/user-state", sc.dir);
  snprintf(cmd, sizeof(cmd), "chmod 755 %s && install -d -m 700 -o nobody %s", sc.dir, state);
  cr_assert_eq(system(cmd), 0);
  pid_t agent = fork();
  if (agent == 0) {
    execlp("setpriv", "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "env", "HOME=/",
           "DOCKER_HOST=unix:///nonexistent/docker.sock", "RUNNER_TRACKING_ID=github_nobody", "BUILD_ID=b",
           "JENKINS_NODE_COOKIE=j", AG_BINARY, "--state-dir", state, "run", "--no-docker-proxy", "--", "sleep", "30",
           (char *)NULL);
    _exit(127);
  }
  pid_t guardian = 0;
  for (int waited = 0; !guardian && waited < 10000; waited += 100) {
    FILE *p = popen("pgrep -u nobody -f '^cleanup-agent: guardian of [0-9a-f]{32}$'", "r");
    if (p && fgets(out, sizeof(out), p))
      guardian = atoi(out);
    if (p)
      pclose(p);
    if (!guardian)
      usleep(100 * 1000);
  }
  cr_assert_neq(guardian, 0, "no guardian of nobody's run shows its name");
  cr_assert_eq(strncmp(ps_field(guardian, "args"), "cleanup-agent: guardian of ", 27), 0, "%s",
               ps_field(guardian, "args"));
  cr_assert_str_eq(ps_field(guardian, "comm"), "ca-guardian");
  cr_assert(environ_has(agent, "RUNNER_TRACKING_ID=github_nobody"));
  assert_scrubbed(guardian, "guardian of nobody's run");
  cr_assert_eq(kill(agent, SIGTERM), 0);
  cr_assert_eq(scenario_wait(agent), 143);
}
