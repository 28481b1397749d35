/* Listing, networks, volumes, and removal with cleanup semantics, one at a time or many through curl multi. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker-internal.h"

/* How often a "removal in progress" is polled. */
#define IN_PROGRESS_POLL_MS 100u
#define DEFAULT_PARALLEL 8u
#define MAX_PARALLEL 64u

static const char *kind_name(enum dk_kind kind) {
  switch (kind) {
    case DK_CONTAINER:
      return "container";
    case DK_NETWORK:
      return "network";
    default:
      return "volume";
  }
}

static char *list_path(enum dk_kind kind, const struct dk_filter *filters, ca_error **err) {
  _cleanup_free_ char *f = NULL;
  char *path = NULL;
  if (dk_filters_encode(filters, &f, err) < 0)
    return NULL;
  const char *base = kind == DK_CONTAINER ? "/containers/json?all=1" : kind == DK_NETWORK ? "/networks" : "/volumes";
  const char *sep = kind == DK_CONTAINER ? "&" : "?";
  if ((f[0] ? asprintf(&path, "%s%sfilters=%s", base, sep, f) : asprintf(&path, "%s", base)) < 0) {
    (void)ca_error_set(err, ENOMEM, "out of memory");
    return NULL;
  }
  return path;
}

/* A streamed list holds one element at a time: the client's body cap bounds each element, not the answer. */
#define SPLIT_MAX(c) CA_MIN((c)->max_body, (size_t)DK_SPLIT_MAX_VALUE)

static int split_body(struct dk_req *r, const char *data, size_t len) {
  return dk_split_feed(r->stream_ctx, data, len, &r->cb_err);
}

/* A list's answer goes to a split as it arrives (never held whole). begin gives a fresh split for each attempt: a
 * transient failure is retried only while nothing reached the split's fn, which sees each element once. */
struct list_sink {
  struct dk_split *(*begin)(struct list_sink *k, ca_error **err);
  enum dk_kind kind;
};

static int list_get(struct dk_client *c, enum dk_kind kind, const struct dk_filter *filters, struct list_sink *sink,
                    ca_error **err) {
  _cleanup_free_ char *path = list_path(kind, filters, err);
  if (!path)
    return ca_error_wrap(err, "list %ss", kind_name(kind));
  int k = dk_client_connect(c, err);
  for (unsigned attempt = 0; k == 0; attempt++) {
    _cleanup_error_ ca_error *e = NULL;
    struct dk_split *split = sink->begin(sink, &e);
    _cleanup_(dk_req_done) struct dk_req r;
    dk_req_init(&r, "GET", path, NULL, c->timeout_ms);
    r.on_body = split_body;
    r.stream_ctx = split;
    if (split && (k = dk_req_perform(c, &r, &e)) == 0 && (k = dk_split_finish(split, &e)) == 0)
      return 0;
    if (!split || split->elements > 0 || (int)attempt >= c->retries || !dk_error_retryable(e, true)) {
      k = e ? -e->code : -EIO;
      if (err) {
        ca_error_free(*err);
        *err = TAKE_PTR(e);
      }
      return ca_error_wrap(err, "list %ss", kind_name(kind));
    }
    dk_sleep_ms(dk_backoff_ms(attempt));
    k = 0;
  }
  return k;
}

struct list_collect {
  struct list_sink sink;
  size_t max_value;
  struct dk_list_fill_ctx fill;
  bool started;
};

static struct dk_split *collect_begin(struct list_sink *sink, ca_error **err) {
  struct list_collect *x = (struct list_collect *)sink;
  if (x->started)
    dk_list_fill_done(&x->fill);
  x->started = true;
  return dk_list_fill_init(&x->fill, sink->kind, x->max_value, err) < 0 ? NULL : &x->fill.split;
}

int dk_list(struct dk_client *c, enum dk_kind kind, const struct dk_filter *filters, struct dk_list **ret,
            ca_error **err) {
  struct list_collect x = {.sink = {collect_begin, kind}, .max_value = SPLIT_MAX(c)};
  int k = list_get(c, kind, filters, &x.sink, err);
  if (k == 0)
    *ret = dk_list_fill_take(&x.fill);
  if (x.started)
    dk_list_fill_done(&x.fill);
  return k;
}

