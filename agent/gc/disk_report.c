/* gc's disk pass as people and programs read it: a table of the images and one line, or "disk" in gc's JSON. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "disk.h"

static const char *result_of(const struct ag_disk_item *it, bool dry_run) {
  if (it->error)
    return "failed";
  if (!it->done)
    return "kept";
  return dry_run ? "would-remove" : "removed";
}

static uint64_t freed(const struct ag_disk_pass *p) {
  uint64_t sum = 0;
  for (size_t i = 0; i < p->n; i++)
    sum += p->items[i].done ? p->items[i].size : 0;
  return sum;
}

static void print_items(const struct ag_disk_pass *p, bool dry_run) {
  if (!p->n)
    return;
  printf("%-9s  %-32s  %-32s  %-10s  %-8s  %s\n", "KIND", "ID", "SESSION", "SIZE", "UNUSED", "RESULT");
  time_t now = time(NULL);
  for (size_t i = 0; i < p->n; i++) {
    const struct ag_disk_item *it = &p->items[i];
    char size[32], age[32] = "-";
    if (now > it->last && it->last > 0)
      (void)ca_format_duration((uint64_t)(now - it->last) * 1000000u, age);
    printf("%-9s  %-32.32s  %-32s  %-10s  %-8s  %s\n", "image", it->id + (strncmp(it->id, "sha256:", 7) ? 0 : 7),
           it->session, ca_format_size(it->size, size), age, result_of(it, dry_run));
  }
}

void ag_disk_pass_print(const struct ag_disk_pass *p, const struct ag_disk_marks *m, bool dry_run) {
  char size[32];
  if (p->skipped)
    ca_log_notice("gc: disk: %s; no disk budget applied", p->skipped);
  if (p->ran && !p->over)
    ca_log_notice("gc: disk: %s at %.1f%%, under the high mark %u%%: nothing to remove", p->before.root, p->before.pct,
                  m->high);
  if (p->ran && p->over) {
    print_items(p, dry_run);
    ca_log_notice("gc: disk: %s at %.1f%% (high %u%%, low %u%%): %s %u image%s (%s), %s %.1f%%%s", p->before.root,
                  p->before.pct, m->high, m->low, dry_run ? "would remove" : "removed", p->removed,
                  p->removed == 1 ? "" : "s", ca_format_size(freed(p), size), dry_run ? "expected" : "now",
                  p->pct_after, p->pct_after >= m->low ? " (still above the low mark: nothing else may go)" : "");
  }
  if (m->build_cache_set && p->prune_error)
    ca_log_error("gc: build cache: %s", p->prune_error);
  else if (m->build_cache_set && dry_run)
    ca_log_notice("gc: build cache: %s, would prune %s%s beyond %s", ca_format_size(p->build_cache, (char[32]){0}),
                  p->pruned ? "at least " : "", ca_format_size(p->pruned, size),
                  ca_format_size(m->build_cache_keep, (char[32]){0}));
  else if (m->build_cache_set)
    ca_log_notice("gc: build cache: pruned %s beyond %s", ca_format_size(p->pruned, size),
                  ca_format_size(m->build_cache_keep, (char[32]){0}));
}

void ag_disk_pass_json(const struct ag_disk_pass *p, const struct ag_disk_marks *m, bool dry_run, void *json_object) {
  cJSON *d = cJSON_AddObjectToObject(json_object, "disk");
  if (!d)
    return;
  if (p->skipped)
    cJSON_AddStringToObject(d, "skipped", p->skipped);
  if (p->ran) {
    cJSON_AddStringToObject(d, "root", p->before.root);
    cJSON_AddNumberToObject(d, "high_percent", m->high);
    cJSON_AddNumberToObject(d, "low_percent", m->low);
    cJSON_AddNumberToObject(d, "before_percent", p->before.pct);
    cJSON_AddNumberToObject(d, "after_percent", p->pct_after);
  }
  cJSON *arr = cJSON_AddArrayToObject(d, "images");
  for (size_t i = 0; arr && i < p->n; i++) {
    const struct ag_disk_item *it = &p->items[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(arr, o);
    cJSON_AddStringToObject(o, "id", it->id);
    cJSON_AddStringToObject(o, "session", it->session);
    cJSON_AddNumberToObject(o, "size_bytes", (double)it->size);
    cJSON_AddNumberToObject(o, "last_used", (double)it->last);
    cJSON_AddStringToObject(o, "result", result_of(it, dry_run));
    if (it->error)
      cJSON_AddStringToObject(o, "error", it->error);
  }
  if (m->build_cache_set)
    cJSON_AddNumberToObject(d, "build_cache_pruned_bytes", (double)p->pruned);
  if (m->build_cache_set && dry_run && !p->prune_error)
    cJSON_AddNumberToObject(d, "build_cache_bytes", (double)p->build_cache);
}
