/* Container calls: create, start, kill, stop, inspect, wait (armed before start) and demultiplexed logs. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker-internal.h"

/* "/containers/<escaped id><suffix>"; NULL on OOM. */
static char *container_path(const char *id, const char *suffix) {
  _cleanup_free_ char *e = dk_escape(id);
  char *p = NULL;
  if (!e || asprintf(&p, "/containers/%s%s", e, suffix) < 0)
    return NULL;
  return p;
}

static int check_id(const char *id, ca_error **err) {
  if (!id || !id[0])
    return ca_error_set(err, EINVAL, "empty container id");
  return 0;
}

/* ---- create ------------------------------------------------------------------------------------------------ */

static int add_strv(cJSON *obj, const char *key, const char *const *v, ca_error **err) {
  if (!v)
    return 0;
  cJSON *arr = cJSON_AddArrayToObject(obj, key);
  if (!arr)
    return ca_error_set(err, ENOMEM, "out of memory");
  for (; *v; v++) {
    cJSON *s = cJSON_CreateString(*v);
    if (!s || !cJSON_AddItemToArray(arr, s)) {
      cJSON_Delete(s);
      return ca_error_set(err, ENOMEM, "out of memory");
    }
  }
  return 0;
}

static int add_string(cJSON *obj, const char *key, const char *value, ca_error **err) {
  if (!value)
    return 0;
  return cJSON_AddStringToObject(obj, key, value) ? 0 : ca_error_set(err, ENOMEM, "out of memory");
}

static int add_number(cJSON *obj, const char *key, double value, ca_error **err) {
  return cJSON_AddNumberToObject(obj, key, value) ? 0 : ca_error_set(err, ENOMEM, "out of memory");
}

static int add_bool(cJSON *obj, const char *key, bool value, ca_error **err) {
  return cJSON_AddBoolToObject(obj, key, value) ? 0 : ca_error_set(err, ENOMEM, "out of memory");
}

static int add_mounts(cJSON *host, const struct dk_mount *m, size_t n, ca_error **err) {
  if (n == 0)
    return 0;
  cJSON *arr = cJSON_AddArrayToObject(host, "Mounts");
  if (!arr)
    return ca_error_set(err, ENOMEM, "out of memory");
  static const char *const types[] = {
      [DK_MOUNT_BIND] = "bind", [DK_MOUNT_VOLUME] = "volume", [DK_MOUNT_TMPFS] = "tmpfs"};
  for (size_t i = 0; i < n; i++) {
    if ((unsigned)m[i].type >= ELEMENTSOF(types))
      return ca_error_set(err, EINVAL, "mount %zu: unknown type", i);
    if (!m[i].target || m[i].target[0] != '/')
      return ca_error_set(err, EINVAL, "mount %zu: target must be an absolute path", i);
    if (m[i].type != DK_MOUNT_TMPFS && (!m[i].source || !m[i].source[0]))
      return ca_error_set(err, EINVAL, "mount %s: needs a source", m[i].target);
    if (m[i].type == DK_MOUNT_BIND && m[i].source[0] != '/')
      return ca_error_set(err, EINVAL, "mount %s: bind source %s must be an absolute path", m[i].target, m[i].source);
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(arr, o)) {
      cJSON_Delete(o);
      return ca_error_set(err, ENOMEM, "out of memory");
    }
    int k;
    if ((k = add_string(o, "Type", types[m[i].type], err)) < 0 ||
        (k = add_string(o, "Source", m[i].type == DK_MOUNT_TMPFS ? NULL : m[i].source, err)) < 0 ||
        (k = add_string(o, "Target", m[i].target, err)) < 0 || (k = add_bool(o, "ReadOnly", m[i].read_only, err)) < 0)
      return k;
  }
  return 0;
}

