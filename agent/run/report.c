/* What run says at its end: the exit code, the one-line summary and the --report file. */
#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "agent.h"
#include "disk.h"
#include "receipt.h"
#include "run.h"

int ag_run_exit_code(struct run_state *s, const struct run_opts *o) {
  ag_run_report_oom_inside(s, o);
  if (s->timed_out)
    return AG_EXIT_TIMEOUT;
  if (s->signal)
    return 128 + s->signal;
  if (WIFEXITED(s->status))
    return WEXITSTATUS(s->status);
  int sig = WTERMSIG(s->status);
  if (sig == SIGKILL && s->have_stats && s->stats.oom_kills > 0) {
    char lim[32], peak[32];
    ca_log_error("the command was killed by the OOM killer (memory limit %s, peak %s)",
                 o->limits.memory_max ? ca_format_size(o->limits.memory_max, lim) : "none",
                 ca_format_size(s->stats.memory_peak, peak));
  }
  return 128 + sig;
}

/* What the end could not remove, each named with why, and whether the session stays registered for the next start
 * or gc: "not_removed": [{"kind": "container", "id": ..., "reason": ...}, {"kind": "cgroup", "reason": ...}]. */
static void add_left_behind(cJSON *j, const struct ag_session *session) {
  static const char *const kinds[] = {[DK_CONTAINER] = "container", [DK_NETWORK] = "network", [DK_VOLUME] = "volume"};
  cJSON *left = cJSON_AddArrayToObject(j, "not_removed");
  for (size_t i = 0; left && i < session->not_removed.n; i++) {
    const struct ag_not_removed_item *it = &session->not_removed.items[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", kinds[it->kind]);
    cJSON_AddStringToObject(o, "id", it->id);
    cJSON_AddStringToObject(o, "reason", it->reason);
    cJSON_AddItemToArray(left, o);
  }
  if (left && session->left) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "kind", "cgroup");
    cJSON_AddStringToObject(o, "reason", session->left);
    cJSON_AddItemToArray(left, o);
  }
  if (session->not_removed.more)
    cJSON_AddNumberToObject(j, "not_removed_unnamed", session->not_removed.more);
  cJSON_AddBoolToObject(j, "stays_registered", session->kept);
}

void ag_run_receipt_images(struct run_state *s) {
  if (!s->session->env.dk)
    return;
  _cleanup_(dk_images_freep) struct dk_images *l = NULL;
  _cleanup_error_ ca_error *err = NULL;
  if (ag_images_list_built_by(s->session->env.dk, s->session->id, &l, &err) < 0) {
    ca_log_warning("the receipt lists no images: %s", err->msg);
    return;
  }
  for (size_t i = 0; i < l->n; i++) {
    const char *by = ag_image_built_by(&l->v[i]);
    if (!by || !streq(by, s->session->id))
      continue;
    char **t = l->v[i].tags;
    bool untagged = !t || !t[0] || (streq(t[0], "<none>:<none>") && !t[1]);
    ag_receipt_image_add(l->v[i].id, untagged ? NULL : (const char *const *)t, (uint64_t)l->v[i].size);
  }
}

