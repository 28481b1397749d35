/* The threads of container-seq beside the main one, which runs the tests. Each talks to the engine through its own
 * dk_client (a client is one curl handle and is not thread-safe):
 *   - the creator creates the container of the next pending file while the current test runs;
 *   - the remover force-removes finished containers while the next test starts;
 *   - the events thread follows the engine's "oom" events of the session's containers;
 *   - the monitor takes SIGINT/SIGTERM/SIGHUP (sigtimedwait) and samples the host load, and cancels the wait when
 *     the run has to stop. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "seq-internal.h"

#define MONITOR_TICK_MS 250

const char *sig_name(int sig) {
  const char *n = sigabbrev_np(sig);
  return n ? n : "?";
}

void *creator_main(void *arg) {
  struct seq *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->quit && s->create_next >= CA_MIN(s->create_limit, s->n_order))
      pthread_cond_wait(&s->cv, &s->mu);
    if (s->quit)
      break;
    size_t k = s->create_next++;
    pthread_mutex_unlock(&s->mu);
    char *cid = NULL;
    ca_error *e = NULL;
    (void)container_spec_create(s, s->dk_create, s->order[k], 0, &cid, &e); /* e says why */
    pthread_mutex_lock(&s->mu);
    s->slots[k].cid = cid;
    s->slots[k].err = e;
    s->slots[k].ready = true;
    pthread_cond_broadcast(&s->cv);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

