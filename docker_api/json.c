/* Parsers of engine answers. Every answer is untrusted: each field is type-checked (common's ca_json_* helpers), absent
 * and null optional fields are tolerated, anything else malformed is an EBADMSG error that names the field. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "docker-internal.h"

/* ---- labels ------------------------------------------------------------------------------------------------ */

void dk_labels_clear(struct dk_labels *l) {
  if (!l)
    return;
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].key);
    free(l->v[i].value);
  }
  free(l->v);
  l->v = NULL;
  l->n = 0;
}

const char *dk_labels_get(const struct dk_labels *l, const char *key) {
  if (!l || !key)
    return NULL;
  for (size_t i = 0; i < l->n; i++)
    if (streq(l->v[i].key, key))
      return l->v[i].value;
  return NULL;
}

int dk_parse_labels(const cJSON *obj, const char *what, struct dk_labels *ret, ca_error **err) {
  const cJSON *o = NULL;
  int k = ca_json_object(obj, what, &o, err);
  if (k < 0)
    return k;
  struct dk_labels l = {0};
  if (!o) {
    *ret = l;
    return 0;
  }
  size_t n = (size_t)cJSON_GetArraySize(o);
  l.v = calloc(n ? n : 1, sizeof(*l.v));
  if (!l.v)
    return ca_error_set(err, ENOMEM, "out of memory");
  const cJSON *it;
  cJSON_ArrayForEach(it, o) {
    if (!cJSON_IsString(it) || !it->valuestring || !it->string) {
      k = ca_error_set(err, EBADMSG, "field %s.%s: expected a string, got %s", what, it->string ? it->string : "?",
                       ca_json_type_name(it));
      dk_labels_clear(&l);
      return k;
    }
    l.v[l.n].key = strdup(it->string);
    l.v[l.n].value = strdup(it->valuestring);
    l.n++;
    if (!l.v[l.n - 1].key || !l.v[l.n - 1].value) {
      dk_labels_clear(&l);
      return ca_error_set(err, ENOMEM, "out of memory");
    }
  }
  *ret = l;
  return 0;
}

/* ---- times ------------------------------------------------------------------------------------------------- */

int dk_parse_time(const char *s, int64_t *ret_us, ca_error **err) {
  int Y, M, D, h, m, sec, n = 0;
  if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n != 19)
    return ca_error_set(err, EBADMSG, "time \"%.40s\": expected RFC 3339", s ? s : "(null)");
  if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60 || Y < 1 || h < 0 || m < 0 || sec < 0)
    return ca_error_set(err, EBADMSG, "time \"%.40s\": field out of range", s);
  const char *p = s + n;
  int64_t frac_us = 0;
  if (*p == '.') {
    p++;
    int digits = 0;
    int64_t scale = 100000;
    while (*p >= '0' && *p <= '9') {
      if (digits < 6) {
        frac_us += (*p - '0') * scale;
        scale /= 10;
      }
      digits++;
      p++;
    }
    if (digits == 0 || digits > 9)
      return ca_error_set(err, EBADMSG, "time \"%.40s\": bad fraction", s);
  }
  int64_t offset_s = 0;
  if (*p == 'Z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int oh, om, k = 0;
    if (sscanf(p + 1, "%2d:%2d%n", &oh, &om, &k) != 2 || k != 5 || oh > 23 || om > 59 || oh < 0 || om < 0)
      return ca_error_set(err, EBADMSG, "time \"%.40s\": bad offset", s);
    offset_s = (int64_t)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
    p += 6;
  } else {
    return ca_error_set(err, EBADMSG, "time \"%.40s\": missing zone", s);
  }
  if (*p != '\0')
    return ca_error_set(err, EBADMSG, "time \"%.40s\": trailing characters", s);
  if (Y < 1970) {
    /* Go's zero time ("0001-01-01T00:00:00Z") means never */
    *ret_us = 0;
    return 0;
  }
  struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = sec};
  time_t t = timegm(&tm);
  *ret_us = ((int64_t)t - offset_s) * 1000000 + frac_us;
  return 0;
}

static int json_time(const cJSON *obj, const char *key, int64_t *ret_us, ca_error **err) {
  const char *s = NULL;
  int k = ca_json_string(obj, key, &s, err);
  if (k < 0 || !s || !s[0])
    return k;
  k = dk_parse_time(s, ret_us, err);
  return k < 0 ? ca_error_wrap(err, "field %s", key) : 0;
}

/* ---- lists ------------------------------------------------------------------------------------------------- */

void dk_item_clear(struct dk_item *it) {
  free(it->id);
  ca_strv_free(it->names);
  free(it->state);
  free(it->image);
  dk_labels_clear(&it->labels);
}