void ag_run_write_report(const struct run_state *s, const struct run_opts *o) {
  cJSON *j = cJSON_CreateObject();
  if (!j)
    return;
  cJSON_AddNumberToObject(j, "schema", 1); /* docs/RECEIPT.md */
  cJSON_AddStringToObject(j, "session", s->session->id);
  cJSON_AddNumberToObject(j, "status", s->exit_code);
  cJSON_AddBoolToObject(j, "timed_out", s->timed_out);
  if (s->signal)
    cJSON_AddNumberToObject(j, "signal", s->signal);
  cJSON_AddNumberToObject(j, "duration_ms", (double)(ca_now_monotonic_usec() - s->started_usec) / 1000.0);
  if (s->have_stats) {
    if (s->stats.has_memory) {
      cJSON_AddNumberToObject(j, "peak_memory_bytes", (double)s->stats.memory_peak);
      cJSON_AddNumberToObject(j, "oom_kills", (double)s->stats.oom_kills);
    }
    if (s->stats.has_pids)
      cJSON_AddNumberToObject(j, "pids_limit_hits", (double)s->stats.pids_limit_hits);
    if (s->stats.has_cpu)
      cJSON_AddNumberToObject(j, "cpu_usage_usec", (double)s->stats.cpu_usage_usec);
  }
  cJSON *lim = cJSON_AddObjectToObject(j, "limits");
  if (o->limits.memory_max)
    cJSON_AddNumberToObject(lim, "memory_bytes", (double)o->limits.memory_max);
  if (o->limits.pids_max)
    cJSON_AddNumberToObject(lim, "pids", (double)o->limits.pids_max);
  if (o->limits.cpus > 0)
    cJSON_AddNumberToObject(lim, "cpus", o->limits.cpus);
  cJSON_AddNumberToObject(j, "processes_killed", s->survivors);
  cJSON_AddNumberToObject(j, "containers_removed", s->session->collected.containers);
  cJSON_AddNumberToObject(j, "networks_removed", s->session->collected.networks);
  cJSON_AddNumberToObject(j, "volumes_removed", s->session->collected.volumes);
  cJSON_AddNumberToObject(j, "resources_failed", s->session->collected.failed);
  add_left_behind(j, s->session);
  (void)ag_receipt_json_add(ag_receipt_get(), j); /* out of memory: the report without the receipt */
  cJSON *w = cJSON_AddArrayToObject(j, "warnings");
  for (size_t i = 0; i < s->session->n_warnings; i++)
    cJSON_AddItemToArray(w, cJSON_CreateString(s->session->warnings[i]));
  char *text = cJSON_Print(j);
  cJSON_Delete(j);
  _cleanup_error_ ca_error *err = NULL;
  if (!text || ca_write_file_atomic(o->report, text, strlen(text), 0644, &err) < 0)
    ca_log_error("--report: %s", err ? err->msg : "out of memory");
  free(text);
}

void ag_run_write_junit(const struct run_state *s, const struct run_opts *o) {
  _cleanup_error_ ca_error *err = NULL;
  if (ag_receipt_junit_write(ag_receipt_get(), s->session->id, o->junit, &err) < 0)
    ca_log_error("%s", err->msg);
}

int ag_run_leak_exit_code(const struct run_state *s, const struct run_opts *o) {
  size_t leaked = ag_receipt_count_leaked(ag_receipt_get());
  if (o->on_leak != AG_ON_LEAK_FAIL || s->exit_code != 0 || leaked == 0)
    return s->exit_code;
  ca_log_error("--on-leak=fail: the command succeeded but left %zu resource%s or process%s behind (exit %d)", leaked,
               leaked == 1 ? "" : "s", leaked == 1 ? "" : "es", AG_EXIT_LEFT_BEHIND);
  return AG_EXIT_LEFT_BEHIND;
}

void ag_run_print_summary(const struct run_state *s, const struct run_opts *o) {
  struct ag_collect_stats st = s->session->collected;
  st.processes = s->survivors;
  char what[256], mem[96] = "", worst[320] = "";
  ag_collect_stats_format(&st, what, sizeof(what));
  bool limited = o->limits.memory_max || o->limits.pids_max || o->limits.cpus > 0;
  if (o->on_leak != AG_ON_LEAK_IGNORE && ag_receipt_worst_offender(ag_receipt_get(), worst + 2, sizeof(worst) - 2))
    memcpy(worst, "; ", 2);
  if (!*what && !limited)
    return;
  if (s->have_stats && s->stats.has_memory && s->stats.memory_peak) {
    char peak[32], lim[32];
    snprintf(mem, sizeof(mem), "peak memory %s%s%s", ca_format_size(s->stats.memory_peak, peak),
             o->limits.memory_max ? " of " : "", o->limits.memory_max ? ca_format_size(o->limits.memory_max, lim) : "");
  }
  ca_log_notice("session %.8s: %s%s%s%s", s->session->id, *what ? what : "nothing left behind", worst, *mem ? "; " : "",
                mem);
}
