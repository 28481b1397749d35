/* How the receipt names things for people: kinds, outcomes, creators, and the worst offender of the summary. */
#include <stdio.h>
#include <string.h>

#include "receipt.h"

const char *ag_receipt_kind_name(char kind) {
  return kind == 'c' ? "container" : kind == 'n' ? "network" : kind == 'v' ? "volume" : "resource";
}

const char *ag_receipt_outcome_name(enum ag_receipt_outcome o) {
  static const char *const names[] = {
      [AG_RECEIPT_PENDING] = "pending",
      [AG_RECEIPT_REMOVED_BY_CREATOR] = "removed_by_creator",
      [AG_RECEIPT_REMOVED_AT_END] = "removed_at_end",
      [AG_RECEIPT_KEPT] = "kept",
      [AG_RECEIPT_NOT_REMOVED] = "not_removed",
      [AG_RECEIPT_GONE] = "gone",
  };
  return names[o];
}

bool ag_receipt_resource_leaked(const struct ag_receipt_resource *res) {
  return res->outcome == AG_RECEIPT_REMOVED_AT_END || res->outcome == AG_RECEIPT_NOT_REMOVED ||
         res->outcome == AG_RECEIPT_KEPT;
}

bool ag_receipt_process_leaked(const struct ag_receipt_process *p) {
  return p->killed_by != NULL;
}

size_t ag_receipt_count_leaked(const struct ag_receipt *r) {
  size_t n = 0;
  for (size_t i = 0; i < r->n_resources; i++)
    n += ag_receipt_resource_leaked(&r->resources[i]);
  for (size_t i = 0; i < r->n_processes; i++)
    n += ag_receipt_process_leaked(&r->processes[i]);
  return n + r->resources_unlisted + r->processes_unlisted;
}

void ag_receipt_cmdline_text(const char *cmdline, size_t len, char *buf, size_t size) {
  size_t n = 0;
  for (size_t i = 0; i < len && n + 1 < size; i++)
    buf[n++] = cmdline[i] == '\0' ? ' ' : (cmdline[i] < 0x20 ? '?' : cmdline[i]);
  while (n && buf[n - 1] == ' ')
    n--;
  buf[n] = '\0';
  if (n + 1 >= size && len > n && size > 4)
    memcpy(buf + size - 4, "...", 4);
}

void ag_receipt_creator_name(const struct ag_receipt_creator *c, char *buf, size_t size) {
  char cmd[64];
  if (c->compose_project)
    snprintf(buf, size, "compose project %s", c->compose_project);
  else if (c->tc_session)
    snprintf(buf, size, "testcontainers session %s", c->tc_session);
  else if (c->pid && c->cmdline_len) {
    ag_receipt_cmdline_text(c->cmdline, c->cmdline_len, cmd, sizeof(cmd));
    snprintf(buf, size, "pid %d (%s)", (int)c->pid, cmd);
  } else if (c->pid)
    snprintf(buf, size, "pid %d", (int)c->pid);
  else
    snprintf(buf, size, "an unknown client");
}

/* The group a leaked resource counts for in the summary: its compose project, Testcontainers session, else its
 * creator's executable. */
static void offender_key(const struct ag_receipt_creator *c, char *buf, size_t size) {
  if (c->compose_project || c->tc_session || !c->exe)
    ag_receipt_creator_name(c, buf, size);
  else
    snprintf(buf, size, "%s", c->exe);
}

/* "3 containers and a network" from counts per kind (c, n, v). */
static void format_counts(const unsigned counts[3], char *buf, size_t size) {
  static const char kinds[] = "cnv";
  size_t parts = 0, done = 0, len = 0;
  for (size_t k = 0; k < 3; k++)
    parts += counts[k] > 0;
  buf[0] = '\0';
  for (size_t k = 0; k < 3 && len < size; k++) {
    if (!counts[k])
      continue;
    const char *sep = done == 0 ? "" : done + 1 == parts ? " and " : ", ";
    const char *name = ag_receipt_kind_name(kinds[k]);
    int w = counts[k] == 1 ? snprintf(buf + len, size - len, "%sa %s", sep, name)
                           : snprintf(buf + len, size - len, "%s%u %ss", sep, counts[k], name);
    len += w > 0 ? (size_t)w : 0;
    done++;
  }
}

bool ag_receipt_worst_offender(const struct ag_receipt *r, char *buf, size_t size) {
  char best[256] = "", key[256], other[256];
  unsigned best_total = 0, best_counts[3] = {0};
  /* Each group is counted from its first 512 leaked members on: bounded work for a receipt of thousands. */
  for (size_t i = 0; i < r->n_resources && i < 512; i++) {
    if (!ag_receipt_resource_leaked(&r->resources[i]))
      continue;
    offender_key(&r->resources[i].creator, key, sizeof(key));
    unsigned counts[3] = {0}, total = 0;
    for (size_t k = 0; k < r->n_resources; k++) {
      if (!ag_receipt_resource_leaked(&r->resources[k]))
        continue;
      offender_key(&r->resources[k].creator, other, sizeof(other));
      if (streq(key, other)) {
        const char *at = strchr("cnv", r->resources[k].kind);
        counts[at ? at - "cnv" : 0]++;
        total++;
      }
    }
    if (total > best_total) {
      best_total = total;
      memcpy(best_counts, counts, sizeof(counts));
      snprintf(best, sizeof(best), "%s", key);
    }
  }
  if (!best_total)
    return false;
  char what[160];
  format_counts(best_counts, what, sizeof(what));
  snprintf(buf, size, "%s left %s", best, what);
  return true;
}
