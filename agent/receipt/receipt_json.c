/* The receipt in run's --report (schema 1, docs/RECEIPT.md): resources, processes and images, built with cJSON. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "receipt.h"

/* A NUL-separated command line as a JSON array of its arguments. */
static cJSON *argv_json(const char *cmdline, size_t len) {
  cJSON *a = cJSON_CreateArray();
  for (size_t at = 0; a && cmdline && at < len;) {
    size_t n = strnlen(cmdline + at, len - at);
    char arg[2049];
    snprintf(arg, sizeof(arg), "%.*s", (int)n, cmdline + at);
    cJSON_AddItemToArray(a, cJSON_CreateString(arg));
    at += n + 1;
  }
  return a;
}

static void add_string(cJSON *o, const char *key, const char *value) {
  if (value)
    cJSON_AddStringToObject(o, key, value);
  else
    cJSON_AddNullToObject(o, key);
}

/* RFC 3339 UTC, to the millisecond. */
static void add_time(cJSON *o, const char *key, uint64_t usec) {
  char stamp[40] = "";
  time_t t = (time_t)(usec / 1000000);
  struct tm tm;
  if (gmtime_r(&t, &tm)) {
    size_t n = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + n, sizeof(stamp) - n, ".%03uZ", (unsigned)(usec % 1000000 / 1000));
  }
  cJSON_AddStringToObject(o, key, stamp);
}

static cJSON *creator_json(const struct ag_receipt_creator *c) {
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  if (c->pid)
    cJSON_AddNumberToObject(o, "pid", c->pid);
  else
    cJSON_AddNullToObject(o, "pid");
  add_string(o, "exe", c->exe);
  cJSON_AddItemToObject(o, "argv", argv_json(c->cmdline, c->cmdline_len));
  add_string(o, "user_agent", c->user_agent);
  add_string(o, "testcontainers_session", c->tc_session);
  add_string(o, "compose_project", c->compose_project);
  char name[256];
  ag_receipt_creator_name(c, name, sizeof(name));
  cJSON_AddStringToObject(o, "name", name);
  return o;
}

static cJSON *resource_json(const struct ag_receipt_resource *r) {
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  cJSON_AddStringToObject(o, "kind", ag_receipt_kind_name(r->kind));
  add_string(o, "id", r->id);
  add_string(o, "name", r->name);
  add_string(o, "image", r->image);
  add_time(o, "created_at", r->created_usec);
  cJSON_AddItemToObject(o, "creator", creator_json(&r->creator));
  cJSON_AddStringToObject(o, "outcome", ag_receipt_outcome_name(r->outcome));
  if (r->outcome == AG_RECEIPT_NOT_REMOVED)
    add_string(o, "error", r->error);
  return o;
}

static cJSON *process_json(const struct ag_receipt_process *p) {
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  cJSON_AddNumberToObject(o, "pid", p->pid);
  cJSON_AddStringToObject(o, "comm", p->comm);
  add_string(o, "exe", p->exe);
  cJSON_AddItemToObject(o, "argv", argv_json(p->cmdline, p->cmdline_len));
  add_string(o, "killed_by", p->killed_by ? p->killed_by : "exited");
  return o;
}

static cJSON *image_json(const struct ag_receipt_image *im) {
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  cJSON_AddStringToObject(o, "id", im->id ? im->id : "");
  cJSON *tags = cJSON_AddArrayToObject(o, "tags");
  for (char **t = im->tags; tags && t && *t; t++)
    cJSON_AddItemToArray(tags, cJSON_CreateString(*t));
  cJSON_AddNumberToObject(o, "size_bytes", (double)im->size);
  return o;
}

int ag_receipt_json_add(const struct ag_receipt *r, cJSON *report) {
  cJSON *res = cJSON_AddArrayToObject(report, "resources");
  cJSON *procs = cJSON_AddArrayToObject(report, "processes");
  cJSON *images = cJSON_AddArrayToObject(report, "images");
  if (!res || !procs || !images)
    return -ENOMEM;
  for (size_t i = 0; i < r->n_resources; i++)
    cJSON_AddItemToArray(res, resource_json(&r->resources[i]));
  for (size_t i = 0; i < r->n_processes; i++)
    cJSON_AddItemToArray(procs, process_json(&r->processes[i]));
  for (size_t i = 0; i < r->n_images; i++)
    cJSON_AddItemToArray(images, image_json(&r->images[i]));
  cJSON_AddNumberToObject(report, "resources_unlisted", r->resources_unlisted);
  cJSON_AddNumberToObject(report, "processes_unlisted", r->processes_unlisted);
  cJSON_AddNumberToObject(report, "leaked", (double)ag_receipt_count_leaked(r));
  return 0;
}