static int create_body(const struct dk_container_spec *s, char **ret, ca_error **err) {
  if (!s || !s->image || !s->image[0])
    return ca_error_set(err, EINVAL, "create: no image given");
  if (s->memory_bytes < 0 || s->pids_limit < 0 || s->cpus < 0 || s->cpus > 1e6 || s->stop_timeout_s < 0)
    return ca_error_set(err, EINVAL, "create: negative or absurd limit");
  _cleanup_json_ cJSON *j = cJSON_CreateObject();
  if (!j)
    return ca_error_set(err, ENOMEM, "out of memory");
  cJSON *host = cJSON_AddObjectToObject(j, "HostConfig");
  if (!host)
    return ca_error_set(err, ENOMEM, "out of memory");
  int k;
  if ((k = add_string(j, "Image", s->image, err)) < 0 || (k = add_strv(j, "Cmd", s->cmd, err)) < 0 ||
      (k = add_strv(j, "Env", s->env, err)) < 0 || (k = dk_json_add_labels(j, s->labels, err)) < 0 ||
      (k = add_string(j, "WorkingDir", s->working_dir, err)) < 0 || (k = add_string(j, "User", s->user, err)) < 0 ||
      (k = add_string(j, "StopSignal", s->stop_signal, err)) < 0 || (k = add_bool(j, "Tty", false, err)) < 0 ||
      (k = add_bool(j, "OpenStdin", false, err)) < 0 || (k = add_bool(j, "AttachStdout", false, err)) < 0 ||
      (k = add_bool(j, "AttachStderr", false, err)) < 0)
    return k;
  if (s->stop_timeout_s > 0 && (k = add_number(j, "StopTimeout", s->stop_timeout_s, err)) < 0)
    return k;
  if ((k = add_mounts(host, s->mounts, s->n_mounts, err)) < 0 ||
      (k = add_string(host, "NetworkMode", s->network_mode, err)) < 0 ||
      (k = add_bool(host, "AutoRemove", s->auto_remove, err)) < 0)
    return k;
  if (s->init && (k = add_bool(host, "Init", true, err)) < 0)
    return k;
  if (s->memory_bytes > 0 && ((k = add_number(host, "Memory", (double)s->memory_bytes, err)) < 0 ||
                              (k = add_number(host, "MemorySwap", (double)s->memory_bytes, err)) < 0))
    return k;
  if (s->cpus > 0 && (k = add_number(host, "NanoCpus", (double)(int64_t)(s->cpus * 1e9), err)) < 0)
    return k;
  if (s->pids_limit > 0 && (k = add_number(host, "PidsLimit", (double)s->pids_limit, err)) < 0)
    return k;
  char *text = cJSON_PrintUnformatted(j);
  if (!text)
    return ca_error_set(err, ENOMEM, "out of memory");
  *ret = text;
  return 0;
}

/* After a name conflict: the container of that name is ours when it carries every label we asked for. */
static bool conflict_is_ours(struct dk_client *c, const struct dk_container_spec *s, char **ret_id) {
  if (!s->labels || !s->labels[0])
    return false;
  _cleanup_(dk_container_info_freep) struct dk_container_info *info = NULL;
  if (dk_container_inspect(c, s->name, &info, NULL) < 0)
    return false;
  for (const char *const *l = s->labels; *l; l++) {
    const char *eq = strchr(*l, '=');
    _cleanup_free_ char *key = strndup(*l, (size_t)(eq - *l));
    const char *v = key ? dk_labels_get(&info->labels, key) : NULL;
    if (!v || !streq(v, eq + 1))
      return false;
  }
  *ret_id = TAKE_PTR(info->id);
  return *ret_id != NULL;
}

int dk_container_create(struct dk_client *c, const struct dk_container_spec *spec, char **ret_id, ca_error **err) {
  _cleanup_free_ char *body = NULL, *path = NULL;
  int k = create_body(spec, &body, err);
  if (k < 0)
    return k;
  if (spec->name) {
    _cleanup_free_ char *e = dk_escape(spec->name);
    if (!e || asprintf(&path, "/containers/create?name=%s", e) < 0)
      return ca_error_set(err, ENOMEM, "out of memory");
  } else if (!(path = strdup("/containers/create"))) {
    return ca_error_set(err, ENOMEM, "out of memory");
  }
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, "POST", path, body, c->timeout_ms);
  k = dk_req_perform_retry(c, &r, false, err);
  if (k < 0) {
    if (err && *err && (*err)->code == EEXIST && spec->name && conflict_is_ours(c, spec, ret_id)) {
      ca_error_free(*err);
      *err = NULL;
      return 0;
    }
    (void)ca_error_wrap(err, "create container from %s", spec->image); /* k keeps the code */
    return k;
  }
  _cleanup_json_ cJSON *j = NULL;
  const char *id = NULL;
  if ((k = ca_json_parse(r.resp.data, r.resp.len, "POST /containers/create", &j, err)) < 0)
    return k;
  if ((k = ca_json_string(j, "Id", &id, err)) < 0)
    return ca_error_wrap(err, "POST /containers/create");
  if (!id || !id[0])
    return ca_error_set(err, EBADMSG, "POST /containers/create: answer lacks Id");
  char *d = strdup(id);
  if (!d)
    return ca_error_set(err, ENOMEM, "out of memory");
  *ret_id = d;
  return 0;
}

/* ---- start, kill, stop, inspect ---------------------------------------------------------------------------- */