struct list_each {
  struct list_sink sink;
  size_t max_value;
  struct dk_split split;
  bool started;
  dk_item_fn fn;
  void *userdata;
};

static int each_element(void *userdata, const char *json, size_t len, ca_error **err) {
  struct list_each *x = userdata;
  struct dk_item it = {0};
  int k = dk_parse_item(x->sink.kind, json, len, &it, err);
  if (k < 0)
    return ca_error_wrap(err, "list item %zu", x->split.elements);
  k = x->fn(x->userdata, &it, err);
  dk_item_clear(&it);
  return k;
}

static struct dk_split *each_begin(struct list_sink *sink, ca_error **err) {
  struct list_each *x = (struct list_each *)sink;
  (void)err;
  if (x->started)
    dk_split_done(&x->split);
  x->started = true;
  dk_split_init(&x->split, sink->kind == DK_VOLUME ? DK_SPLIT_VOLUMES : DK_SPLIT_ARRAY, x->max_value, each_element, x);
  return &x->split;
}

int dk_list_each(struct dk_client *c, enum dk_kind kind, const struct dk_filter *filters, dk_item_fn fn, void *userdata,
                 ca_error **err) {
  struct list_each x = {.sink = {each_begin, kind}, .max_value = SPLIT_MAX(c), .fn = fn, .userdata = userdata};
  int k = list_get(c, kind, filters, &x.sink, err);
  if (x.started)
    dk_split_done(&x.split);
  return k;
}

static int ensure_pool(struct dk_client *c, size_t n, ca_error **err);

int dk_list_many(struct dk_client *c, const struct dk_list_query *q, size_t n, struct dk_list **ret, ca_error **err) {
  if (n > DK_LIST_MANY_MAX)
    return ca_error_set(err, EINVAL, "list: at most %d listings at once", DK_LIST_MANY_MAX);
  int k = ensure_pool(c, n, err);
  if (k < 0)
    return k;
  char *paths[DK_LIST_MANY_MAX] = {0};
  struct dk_list_fill_ctx fill[DK_LIST_MANY_MAX] = {0};
  struct dk_req r[DK_LIST_MANY_MAX];
  CURLcode cc[DK_LIST_MANY_MAX];
  bool added[DK_LIST_MANY_MAX] = {0}, done[DK_LIST_MANY_MAX] = {0};
  size_t left = n;
  for (size_t i = 0; i < n; i++) {
    ret[i] = NULL;
    dk_req_init(&r[i], "GET", "", NULL, c->timeout_ms);
  }
  (void)curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)DK_LIST_MANY_MAX); /* a cap, never fails */
  for (size_t i = 0; i < n && k == 0; i++) {
    if (!(paths[i] = list_path(q[i].kind, q[i].filters, err))) {
      k = ca_error_wrap(err, "list %ss", kind_name(q[i].kind));
      break;
    }
    r[i].path = paths[i];
    if ((k = dk_list_fill_init(&fill[i], q[i].kind, SPLIT_MAX(c), err)) < 0)
      break;
    r[i].on_body = split_body;
    r[i].stream_ctx = &fill[i].split;
    if ((k = dk_req_setup(c, c->pool[i], &r[i], err)) < 0)
      break;
    if (curl_multi_add_handle(c->multi, c->pool[i]) != CURLM_OK)
      k = ca_error_set(err, EIO, "cannot add a curl transfer");
    else
      added[i] = true;
  }
  /* every transfer has its timeout: the loop ends */
  while (k == 0 && left > 0) {
    int still = 0;
    CURLMcode mc = curl_multi_perform(c->multi, &still);
    CURLMsg *msg;
    int queued;
    while (mc == CURLM_OK && (msg = curl_multi_info_read(c->multi, &queued)))
      for (size_t i = 0; i < n; i++)
        if (msg->msg == CURLMSG_DONE && msg->easy_handle == c->pool[i] && !done[i]) {
          cc[i] = msg->data.result;
          done[i] = true;
          left--;
        }
    if (mc == CURLM_OK && left > 0)
      mc = curl_multi_poll(c->multi, NULL, 0, 100, NULL);
    if (mc != CURLM_OK)
      k = ca_error_set(err, EIO, "curl: %s", curl_multi_strerror(mc));
  }
  for (size_t i = 0; i < n; i++) {
    if (added[i])
      (void)curl_multi_remove_handle(c->multi, c->pool[i]); /* it is in this multi */
    if (k == 0 && (k = dk_req_result(c, &r[i], cc[i], err)) == 0 && (k = dk_split_finish(&fill[i].split, err)) < 0)
      (void)ca_error_wrap(err, "list %ss", kind_name(q[i].kind));
    if (k == 0)
      ret[i] = dk_list_fill_take(&fill[i]);
    dk_list_fill_done(&fill[i]);
    dk_req_done(&r[i]);
    free(paths[i]);
  }
  if (k < 0)
    for (size_t i = 0; i < n; i++) {
      dk_list_free(ret[i]);
      ret[i] = NULL;
    }
  return k;
}