void dk_list_free(struct dk_list *l) {
  if (!l)
    return;
  for (size_t i = 0; i < l->n; i++)
    dk_item_clear(&l->items[i]);
  free(l->items);
  free(l);
}

const char *dk_item_label(const struct dk_item *item, const char *key) {
  return item ? dk_labels_get(&item->labels, key) : NULL;
}

static int dup_opt(const char *s, char **ret, ca_error **err) {
  if (!s)
    return 0;
  *ret = strdup(s);
  return *ret ? 0 : ca_error_set(err, ENOMEM, "out of memory");
}

static int names_one(const char *name, char ***ret, ca_error **err) {
  char **v = calloc(2, sizeof(char *));
  if (!v || !(v[0] = strdup(name))) {
    free(v);
    return ca_error_set(err, ENOMEM, "out of memory");
  }
  *ret = v;
  return 0;
}

static int parse_item(enum dk_kind kind, const cJSON *o, struct dk_item *it, ca_error **err) {
  if (!cJSON_IsObject(o))
    return ca_error_set(err, EBADMSG, "expected an object, got %s", ca_json_type_name(o));
  const char *id = NULL, *name = NULL, *state = NULL, *image = NULL;
  int k;
  if (kind == DK_VOLUME) {
    if ((k = ca_json_string(o, "Name", &name, err)) < 0)
      return k;
    if (!name || !name[0])
      return ca_error_set(err, EBADMSG, "volume without a Name");
    id = name;
    if ((k = json_time(o, "CreatedAt", &it->created_us, err)) < 0)
      return k;
  } else {
    if ((k = ca_json_string(o, "Id", &id, err)) < 0)
      return k;
    if (!id || !id[0])
      return ca_error_set(err, EBADMSG, "object without an Id");
  }
  if (kind == DK_NETWORK) {
    if ((k = ca_json_string(o, "Name", &name, err)) < 0 || (k = json_time(o, "Created", &it->created_us, err)) < 0)
      return k;
  }
  if (kind == DK_CONTAINER) {
    int64_t created = 0;
    if ((k = ca_json_string(o, "State", &state, err)) < 0 || (k = ca_json_string(o, "Image", &image, err)) < 0 ||
        (k = ca_json_int(o, "Created", 0, INT64_C(1) << 40, &created, err)) < 0)
      return k;
    it->created_us = created * 1000000;
    if ((k = ca_json_strv(o, "Names", &it->names, err)) < 0)
      return k;
    for (char **nm = it->names; *nm; nm++)
      if ((*nm)[0] == '/') /* the engine's "/name" */
        memmove(*nm, *nm + 1, strlen(*nm));
  } else if ((k = names_one(name ? name : "", &it->names, err)) < 0) {
    return k;
  }
  if ((k = dup_opt(id, &it->id, err)) < 0 || (k = dup_opt(state, &it->state, err)) < 0 ||
      (k = dup_opt(image, &it->image, err)) < 0)
    return k;
  return dk_parse_labels(o, "Labels", &it->labels, err);
}

int dk_parse_item(enum dk_kind kind, const char *json, size_t len, struct dk_item *ret, ca_error **err) {
  const char *end = NULL;
  _cleanup_json_ cJSON *o = cJSON_ParseWithLengthOpts(json, len, &end, false);
  if (!o || end != json + len)
    return ca_error_set(err, EBADMSG, "not JSON");
  struct dk_item it = {0};
  int k = parse_item(kind, o, &it, err);
  if (k < 0) {
    dk_item_clear(&it);
    return k;
  }
  *ret = it;
  return 0;
}

/* A dk_list filled one element at a time: capacity doubles, so memory follows what is kept, never the answer. */
struct list_fill {
  enum dk_kind kind;
  struct dk_list *l;
  size_t cap;
};

static int list_fill_add(void *userdata, const char *json, size_t len, ca_error **err) {
  struct list_fill *f = userdata;
  if (f->l->n == f->cap) {
    size_t cap = f->cap ? f->cap * 2 : 16;
    struct dk_item *v = realloc(f->l->items, cap * sizeof(*v));
    if (!v)
      return ca_error_set(err, ENOMEM, "out of memory");
    f->l->items = v;
    f->cap = cap;
  }
  int k = dk_parse_item(f->kind, json, len, &f->l->items[f->l->n], err);
  if (k < 0)
    return ca_error_wrap(err, "list item %zu", f->l->n);
  f->l->n++;
  return 0;
}

