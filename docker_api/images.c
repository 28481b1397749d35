/* Images: list, remove without force, last use. The answers are untrusted: every field is type-checked. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker-internal.h"

void dk_images_free(struct dk_images *l) {
  if (!l)
    return;
  for (size_t i = 0; i < l->n; i++) {
    free(l->v[i].id);
    ca_strv_free(l->v[i].tags);
    dk_labels_clear(&l->v[i].labels);
  }
  free(l->v);
  free(l);
}

/* One element of an image list (/images/json, or /system/df's Images). */
static int parse_image(const cJSON *o, struct dk_image *ret, ca_error **err) {
  const char *id = NULL;
  struct dk_image im = {.shared_size = -1, .containers = -1};
  int k;
  if ((k = ca_json_string(o, "Id", &id, err)) < 0 ||
      (k = ca_json_int(o, "Created", 0, INT64_MAX, &im.created, err)) < 0 ||
      (k = ca_json_int(o, "Size", 0, INT64_MAX, &im.size, err)) < 0 ||
      (k = ca_json_int(o, "SharedSize", -1, INT64_MAX, &im.shared_size, err)) < 0 ||
      (k = ca_json_int(o, "Containers", -1, INT64_MAX, &im.containers, err)) < 0)
    return ca_error_wrap(err, "image");
  if (!id || !*id)
    return ca_error_set(err, EBADMSG, "image: no Id");
  if (!(im.id = strdup(id)))
    return ca_error_set(err, ENOMEM, "out of memory");
  if ((k = ca_json_strv(o, "RepoTags", &im.tags, err)) < 0 || (k = dk_parse_labels(o, "Labels", &im.labels, err)) < 0) {
    free(im.id);
    ca_strv_free(im.tags);
    return ca_error_wrap(err, "image %s", id);
  }
  *ret = im;
  return 0;
}

int dk_parse_images(const cJSON *arr, struct dk_images **ret, ca_error **err) {
  if (arr && !cJSON_IsArray(arr) && !cJSON_IsNull(arr))
    return ca_error_set(err, EBADMSG, "images: expected an array, got %s", ca_json_type_name(arr));
  _cleanup_(dk_images_freep) struct dk_images *l = calloc(1, sizeof(*l));
  size_t n = arr && cJSON_IsArray(arr) ? (size_t)cJSON_GetArraySize(arr) : 0;
  if (!l || (n && !(l->v = calloc(n, sizeof(*l->v)))))
    return ca_error_set(err, ENOMEM, "out of memory");
  for (const cJSON *e = n ? arr->child : NULL; e; e = e->next) {
    int k = parse_image(e, &l->v[l->n], err);
    if (k < 0)
      return k;
    l->n++;
  }
  *ret = TAKE_PTR(l);
  return 0;
}

int dk_image_list(struct dk_client *c, const struct dk_filter *filters, struct dk_images **ret, ca_error **err) {
  _cleanup_free_ char *f = NULL, *path = NULL;
  int k = dk_filters_encode(filters, &f, err);
  if (k < 0)
    return k;
  if ((f[0] ? asprintf(&path, "/images/json?filters=%s", f) : asprintf(&path, "/images/json")) < 0) {
    path = NULL;
    return ca_error_set(err, ENOMEM, "out of memory");
  }
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, "GET", path, NULL, c->timeout_ms);
  if ((k = dk_req_perform_retry(c, &r, true, err)) < 0)
    return k;
  _cleanup_json_ cJSON *o = NULL;
  if ((k = ca_json_parse(r.resp.data, r.resp.len, "GET /images/json", &o, err)) < 0 ||
      (k = dk_parse_images(o, ret, err)) < 0)
    return ca_error_wrap(err, "GET /images/json");
  return 0;
}

/* An image id as the API takes it in a path: "sha256:" and hex digits only, nothing to escape. */
static int check_image_id(const char *id, ca_error **err) {
  const char *hex = strncmp(id, "sha256:", 7) == 0 ? id + 7 : id;
  if (!*hex || strlen(hex) > 64 || strspn(hex, "0123456789abcdef") != strlen(hex))
    return ca_error_set(err, EINVAL, "image id '%s' is not one", id);
  return 0;
}

/* METHOD /images/<id><suffix>, with id checked first; path (the caller's, 128 bytes) outlives r. */
static int image_call(struct dk_client *c, const char *method, const char *id, const char *suffix, char *path,
                      struct dk_req *r, ca_error **err) {
  int k = check_image_id(id, err);
  if (k < 0)
    return k;
  snprintf(path, 128, "/images/%s%s", id, suffix);
  dk_req_init(r, method, path, NULL, streq(method, "GET") ? c->timeout_ms : c->remove_timeout_ms);
  return dk_req_perform_retry(c, r, true, err);
}

int dk_image_remove(struct dk_client *c, const char *id, ca_error **err) {
  char path[128];
  _cleanup_(dk_req_done) struct dk_req r = {0};
  _cleanup_error_ ca_error *e = NULL;
  int k = image_call(c, "DELETE", id, "", path, &r, &e);
  if (k == 0)
    return 0;
  if (dk_error_kind(e) == DK_ERR_NOT_FOUND)
    return 1;
  if (err)
    *err = TAKE_PTR(e);
  return k;
}

int dk_image_last_used(struct dk_client *c, const char *id, int64_t *ret, ca_error **err) {
  char path[128];
  _cleanup_(dk_req_done) struct dk_req r = {0};
  int k = image_call(c, "GET", id, "/json", path, &r, err);
  if (k < 0)
    return k;
  _cleanup_json_ cJSON *o = NULL;
  const cJSON *meta = NULL;
  const char *created = NULL, *tagged = NULL;
  int64_t c_us = 0, t_us = 0;
  if ((k = ca_json_parse(r.resp.data, r.resp.len, "image", &o, err)) < 0 ||
      (k = ca_json_string(o, "Created", &created, err)) < 0 || (k = ca_json_object(o, "Metadata", &meta, err)) < 0 ||
      (k = ca_json_string(meta, "LastTagTime", &tagged, err)) < 0 ||
      (created && *created && (k = dk_parse_time(created, &c_us, err)) < 0) ||
      (tagged && *tagged && (k = dk_parse_time(tagged, &t_us, err)) < 0))
    return ca_error_wrap(err, "GET %s", path);
  *ret = CA_MAX(c_us, t_us) / 1000000;
  return 0;
}