/* ---- create networks and volumes --------------------------------------------------------------------------- */

/* POSTs body to path and returns the string field key of the answer. */
static int create_object(struct dk_client *c, const char *path, cJSON *body, const char *key, char **ret,
                         ca_error **err) {
  _cleanup_free_ char *text = cJSON_PrintUnformatted(body);
  if (!text)
    return ca_error_set(err, ENOMEM, "out of memory");
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, "POST", path, text, c->timeout_ms);
  int k = dk_req_perform_retry(c, &r, false, err);
  if (k < 0)
    return k;
  _cleanup_json_ cJSON *j = NULL;
  const char *v = NULL;
  if ((k = ca_json_parse(r.resp.data, r.resp.len, path, &j, err)) < 0)
    return k;
  if ((k = ca_json_string(j, key, &v, err)) < 0)
    return ca_error_wrap(err, "POST %s", path);
  if (!v || !v[0])
    return ca_error_set(err, EBADMSG, "POST %s: answer lacks %s", path, key);
  if (!(*ret = strdup(v)))
    return ca_error_set(err, ENOMEM, "out of memory");
  return 0;
}

int dk_network_create(struct dk_client *c, const char *name, const char *const *labels, bool internal, char **ret_id,
                      ca_error **err) {
  if (!name || !name[0])
    return ca_error_set(err, EINVAL, "create network: no name given");
  _cleanup_json_ cJSON *j = cJSON_CreateObject();
  if (!j || !cJSON_AddStringToObject(j, "Name", name) || !cJSON_AddBoolToObject(j, "CheckDuplicate", true) ||
      !cJSON_AddBoolToObject(j, "Internal", internal))
    return ca_error_set(err, ENOMEM, "out of memory");
  int k = dk_json_add_labels(j, labels, err);
  if (k < 0 || (k = create_object(c, "/networks/create", j, "Id", ret_id, err)) < 0) {
    (void)ca_error_wrap(err, "create network %s", name); /* k keeps the code */
    return k;
  }
  return 0;
}

int dk_volume_create(struct dk_client *c, const char *name, const char *const *labels, char **ret_name,
                     ca_error **err) {
  _cleanup_json_ cJSON *j = cJSON_CreateObject();
  if (!j || (name && !cJSON_AddStringToObject(j, "Name", name)))
    return ca_error_set(err, ENOMEM, "out of memory");
  int k = dk_json_add_labels(j, labels, err);
  if (k < 0 || (k = create_object(c, "/volumes/create", j, "Name", ret_name, err)) < 0) {
    (void)ca_error_wrap(err, "create volume %s", name ? name : "");
    return k;
  }
  return 0;
}

/* ---- removal ----------------------------------------------------------------------------------------------- */

enum item_phase { ITEM_PENDING, ITEM_RUNNING, ITEM_DONE };

