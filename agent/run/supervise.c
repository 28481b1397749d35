/* Supervision of run's command: signals, --timeout, the grace period and reaping. */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "receipt.h"
#include "run.h"

#define MAX_NAMED_SURVIVORS 10

void ag_run_report_survivors(struct run_state *s) {
  cg_proc_info *procs = NULL;
  size_t n = 0;
  _cleanup_error_ ca_error *err = NULL;
  if (cg_leaf_list_processes(s->leaf, &procs, &n, &err) < 0) {
    ag_session_warn(s->session, "list processes that outlived the command: %s", err->msg);
    return;
  }
  s->survivors = (unsigned)n;
  ag_receipt_processes_seen(procs, n, s->pid, 0);
  if (n == 0) {
    free(procs);
    return;
  }
  ca_buf b = CA_BUF_INIT(4096);
  for (size_t i = 0; i < n && i < MAX_NAMED_SURVIVORS; i++)
    (void)ca_buf_appendf(&b, NULL, "%s%s (pid %d)", i ? ", " : "", procs[i].comm, (int)procs[i].pid);
  if (n > MAX_NAMED_SURVIVORS)
    (void)ca_buf_appendf(&b, NULL, " and %zu more", n - MAX_NAMED_SURVIVORS);
  ca_log_notice("%zu process%s outlived the command: %s", n, n == 1 ? "" : "es", ca_buf_str(&b));
  ca_buf_free(&b);
  free(procs);
}

/* The receipt records what is in the leaf before a signal or kill reaches it (sig: the graceful signal; 0: the kill,
 * whose way the receipt names). */
static void record_tree(struct run_state *s, int sig) {
  cg_proc_info *procs = NULL;
  size_t n = 0;
  if (cg_leaf_list_processes(s->leaf, &procs, &n, NULL) < 0)
    return; /* the receipt misses them; the kill below does not */
  ag_receipt_processes_seen(procs, n, s->pid, sig);
  if (!sig)
    ag_receipt_processes_killed(procs, n, cg_leaf_kill_method(s->leaf));
  free(procs);
}

void ag_run_signal_tree(struct run_state *s, int sig) {
  record_tree(s, sig);
  (void)cg_leaf_signal_all(s->leaf, sig, NULL); /* the kill that follows is what guarantees the end */
}

int ag_run_kill_tree(struct run_state *s, uint64_t timeout_usec, ca_error **err) {
  record_tree(s, 0);
  return cg_leaf_kill_all(s->leaf, timeout_usec, err);
}

bool ag_run_reap(struct run_state *s, bool *main_exited) {
  int st;
  pid_t p;
  while ((p = waitpid(-1, &st, WNOHANG | WUNTRACED)) > 0) {
    if (p == s->pid && WIFSTOPPED(st)) {
      ag_run_command_stopped(s, WSTOPSIG(st));
    } else if (p == s->pid) {
      s->status = st;
      *main_exited = true;
    } else if (p == s->session->guardian.pid) {
      ag_session_warn(s->session,
                      "the guardian (pid %d) died; a crash of the agent would now leave this session to the next start",
                      (int)p);
      ag_session_guardian_exited(s->session);
    }
    /* Anything else is an orphan re-parented to us under process tracking: reaped (or stopped), nothing more. */
  }
  return *main_exited;
}

void ag_run_supervise(struct run_state *s, const struct run_opts *o, int sfd) {
  bool main_exited = false, killed = false;
  uint64_t now = ca_now_monotonic_usec();
  uint64_t deadline = o->timeout_usec ? now + o->timeout_usec : 0, grace_deadline = 0;

  for (;;) {
    if (ag_run_reap(s, &main_exited) && (!grace_deadline || killed))
      break;
    if (main_exited && grace_deadline && !killed) {
      /* The main process is gone while the tree had its grace period: let the rest finish within it. */
      now = ca_now_monotonic_usec();
      uint64_t left = grace_deadline > now ? grace_deadline - now : 0;
      if (cg_leaf_wait_empty(s->leaf, left, NULL) < 0) {
        (void)ag_run_kill_tree(s, 5000000, NULL); /* errors surface in the final kill */
        s->survivors++;
      }
      break;
    }
    now = ca_now_monotonic_usec();
    uint64_t next = 0;
    if (deadline && !grace_deadline)
      next = deadline;
    if (grace_deadline && !killed)
      next = grace_deadline;
    int timeout_ms = -1;
    if (next)
      timeout_ms = next > now ? (int)CA_MIN((next - now + 999) / 1000, 1000) : 0;
    else
      timeout_ms = 1000;
    struct pollfd pfd = {.fd = sfd, .events = POLLIN};
    int r = poll(&pfd, 1, timeout_ms);
    cg_leaf_sample(s->leaf);
    if (r > 0) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
        int sig = (int)si.ssi_signo;
        if (sig == SIGCHLD)
          continue;
        if (!grace_deadline) {
          s->signal = sig;
          char grace[32];
          ca_log_notice("got SIG%s: forwarding it to the command's tree, killing it after %s",
                        sigabbrev_np(sig) ? sigabbrev_np(sig) : "?", ca_format_duration(o->grace_usec, grace));
          ag_run_signal_tree(s, sig);
          grace_deadline = ca_now_monotonic_usec() + o->grace_usec;
        } else if (!killed) {
          /* A second signal: the user wants it over now. */
          (void)ag_run_kill_tree(s, 5000000, NULL);
          killed = true;
        }
      }
    }
    now = ca_now_monotonic_usec();
    if (deadline && !grace_deadline && now >= deadline) {
      char buf[32];
      s->timed_out = true;
      ca_log_notice("--timeout %s expired: sending SIGTERM to the command's tree",
                    ca_format_duration(o->timeout_usec, buf));
      ag_run_signal_tree(s, SIGTERM);
      grace_deadline = now + o->grace_usec;
    }
    if (grace_deadline && !killed && now >= grace_deadline) {
      (void)ag_run_kill_tree(s, 5000000, NULL);
      killed = true;
    }
  }
}