void *remover_main(void *arg) {
  struct seq *s = arg;
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (!s->quit && s->rm_n == 0)
      pthread_cond_wait(&s->cv, &s->mu);
    if (s->rm_n == 0)
      break; /* quit, and the queue is drained */
    char *cid = s->rm_queue[0];
    memmove(s->rm_queue, s->rm_queue + 1, --s->rm_n * sizeof(char *));
    pthread_mutex_unlock(&s->mu);
    _cleanup_error_ ca_error *e = NULL;
    if (dk_remove(s->dk_remove, DK_CONTAINER, cid, &e) < 0)
      ca_log_warning("remove container %.12s: %s (the end of the session tries again)", cid, e->msg);
    free(cid);
    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

static int on_event(void *userdata, const struct dk_event *ev) {
  struct seq *s = userdata;
  if (!ev->id || !streq(ev->action, "oom"))
    return 0;
  pthread_mutex_lock(&s->mu);
  if (s->oom_n == s->oom_cap) {
    size_t cap = s->oom_cap ? s->oom_cap * 2 : 8;
    char **v = realloc(s->oom_ids, cap * sizeof(char *));
    if (v) {
      s->oom_ids = v;
      s->oom_cap = cap;
    }
  }
  char *id = s->oom_n < s->oom_cap ? strdup(ev->id) : NULL;
  if (id)
    s->oom_ids[s->oom_n++] = id; /* out of memory: the inspect still tells most OOM kills */
  pthread_mutex_unlock(&s->mu);
  return 0;
}

/* Follows the engine's "oom" events for the session's containers until cancelled. */
void *events_main(void *arg) {
  struct seq *s = arg;
  char label[AG_SESSION_ID_LEN + 64];
  snprintf(label, sizeof(label), AG_LABEL_SESSION "=%s", s->id);
  const struct dk_filter filters[] = {{"type", "container"}, {"event", "oom"}, {"label", label}, {NULL, NULL}};
  struct dk_events_options eo = {.filters = filters, .on_event = on_event, .userdata = s};
  _cleanup_error_ ca_error *e = NULL;
  if (dk_events(s->dk_events, &eo, &s->events_cancel, &e) < 0 && e->code != ECANCELED)
    ca_log_info("engine events: %s (OOM kills are told from the containers' state alone)", e->msg);
  return NULL;
}

bool saw_oom_event(struct seq *s, const char *cid) {
  bool seen = false;
  pthread_mutex_lock(&s->mu);
  for (size_t i = 0; i < s->oom_n && !seen; i++)
    seen = streq(s->oom_ids[i], cid);
  pthread_mutex_unlock(&s->mu);
  return seen;
}

/* Hands a finished container to the remover (takes cid). */
void queue_removal(struct seq *s, char *cid) {
  if (!cid)
    return;
  pthread_mutex_lock(&s->mu);
  if (s->rm_n == s->rm_cap) {
    size_t cap = s->rm_cap ? s->rm_cap * 2 : 8;
    char **q = realloc(s->rm_queue, cap * sizeof(char *));
    if (!q) {
      pthread_mutex_unlock(&s->mu);
      free(cid); /* out of memory: the collection at the end removes it by label */
      return;
    }
    s->rm_queue = q;
    s->rm_cap = cap;
  }
  s->rm_queue[s->rm_n++] = cid;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

static void request_stop(struct seq *s, enum stop_reason why, int sig) {
  int expected = STOP_NONE;
  if (sig)
    atomic_store(&s->stop_signal, sig);
  if (atomic_compare_exchange_strong(&s->stop, &expected, (int)why) || why == STOP_SIGNAL)
    dk_cancel_request(&s->cancel);
  pthread_mutex_lock(&s->mu);
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

/* What is over its threshold in the last sample ("CPU 97% busy (limit 90%)"), or "" when nothing is. */
static void overload_reason(const struct seq *s, char *what, size_t size) {
  const struct seq_load *l = &s->load;
  what[0] = '\0';
  if (l->cpu_pct >= s->o->cpu_limit)
    snprintf(what, size, "CPU %.0f%% busy besides this suite's test (limit %.0f%%)", l->cpu_pct, s->o->cpu_limit);
  else if (l->mem_pct >= s->o->mem_limit)
    snprintf(what, size, "memory %.0f%% in use besides this suite's test (limit %.0f%%)", l->mem_pct, s->o->mem_limit);
  else if (l->have_psi && l->mem_stall_pct >= 100.0 - s->o->mem_limit)
    snprintf(what, size, "tasks stalled on memory %.0f%% of the time (PSI full avg10, limit %.0f%%)", l->mem_stall_pct,
             100.0 - s->o->mem_limit);
}

/* The running test's usage, to leave out of the host's load; pid 0 when there is none or it cannot be read (said
 * once: the whole host is judged then). */
static struct seq_own own_usage(struct seq *s, bool *warned) {
  struct seq_own own = {.pid = atomic_load(&s->own_pid)};
  _cleanup_error_ ca_error *e = NULL;
  cg_usage u;
  if (own.pid && cg_proc_usage(NULL, &s->mounts, own.pid, &u, &e) == 0) {
    own.cpu_usec = u.cpu_usec;
    own.anon_bytes = u.anon_bytes;
    own.has_memory = u.has_memory;
  } else if (own.pid) {
    if (e->code != ESRCH && !*warned)
      ca_log_warning("self-protect: cannot tell this suite's test from the host's load, judging the whole host: %s",
                     e->msg);
    *warned = *warned || e->code != ESRCH;
    own.pid = 0;
  }
  return own;
}

/* Samples the host load once. A threshold counts only when it holds for the whole window, so a compile burst next
 * door does not stop the suite; a host that stays overloaded does. *over_since: when the host went over, 0 while it
 * is not. */
static void check_load(struct seq *s, uint64_t *over_since, bool *warned, bool *warned_own) {
  _cleanup_error_ ca_error *e = NULL;
  struct seq_own own = own_usage(s, warned_own);
  if (seq_load_sample(&s->load, &own, &e) < 0) {
    if (!*warned)
      ca_log_warning("self-protect: cannot sample the host load: %s", e->msg);
    *warned = true;
    return;
  }
  char what[160];
  overload_reason(s, what, sizeof(what));
  uint64_t now = ca_now_monotonic_usec();
  if (!*what) {
    *over_since = 0;
    atomic_store(&s->over_now, false);
    return;
  }
  atomic_store(&s->over_now, true);
  if (!*over_since)
    *over_since = now;
  if (now - *over_since >= s->window_usec) {
    char win[32];
    snprintf(s->protect_msg, sizeof(s->protect_msg), "%s for %s", what, ca_format_duration(now - *over_since, win));
    request_stop(s, STOP_PROTECT, 0);
  }
}

/* Signals and, with --self-protect, the host load every MONITOR_TICK_MS. */
void *monitor_main(void *arg) {
  struct seq *s = arg;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  sigaddset(&set, SIGUSR1); /* from the main thread: quit */
  uint64_t over_since = 0;
  bool warned = false, warned_own = false;
  for (;;) {
    struct timespec ts = {0, MONITOR_TICK_MS * 1000000L};
    int sig = sigtimedwait(&set, NULL, &ts);
    if (sig == SIGUSR1)
      break;
    if (sig > 0) {
      if (atomic_load(&s->stop_signal) == 0)
        ca_log_notice("got SIG%s: stopping the current test, saving the checkpoint, removing the containers",
                      sig_name(sig));
      request_stop(s, STOP_SIGNAL, sig);
      continue;
    }
    if (s->o->self_protect && atomic_load(&s->stop) == STOP_NONE)
      check_load(s, &over_since, &warned, &warned_own);
  }
  return NULL;
}

void stop_workers(struct seq *s, pthread_t creator, pthread_t remover) {
  pthread_mutex_lock(&s->mu);
  s->quit = true;
  pthread_cond_broadcast(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(creator, NULL);
  pthread_join(remover, NULL);
}