struct rm_item {
  const char *id;
  char *path;
  struct dk_req r;
  enum item_phase phase;
  unsigned attempt;
  uint64_t not_before_us, first_us;
  CURL *easy;
  bool gone_before; /* 404: nothing was removed */
};

static int ensure_pool(struct dk_client *c, size_t n, ca_error **err) {
  int k = dk_client_connect(c, err);
  if (k < 0)
    return k;
  if (c->n_pool >= n)
    return 0;
  CURL **p = realloc(c->pool, n * sizeof(*p));
  if (!p)
    return ca_error_set(err, ENOMEM, "out of memory");
  c->pool = p;
  while (c->n_pool < n) {
    if (!(c->pool[c->n_pool] = curl_easy_init()))
      return ca_error_set(err, ENOMEM, "cannot initialise libcurl");
    c->n_pool++;
  }
  return 0;
}

static char *remove_path(enum dk_kind kind, const char *id) {
  _cleanup_free_ char *e = dk_escape(id);
  char *p = NULL;
  if (!e)
    return NULL;
  int k = kind == DK_CONTAINER ? asprintf(&p, "/containers/%s?force=1&v=1", e)
          : kind == DK_NETWORK ? asprintf(&p, "/networks/%s", e)
                               : asprintf(&p, "/volumes/%s", e);
  return k < 0 ? NULL : p;
}

/* Decides what a finished DELETE means; returns true when the item is settled (ret_errors[i] then says how). */
static bool rm_settle(struct dk_client *c, struct rm_item *it, CURLcode cc, ca_error **slot) {
  _cleanup_error_ ca_error *e = NULL;
  uint64_t now = ca_now_monotonic_usec();
  if (dk_req_result(c, &it->r, cc, &e) >= 0)
    return true;
  enum dk_error_kind kind = dk_error_kind(e);
  if (kind == DK_ERR_NOT_FOUND) {
    it->gone_before = it->attempt == 0;
    return true;
  }
  if (kind == DK_ERR_IN_PROGRESS && now - it->first_us < (uint64_t)c->remove_timeout_ms * 1000) {
    /* someone else is removing it: ask again until it is gone */
    it->not_before_us = now + IN_PROGRESS_POLL_MS * 1000;
    it->attempt++;
    return false;
  }
  /* a DELETE that timed out hit an engine hung on that object (docker/for-linux#1319): another minute will not
   * help, so it is reported rather than retried */
  if (dk_error_retryable(e, true) && e->code != ETIMEDOUT && (int)it->attempt < c->retries) {
    it->not_before_us = now + (uint64_t)dk_backoff_ms(it->attempt) * 1000;
    it->attempt++;
    return false;
  }
  *slot = TAKE_PTR(e);
  return true;
}

/* One remove_run: the items, and the pool's slots (busy while a transfer of theirs is in the multi handle). */
struct rm_run {
  struct dk_client *c;
  enum dk_kind kind;
  struct rm_item *items;
  size_t n;
  ca_error **errors;
  bool *busy;
  size_t slots, running;
  uint64_t not_after_us; /* nothing starts from then on (CLOCK_MONOTONIC, 0: no limit) */
};

/* Gives every item its request; an empty id is settled at once with its own error. */
static int rm_prepare(struct rm_run *x, const char *const *ids, ca_error **err) {
  for (size_t i = 0; i < x->n; i++) {
    struct rm_item *it = &x->items[i];
    dk_req_init(&it->r, "DELETE", "", NULL, x->c->remove_timeout_ms);
    if (!ids[i] || !ids[i][0]) {
      (void)ca_error_set(&x->errors[i], EINVAL, "remove %s: empty id", kind_name(x->kind));
      it->phase = ITEM_DONE;
      continue;
    }
    it->id = ids[i];
    if (!(it->path = remove_path(x->kind, ids[i])))
      return ca_error_set(err, ENOMEM, "out of memory");
    it->r.path = it->path;
  }
  return 0;
}

/* Starts what may start, in order, while slots are free: first attempts and retries whose time has come. Sets
 * *ret_left when some item is still pending and lowers *wake to the earliest retry time. */
