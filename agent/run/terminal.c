/* The terminal while the command runs (issue 20). When stdin is a terminal and the agent is its foreground, the
 * command's process group gets it (cg_spawn's take_terminal), as a shell gives it to a foreground job, and the agent
 * takes it back at the end. A command that stops (Ctrl-Z, SIGSTOP, SIGTTIN) stops the run with it when someone at a
 * terminal can continue it, as `sudo` does: the shell sees the run stopped and `fg` continues both; without a
 * terminal the stop is said once and the run waits (--timeout still ends it). */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "run.h"

bool ag_run_terminal_is_ours(void) {
  return isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();
}

/* tcsetpgrp from what may be a background group: with SIGTTOU blocked the kernel allows it. */
static void set_foreground(pid_t pgrp) {
  sigset_t ttou, old;
  sigemptyset(&ttou);
  sigaddset(&ttou, SIGTTOU);
  sigprocmask(SIG_BLOCK, &ttou, &old);
  (void)tcsetpgrp(STDIN_FILENO, pgrp); /* fails only when the terminal is gone: nothing left to give back */
  sigprocmask(SIG_SETMASK, &old, NULL);
}

void ag_run_terminal_take_back(struct run_state *s) {
  if (s->gave_terminal && tcgetpgrp(STDIN_FILENO) != getpgrp())
    set_foreground(getpgrp());
}

void ag_run_command_stopped(struct run_state *s, int sig) {
  const char *name = sigabbrev_np(sig) ? sigabbrev_np(sig) : "?";
  if (!isatty(STDIN_FILENO)) {
    if (!s->said_stopped)
      ca_log_notice("the command stopped (SIG%s); it stays stopped until something sends it SIGCONT", name);
    s->said_stopped = true;
    return;
  }
  ca_log_notice("the command stopped (SIG%s): the run stops with it; continue it with fg", name);
  ag_run_terminal_take_back(s);
  (void)raise(SIGSTOP); /* returns once the shell continued us */
  if (s->gave_terminal && ag_run_terminal_is_ours())
    set_foreground(s->pid);
  (void)kill(-s->pid, SIGCONT);
  (void)kill(s->pid, SIGCONT); /* a command that left its group: our child, stopped, not reaped, so still ours */
}