int dk_list_fill_init(struct dk_list_fill_ctx *ctx, enum dk_kind kind, size_t max_value, ca_error **err) {
  struct list_fill *f = calloc(1, sizeof(*f));
  if (!f || !(f->l = calloc(1, sizeof(*f->l)))) {
    free(f);
    return ca_error_set(err, ENOMEM, "out of memory");
  }
  f->kind = kind;
  ctx->fill = f;
  dk_split_init(&ctx->split, kind == DK_VOLUME ? DK_SPLIT_VOLUMES : DK_SPLIT_ARRAY, max_value, list_fill_add, f);
  return 0;
}

struct dk_list *dk_list_fill_take(struct dk_list_fill_ctx *ctx) {
  struct list_fill *f = ctx->fill;
  struct dk_list *l = f ? TAKE_PTR(f->l) : NULL;
  return l;
}

void dk_list_fill_done(struct dk_list_fill_ctx *ctx) {
  struct list_fill *f = ctx->fill;
  if (f) {
    dk_list_free(f->l);
    free(f);
  }
  ctx->fill = NULL;
  dk_split_done(&ctx->split);
}

int dk_parse_list(enum dk_kind kind, const char *json, size_t len, struct dk_list **ret, ca_error **err) {
  struct dk_list_fill_ctx ctx = {0};
  int k = dk_list_fill_init(&ctx, kind, 0, err);
  if (k < 0)
    return k;
  if ((k = dk_split_feed(&ctx.split, json, len, err)) == 0 && (k = dk_split_finish(&ctx.split, err)) == 0)
    *ret = dk_list_fill_take(&ctx);
  dk_list_fill_done(&ctx);
  return k;
}

/* ---- container inspect ------------------------------------------------------------------------------------- */

void dk_container_info_free(struct dk_container_info *i) {
  if (!i)
    return;
  free(i->id);
  free(i->name);
  free(i->image);
  free(i->image_id);
  free(i->status);
  free(i->error);
  dk_labels_clear(&i->labels);
  free(i);
}

int dk_parse_container_info(const char *json, size_t len, struct dk_container_info **ret, ca_error **err) {
  _cleanup_json_ cJSON *j = NULL;
  int k = ca_json_parse(json, len, "inspect", &j, err);
  if (k < 0)
    return k;
  if (!cJSON_IsObject(j))
    return ca_error_set(err, EBADMSG, "inspect: expected an object, got %s", ca_json_type_name(j));
  _cleanup_(dk_container_info_freep) struct dk_container_info *i = calloc(1, sizeof(*i));
  if (!i)
    return ca_error_set(err, ENOMEM, "out of memory");
  const char *id = NULL, *name = NULL, *image_id = NULL, *image = NULL, *status = NULL, *error = NULL;
  const cJSON *config = NULL, *state = NULL;
  int64_t exit_code = 0, pid = 0;
  if ((k = ca_json_string(j, "Id", &id, err)) < 0 || (k = ca_json_string(j, "Name", &name, err)) < 0 ||
      (k = ca_json_string(j, "Image", &image_id, err)) < 0 || (k = json_time(j, "Created", &i->created_us, err)) < 0 ||
      (k = ca_json_object(j, "Config", &config, err)) < 0 || (k = ca_json_object(j, "State", &state, err)) < 0)
    return ca_error_wrap(err, "inspect");
  if (!id || !id[0] || !state)
    return ca_error_set(err, EBADMSG, "inspect: answer lacks Id or State");
  if ((k = ca_json_string(config, "Image", &image, err)) < 0 ||
      (k = dk_parse_labels(config, "Labels", &i->labels, err)) < 0)
    return ca_error_wrap(err, "inspect: Config");
  if ((k = ca_json_string(state, "Status", &status, err)) < 0 ||
      (k = ca_json_bool(state, "Running", &i->running, err)) < 0 ||
      (k = ca_json_bool(state, "OOMKilled", &i->oom_killed, err)) < 0 ||
      (k = ca_json_int(state, "ExitCode", INT32_MIN, INT32_MAX, &exit_code, err)) < 0 ||
      (k = ca_json_int(state, "Pid", 0, INT32_MAX, &pid, err)) < 0 ||
      (k = ca_json_string(state, "Error", &error, err)) < 0 ||
      (k = json_time(state, "StartedAt", &i->started_us, err)) < 0 ||
      (k = json_time(state, "FinishedAt", &i->finished_us, err)) < 0)
    return ca_error_wrap(err, "inspect: State");
  i->exit_code = (int)exit_code;
  i->pid = (int)pid;
  if (name && name[0] == '/')
    name++;
  if ((k = dup_opt(id, &i->id, err)) < 0 || (k = dup_opt(name, &i->name, err)) < 0 ||
      (k = dup_opt(image, &i->image, err)) < 0 || (k = dup_opt(image_id, &i->image_id, err)) < 0 ||
      (k = dup_opt(status, &i->status, err)) < 0 || (k = dup_opt(error && error[0] ? error : NULL, &i->error, err)) < 0)
    return k;
  *ret = TAKE_PTR(i);
  return 0;
}