static int rm_start_due(struct rm_run *x, uint64_t now, uint64_t *wake, bool *ret_left, ca_error **err) {
  struct dk_client *c = x->c;
  *ret_left = false;
  for (size_t i = 0; i < x->n; i++) {
    struct rm_item *it = &x->items[i];
    if (it->phase != ITEM_PENDING)
      continue;
    if (x->not_after_us && now >= x->not_after_us) {
      /* a slot never waits behind a slow batch: the deadline alone says what is not tried */
      (void)ca_error_set(&x->errors[i], ETIMEDOUT, "the deadline passed before it was %s",
                         it->attempt ? "tried again" : "tried");
      it->phase = ITEM_DONE;
      continue;
    }
    *ret_left = true;
    if (it->not_before_us > now) {
      *wake = CA_MIN(*wake, it->not_before_us);
      continue;
    }
    if (x->running == x->slots)
      break;
    size_t s = 0;
    while (x->busy[s])
      s++;
    int k = dk_req_setup(c, c->pool[s], &it->r, err);
    if (k < 0)
      return k;
    if (curl_multi_add_handle(c->multi, c->pool[s]) != CURLM_OK)
      return ca_error_set(err, EIO, "cannot add a curl transfer");
    x->busy[s] = true;
    it->easy = c->pool[s];
    if (it->attempt == 0)
      it->first_us = now;
    it->phase = ITEM_RUNNING;
    x->running++;
  }
  return 0;
}

/* A transfer ended: its slot is free again, and its item is settled or pending a retry. */
static void rm_finished(struct rm_run *x, CURL *easy, CURLcode cc) {
  (void)curl_multi_remove_handle(x->c->multi, easy); /* it is in this multi */
  for (size_t s = 0; s < x->slots; s++)
    if (x->c->pool[s] == easy)
      x->busy[s] = false;
  x->running--;
  for (size_t i = 0; i < x->n; i++) {
    struct rm_item *it = &x->items[i];
    if (it->phase == ITEM_RUNNING && it->easy == easy) {
      it->easy = NULL;
      it->phase = rm_settle(x->c, it, cc, &x->errors[i]) ? ITEM_DONE : ITEM_PENDING;
      return;
    }
  }
}

/* Moves the transfers on and handles those that ended; *ret_freed says whether a slot came free. */
static int rm_progress(struct rm_run *x, bool *ret_freed, ca_error **err) {
  struct dk_client *c = x->c;
  int still = 0;
  *ret_freed = false;
  CURLMcode mc = curl_multi_perform(c->multi, &still);
  if (mc != CURLM_OK)
    return ca_error_set(err, EIO, "curl: %s", curl_multi_strerror(mc));
  CURLMsg *msg;
  int queued;
  while ((msg = curl_multi_info_read(c->multi, &queued)))
    if (msg->msg == CURLMSG_DONE) {
      rm_finished(x, msg->easy_handle, msg->data.result);
      *ret_freed = true;
    }
  return 0;
}

/* Waits for a socket event of the transfers in flight, or, with none in flight, for the next retry; never past wake
 * nor longer than 100 ms. */
static int rm_wait(struct rm_run *x, uint64_t wake, ca_error **err) {
  uint64_t t = ca_now_monotonic_usec();
  unsigned timeout_ms = (unsigned)CA_MIN((wake > t ? wake - t + 999 : 0) / 1000, 100u); /* up: no 1 ms spin */
  if (x->running > 0) {
    CURLMcode mc = curl_multi_poll(x->c->multi, NULL, 0, (int)timeout_ms, NULL);
    if (mc != CURLM_OK)
      return ca_error_set(err, EIO, "curl: %s", curl_multi_strerror(mc));
  } else if (timeout_ms > 0) {
    dk_sleep_ms(timeout_ms); /* only retries waiting for their time */
  }
  return 0;
}