int dk_container_start(struct dk_client *c, const char *id, ca_error **err) {
  int k = check_id(id, err);
  if (k < 0)
    return k;
  _cleanup_free_ char *path = container_path(id, "/start");
  if (!path)
    return ca_error_set(err, ENOMEM, "out of memory");
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, "POST", path, NULL, c->timeout_ms);
  return dk_req_perform_retry(c, &r, false, err);
}

int dk_container_kill(struct dk_client *c, const char *id, const char *signal, ca_error **err) {
  int k = check_id(id, err);
  if (k < 0)
    return k;
  _cleanup_free_ char *sig = dk_escape(signal ? signal : "SIGKILL"), *suffix = NULL, *path = NULL;
  if (!sig || asprintf(&suffix, "/kill?signal=%s", sig) < 0 || !(path = container_path(id, suffix)))
    return ca_error_set(err, ENOMEM, "out of memory");
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, "POST", path, NULL, c->remove_timeout_ms);
  k = dk_req_perform_retry(c, &r, true, err);
  if (k < 0 && err && *err && (*err)->code == ESRCH) {
    ca_error_free(*err);
    *err = NULL;
    return 1;
  }
  return k;
}

int dk_container_stop(struct dk_client *c, const char *id, int timeout_s, ca_error **err) {
  int k = check_id(id, err);
  if (k < 0)
    return k;
  _cleanup_free_ char *suffix = NULL, *path = NULL;
  if ((timeout_s >= 0 ? asprintf(&suffix, "/stop?t=%d", timeout_s) : asprintf(&suffix, "/stop")) < 0 ||
      !(path = container_path(id, suffix)))
    return ca_error_set(err, ENOMEM, "out of memory");
  /* the engine answers after the grace period and the kill; an unknown own grace period is at most minutes */
  long grace_ms = timeout_s >= 0 ? (long)timeout_s * 1000 : 300000L;
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, "POST", path, NULL, grace_ms + (long)c->remove_timeout_ms);
  k = dk_req_perform_retry(c, &r, true, err);
  if (k < 0 && err && *err && (*err)->code == ESRCH) {
    ca_error_free(*err);
    *err = NULL;
    return 1;
  }
  if (k < 0)
    return k;
  return r.status == 304 ? 1 : 0;
}

int dk_container_inspect(struct dk_client *c, const char *id, struct dk_container_info **ret, ca_error **err) {
  int k = check_id(id, err);
  if (k < 0)
    return k;
  _cleanup_free_ char *path = container_path(id, "/json");
  if (!path)
    return ca_error_set(err, ENOMEM, "out of memory");
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, "GET", path, NULL, c->timeout_ms);
  if ((k = dk_req_perform_retry(c, &r, true, err)) < 0)
    return k;
  k = dk_parse_container_info(r.resp.data, r.resp.len, ret, err);
  return k < 0 ? ca_error_wrap(err, "GET /containers/%s/json", id) : 0;
}

/* ---- wait -------------------------------------------------------------------------------------------------- */

struct dk_wait {
  struct dk_client *c;
  CURL *easy;
  CURLM *multi;
  char *path;
  struct dk_req r;
  bool added, done;
  CURLcode cc;
};

void dk_wait_free(struct dk_wait *w) {
  if (!w)
    return;
  if (w->added)
    (void)curl_multi_remove_handle(w->multi, w->easy); /* only fails for handles not in the multi */
  if (w->easy)
    curl_easy_cleanup(w->easy);
  if (w->multi)
    curl_multi_cleanup(w->multi);
  dk_req_done(&w->r);
  free(w->path);
  free(w);
}