/* ---- events and wait --------------------------------------------------------------------------------------- */

int dk_parse_event(const char *line, size_t len, cJSON **ret_json, struct dk_event *ev, ca_error **err) {
  _cleanup_json_ cJSON *j = NULL;
  int k = ca_json_parse(line, len, "event", &j, err);
  if (k < 0)
    return k;
  if (!cJSON_IsObject(j))
    return ca_error_set(err, EBADMSG, "event: expected an object, got %s", ca_json_type_name(j));
  struct dk_event e = {.type = "", .action = "", .id = ""};
  const cJSON *actor = NULL;
  if ((k = ca_json_string(j, "Type", &e.type, err)) < 0 || (k = ca_json_string(j, "Action", &e.action, err)) < 0 ||
      (k = ca_json_int(j, "timeNano", 0, INT64_MAX, &e.time_ns, err)) < 0 ||
      (k = ca_json_object(j, "Actor", &actor, err)) < 0 || (k = ca_json_string(actor, "ID", &e.id, err)) < 0 ||
      (k = dk_parse_labels(actor, "Attributes", &e.attributes, err)) < 0)
    return ca_error_wrap(err, "event");
  if (!e.action[0]) {
    dk_labels_clear(&e.attributes);
    return ca_error_set(err, EBADMSG, "event: no Action");
  }
  *ev = e;
  *ret_json = TAKE_PTR(j);
  return 0;
}

int dk_parse_wait_result(const char *json, size_t len, int *ret_exit_code, ca_error **err) {
  _cleanup_json_ cJSON *j = NULL;
  int k = ca_json_parse(json, len, "wait", &j, err);
  if (k < 0)
    return k;
  int64_t code = INT64_MIN;
  const cJSON *e = NULL;
  const char *msg = NULL;
  if ((k = ca_json_int(j, "StatusCode", INT32_MIN, INT32_MAX, &code, err)) < 0 ||
      (k = ca_json_object(j, "Error", &e, err)) < 0 || (k = ca_json_string(e, "Message", &msg, err)) < 0)
    return ca_error_wrap(err, "wait");
  if (msg && msg[0])
    return ca_error_set(err, EIO, "wait: engine reported: %s", msg);
  if (code == INT64_MIN)
    return ca_error_set(err, EBADMSG, "wait: answer lacks StatusCode");
  *ret_exit_code = (int)code;
  return 0;
}

int dk_parse_version(const char *json, size_t len, char **ret_version, char **ret_os, ca_error **err) {
  _cleanup_json_ cJSON *j = NULL;
  int k = ca_json_parse(json, len, "GET /version", &j, err);
  if (k < 0)
    return k;
  const char *version = NULL, *os = NULL;
  if ((k = ca_json_string(j, "Version", &version, err)) < 0 || (k = ca_json_string(j, "Os", &os, err)) < 0)
    return ca_error_wrap(err, "GET /version");
  if (!version || !os)
    return ca_error_set(err, EBADMSG, "GET /version: answer lacks Version or Os");
  _cleanup_free_ char *v = strdup(version), *o = strdup(os);
  if (!v || !o)
    return ca_error_set(err, ENOMEM, "out of memory");
  *ret_version = TAKE_PTR(v);
  *ret_os = TAKE_PTR(o);
  return 0;
}

int dk_json_add_labels(cJSON *obj, const char *const *labels, ca_error **err) {
  cJSON *o = cJSON_AddObjectToObject(obj, "Labels");
  if (!o)
    return ca_error_set(err, ENOMEM, "out of memory");
  for (const char *const *l = labels; l && *l; l++) {
    int k = dk_label_validate(*l, err);
    if (k < 0)
      return k;
    const char *eq = strchr(*l, '=');
    _cleanup_free_ char *key = strndup(*l, (size_t)(eq - *l));
    if (!key)
      return ca_error_set(err, ENOMEM, "out of memory");
    cJSON_DeleteItemFromObjectCaseSensitive(o, key); /* the last of a repeated key wins, as with docker --label */
    if (!cJSON_AddStringToObject(o, key, eq + 1))
      return ca_error_set(err, ENOMEM, "out of memory");
  }
  return 0;
}