static int rm_loop(struct rm_run *x, ca_error **err) {
  for (;;) {
    uint64_t now = ca_now_monotonic_usec(), wake = now + 100000;
    bool left = false, freed = false;
    int k = rm_start_due(x, now, &wake, &left, err);
    if (k < 0)
      return k;
    if (x->running == 0 && !left)
      return 0;
    if ((k = rm_progress(x, &freed, err)) < 0)
      return k;
    /* A freed slot takes the next item now, not after the next socket event of the others. */
    if (freed && left)
      continue;
    if ((k = rm_wait(x, wake, err)) < 0)
      return k;
  }
}

static void rm_run_done(struct rm_run *x) {
  for (size_t i = 0; x->items && i < x->n; i++) {
    struct rm_item *it = &x->items[i];
    if (it->phase == ITEM_RUNNING && it->easy)
      (void)curl_multi_remove_handle(x->c->multi, it->easy); /* abandoned on a setup failure */
    dk_req_done(&it->r);
    free(it->path);
  }
  free(x->items);
  free(x->busy);
}

/* Removes ids with at most parallel requests in flight; fills errors[i] (may be NULL) and gone_before[i]. */
static int remove_run(struct dk_client *c, enum dk_kind kind, const char *const *ids, size_t n, unsigned parallel,
                      uint64_t not_after_us, ca_error **errors, bool *gone_before, ca_error **err) {
  if (n == 0)
    return 0;
  size_t slots = CA_MIN((size_t)(parallel ? CA_MIN(parallel, MAX_PARALLEL) : DEFAULT_PARALLEL), n);
  int k = ensure_pool(c, slots, err);
  if (k < 0)
    return k;
  struct rm_run x = {.c = c, .kind = kind, .n = n, .errors = errors, .slots = slots, .not_after_us = not_after_us};
  x.items = calloc(n, sizeof(*x.items));
  x.busy = calloc(slots, sizeof(*x.busy));
  if (!x.items || !x.busy) {
    rm_run_done(&x);
    return ca_error_set(err, ENOMEM, "out of memory");
  }
  (void)curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)slots); /* a cap, never an error */
  k = rm_prepare(&x, ids, err);
  if (k == 0)
    k = rm_loop(&x, err);
  for (size_t i = 0; k == 0 && gone_before && i < n; i++)
    gone_before[i] = x.items[i].gone_before && !errors[i];
  rm_run_done(&x);
  return k;
}

int dk_remove_many_until(struct dk_client *c, enum dk_kind kind, const char *const *ids, size_t n, unsigned parallel,
                         uint64_t not_after_usec, ca_error **ret_errors, bool *ret_gone, ca_error **err) {
  int k = remove_run(c, kind, ids, n, parallel, not_after_usec, ret_errors, ret_gone, err);
  if (k < 0)
    return ca_error_wrap(err, "remove %zu %ss", n, kind_name(kind));
  size_t failed = 0, first = n;
  for (size_t i = 0; i < n; i++)
    if (ret_errors[i]) {
      failed++;
      if (first == n)
        first = i;
    }
  if (failed == 0)
    return 0;
  k = ca_error_set(err, ret_errors[first]->code, "remove %ss: %zu of %zu failed; first: %s", kind_name(kind), failed, n,
                   ret_errors[first]->msg);
  if (err && *err)
    (*err)->detail = ret_errors[first]->detail;
  return k;
}

int dk_remove_many(struct dk_client *c, enum dk_kind kind, const char *const *ids, size_t n, unsigned parallel,
                   ca_error **ret_errors, ca_error **err) {
  return dk_remove_many_until(c, kind, ids, n, parallel, 0, ret_errors, NULL, err);
}

int dk_remove(struct dk_client *c, enum dk_kind kind, const char *id, ca_error **err) {
  ca_error *e = NULL;
  bool gone = false;
  const char *ids[] = {id};
  int k = remove_run(c, kind, ids, 1, 1, 0, &e, &gone, err);
  if (k < 0)
    return ca_error_wrap(err, "remove %s %s", kind_name(kind), id ? id : "");
  if (e) {
    k = -e->code;
    if (err) {
      ca_error_free(*err);
      *err = e;
      (void)ca_error_wrap(err, "remove %s %s", kind_name(kind), id);
    } else {
      ca_error_free(e);
    }
    return k;
  }
  return gone ? 1 : 0;
}
