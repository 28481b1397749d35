/* run with a terminal (issue 20): through a pseudo-terminal, as a user at a shell would. A command that reads the
 * terminal gets it, an interactive shell works, the terminal comes back to the caller at the end, and a command
 * that stops is reported and stops the run with it, which continues when the run is continued. */
#include <criterion/criterion.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scenario.h"

static struct scenario sc;
static pid_t child; /* what runs on the pty's slave side, session leader there */
static int master = -1;
static char seen[16384]; /* everything the pty printed so far */
static size_t n_seen;

static void setup(void) {
  scenario_setup(&sc);
}
static void teardown(void) {
  if (child > 0) {
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    child = 0;
  }
  if (master >= 0)
    close(master);
  master = -1;
  n_seen = 0;
  scenario_teardown(&sc);
}

TestSuite(run_tty, .init = setup, .fini = teardown, .timeout = 120 * AG_TIMEOUT_SCALE);

/* Runs `sh -c script` on a new pty; the script finds the agent's command line in $AGENT. */
static void start_on_pty(const char *script) {
  char agent[512];
  snprintf(agent, sizeof(agent), "%s --state-dir %s --cgroup-root %s", AG_BINARY, sc.state, sc.cgroup_root);
  child = forkpty(&master, NULL, NULL, NULL);
  cr_assert_geq(child, 0, "forkpty");
  if (child == 0) {
    setenv("AGENT", agent, 1);
    execl("/bin/sh", "sh", "-c", script, (char *)NULL);
    _exit(127);
  }
}

static uint64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads the pty until want was printed or timeout_ms passed. */
static bool expect(const char *want, int timeout_ms) {
  uint64_t end = now_ms() + (uint64_t)timeout_ms;
  while (!memmem(seen, n_seen, want, strlen(want))) {
    uint64_t now = now_ms();
    struct pollfd p = {.fd = master, .events = POLLIN};
    if (now >= end || poll(&p, 1, (int)(end - now)) <= 0)
      return false;
    ssize_t n = read(master, seen + n_seen, sizeof(seen) - 1 - n_seen);
    if (n <= 0)
      return false;
    n_seen += (size_t)n;
    seen[n_seen] = '\0';
  }
  return true;
}

static void type(const char *text) {
  cr_assert_eq(write(master, text, strlen(text)), (ssize_t)strlen(text));
}

/* The exit code of the pty's shell, within timeout_ms (-1 when it did not end). */
static int wait_child(int timeout_ms) {
  for (int i = 0; i < timeout_ms / 20; i++) {
    int st;
    (void)expect("\1never printed\1", 0); /* drains the pty so the child never blocks on output */
    usleep(20 * 1000);
    if (waitpid(child, &st, WNOHANG) == child) {
      child = 0;
      return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
  }
  return -1;
}

Test(run_tty, a_command_that_reads_the_terminal_gets_it_and_gives_it_back) {
  /* After the run, the calling shell reads the terminal again: it can only when the agent gave it back. */
  start_on_pty("$AGENT run -- sh -c 'read x; echo \"got:$x\"'; echo \"run exited $?\"; read y; echo \"after:$y\"");
  type("hello\n");
  cr_assert(expect("got:hello", 15000), "the command could not read the terminal:\n%s", seen);
  cr_assert(expect("run exited 0", 15000), "%s", seen);
  type("back\n");
  cr_assert(expect("after:back", 15000), "the terminal did not come back to the caller:\n%s", seen);
  cr_assert_eq(wait_child(15000), 0, "%s", seen);
}

Test(run_tty, a_command_that_cannot_start_gives_the_terminal_back) {
  /* The command's process group takes the terminal before exec: when the exec fails, the agent takes it back before
   * it says so, and the calling shell reads the terminal again. */
  start_on_pty("$AGENT run -- /nonexistent/command; echo \"run exited $?\"; read y; echo \"after:$y\"");
  cr_assert(expect("run exited 127", 15000), "%s", seen);
  type("back\n");
  cr_assert(expect("after:back", 15000), "the terminal did not come back to the caller:\n%s", seen);
  cr_assert_eq(wait_child(15000), 0, "%s", seen);
}

Test(run_tty, an_interactive_shell_works) {
  start_on_pty("$AGENT run -- sh -i; echo \"run exited $?\"");
  type("echo in-$((1+2))\n");
  cr_assert(expect("in-3", 15000), "the interactive shell did not answer:\n%s", seen);
  type("exit 4\n");
  cr_assert(expect("run exited 4", 15000), "%s", seen);
  cr_assert_eq(wait_child(15000), 0, "%s", seen);
}

Test(run_tty, a_stopped_command_stops_the_run_and_continues_with_it) {
  /* The agent is the pty's session leader here; the test plays the shell: it sees the run stop, then continues it
   * as `fg` would. */
  char agent[512];
  snprintf(agent, sizeof(agent), "exec %s --state-dir %s --cgroup-root %s run -- sh -c 'kill -STOP $$; echo resumed'",
           AG_BINARY, sc.state, sc.cgroup_root);
  start_on_pty(agent);
  int st = 0;
  pid_t p = 0;
  for (int i = 0; i < 750 && p == 0; i++) {
    (void)expect("\1never printed\1", 0);
    usleep(20 * 1000);
    p = waitpid(child, &st, WNOHANG | WUNTRACED);
  }
  cr_assert_eq(p, child, "the run did not stop with its command:\n%s", seen);
  cr_assert(WIFSTOPPED(st), "the run ended instead of stopping (status %#x):\n%s", st, seen);
  cr_assert(expect("the command stopped (SIGSTOP)", 5000), "the stop was not reported:\n%s", seen);
  cr_assert_eq(kill(child, SIGCONT), 0);
  cr_assert(expect("resumed", 15000), "the command did not continue with the run:\n%s", seen);
  cr_assert_eq(wait_child(15000), 0, "%s", seen);
}