int dk_wait_begin(struct dk_client *c, const char *id, enum dk_wait_condition cond, struct dk_wait **ret,
                  ca_error **err) {
  static const char *const conds[] = {
      [DK_WAIT_NEXT_EXIT] = "next-exit", [DK_WAIT_NOT_RUNNING] = "not-running", [DK_WAIT_REMOVED] = "removed"};
  int k = check_id(id, err);
  if (k < 0)
    return k;
  if ((unsigned)cond >= ELEMENTSOF(conds))
    return ca_error_set(err, EINVAL, "wait: unknown condition");
  _cleanup_(dk_wait_freep) struct dk_wait *w = calloc(1, sizeof(*w));
  if (!w)
    return ca_error_set(err, ENOMEM, "out of memory");
  dk_req_init(&w->r, "POST", "", NULL, 0);
  _cleanup_free_ char *suffix = NULL;
  if (asprintf(&suffix, "/wait?condition=%s", conds[cond]) < 0 || !(w->path = container_path(id, suffix)))
    return ca_error_set(err, ENOMEM, "out of memory");
  w->r.path = w->path;
  w->c = c;
  if ((k = dk_client_connect(c, err)) < 0)
    return k;
  w->easy = curl_easy_init();
  w->multi = curl_multi_init();
  if (!w->easy || !w->multi)
    return ca_error_set(err, ENOMEM, "cannot initialise libcurl");
  if ((k = dk_req_setup(c, w->easy, &w->r, err)) < 0)
    return k;
  if (curl_multi_add_handle(w->multi, w->easy) != CURLM_OK)
    return ca_error_set(err, EIO, "wait: cannot add a curl transfer");
  w->added = true;

  /* the acknowledgement is a short call: bound it like one */
  struct dk_cancel ack = {.deadline_usec = ca_now_monotonic_usec() + (uint64_t)c->timeout_ms * 1000};
  k = dk_multi_run(w->multi, w->easy, &w->r, true, &ack, &w->cc, err);
  if (k < 0)
    return ca_error_wrap(err, "POST %s: waiting for the engine to acknowledge", w->path);
  if (k == 1) {
    w->done = true;
    if ((k = dk_req_result(c, &w->r, w->cc, err)) < 0)
      return k;
  }
  *ret = TAKE_PTR(w);
  return 0;
}

int dk_wait_end(struct dk_wait *w, const struct dk_cancel *cancel, int *ret_exit_code, ca_error **err) {
  int k;
  if (!w->done) {
    k = dk_multi_run(w->multi, w->easy, &w->r, false, cancel, &w->cc, err);
    if (k < 0)
      return ca_error_wrap(err, "POST %s", w->path);
    w->done = true;
  }
  if ((k = dk_req_result(w->c, &w->r, w->cc, err)) < 0)
    return k;
  k = dk_parse_wait_result(w->r.resp.data, w->r.resp.len, ret_exit_code, err);
  return k < 0 ? ca_error_wrap(err, "POST %s", w->path) : 0;
}

/* ---- logs -------------------------------------------------------------------------------------------------- */

static int logs_on_body(struct dk_req *r, const char *data, size_t len) {
  struct dk_demux *d = r->stream_ctx;
  int k = dk_demux_feed(d, data, len, &r->cb_err);
  if (k < 0)
    return k;
  return d->stopped ? 1 : 0;
}

int dk_stream_perform(struct dk_client *c, struct dk_req *r, const struct dk_cancel *cancel, ca_error **err) {
  int k = dk_client_connect(c, err);
  if (k < 0)
    return k;
  k = dk_req_setup(c, c->easy, r, err);
  if (k < 0)
    return k;
  if (curl_multi_add_handle(c->multi, c->easy) != CURLM_OK)
    return ca_error_set(err, EIO, "cannot add a curl transfer");
  CURLcode cc = CURLE_OK;
  k = dk_multi_run(c->multi, c->easy, r, false, cancel, &cc, err);
  (void)curl_multi_remove_handle(c->multi, c->easy); /* the handle is in this multi */
  if (k < 0) {
    char what[160];
    snprintf(what, sizeof(what), "%s %.*s", r->method, (int)strcspn(r->path, "?"), r->path);
    return ca_error_wrap(err, "%s", what);
  }
  return dk_req_result(c, r, cc, err);
}

int dk_container_logs(struct dk_client *c, const char *id, const struct dk_logs_options *o,
                      const struct dk_cancel *cancel, ca_error **err) {
  int k = check_id(id, err);
  if (k < 0)
    return k;
  if (!o || !o->on_output)
    return ca_error_set(err, EINVAL, "logs: no output callback");
  _cleanup_free_ char *suffix = NULL, *path = NULL;
  if (asprintf(&suffix, "/logs?stdout=%d&stderr=%d&follow=%d", !o->no_stdout, !o->no_stderr, o->follow ? 1 : 0) < 0 ||
      !(path = container_path(id, suffix)))
    return ca_error_set(err, ENOMEM, "out of memory");
  struct dk_demux d;
  dk_demux_init(&d, o->on_output, o->userdata);
  d.want_stdout = !o->no_stdout;
  d.want_stderr = !o->no_stderr;
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, "GET", path, NULL, o->follow ? 0 : (long)c->timeout_ms);
  r.on_body = logs_on_body;
  r.stream_ctx = &d;
  k = dk_stream_perform(c, &r, cancel, err);
  if (k >= 0 && !r.stopped)
    k = dk_demux_finish(&d, err);
  dk_demux_done(&d);
  if (k < 0) {
    (void)ca_error_wrap(err, "logs of %s", id); /* k keeps the code */
    return k;
  }
  return 0;
}
