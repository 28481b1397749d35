/* The engine as a whole: its data root (/info), its disk usage (/system/df), the build cache's prune, the address
 * pools its networks hold. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker-internal.h"

/* A short call's answer, parsed as JSON into *ret. */
static int get_json(struct dk_client *c, const char *method, const char *path, cJSON **ret, ca_error **err) {
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, method, path, NULL, c->timeout_ms);
  int k = dk_req_perform_retry(c, &r, streq(method, "GET"), err);
  if (k < 0 || (k = ca_json_parse(r.resp.data, r.resp.len, path, ret, err)) < 0)
    return k;
  return 0;
}

int dk_system_info(struct dk_client *c, char **ret_root, char **ret_driver, ca_error **err) {
  _cleanup_json_ cJSON *o = NULL;
  const char *root = NULL, *driver = NULL;
  int k = get_json(c, "GET", "/info", &o, err);
  if (k < 0 || (k = ca_json_string(o, "DockerRootDir", &root, err)) < 0 ||
      (k = ca_json_string(o, "Driver", &driver, err)) < 0)
    return k < 0 ? ca_error_wrap(err, "GET /info") : k;
  if (!root || root[0] != '/')
    return ca_error_set(err, EBADMSG, "GET /info: no DockerRootDir");
  _cleanup_free_ char *r = strdup(root), *d = strdup(driver ? driver : "");
  if (!r || !d)
    return ca_error_set(err, ENOMEM, "out of memory");
  *ret_root = TAKE_PTR(r);
  *ret_driver = TAKE_PTR(d);
  return 0;
}

void dk_df_free(struct dk_df *df) {
  if (!df)
    return;
  dk_images_free(df->images);
  for (size_t i = 0; i < df->n_containers; i++) {
    free(df->containers[i].id);
    free(df->containers[i].image_id);
    free(df->containers[i].state);
    dk_labels_clear(&df->containers[i].labels);
  }
  free(df->containers);
  free(df);
}

static int parse_df_container(const cJSON *o, struct dk_df_container *ret, ca_error **err) {
  const char *id = NULL, *image_id = NULL, *state = NULL;
  int64_t size_rw = -1;
  int k;
  if ((k = ca_json_string(o, "Id", &id, err)) < 0 || (k = ca_json_string(o, "ImageID", &image_id, err)) < 0 ||
      (k = ca_json_string(o, "State", &state, err)) < 0 ||
      (k = ca_json_int(o, "SizeRw", -1, INT64_MAX, &size_rw, err)) < 0)
    return ca_error_wrap(err, "container");
  if (!id || !*id)
    return ca_error_set(err, EBADMSG, "container: no Id");
  ret->size_rw = size_rw;
  if (!(ret->id = strdup(id)) || !(ret->image_id = strdup(image_id ? image_id : "")) ||
      !(ret->state = strdup(state ? state : "")))
    return ca_error_set(err, ENOMEM, "out of memory");
  return dk_parse_labels(o, "Labels", &ret->labels, err);
}

static int parse_df_containers(const cJSON *arr, struct dk_df *df, ca_error **err) {
  if (!arr || cJSON_IsNull(arr))
    return 0;
  if (!cJSON_IsArray(arr))
    return ca_error_set(err, EBADMSG, "Containers: expected an array");
  size_t n = (size_t)cJSON_GetArraySize(arr);
  if (n && !(df->containers = calloc(n, sizeof(*df->containers))))
    return ca_error_set(err, ENOMEM, "out of memory");
  const cJSON *e;
  cJSON_ArrayForEach(e, arr) {
    int k = parse_df_container(e, &df->containers[df->n_containers++], err);
    if (k < 0)
      return k;
  }
  return 0;
}

static int64_t add_capped(int64_t sum, int64_t size) {
  return size > INT64_MAX - sum ? INT64_MAX : sum + size;
}

/* The build cache as a prune counts it (BuildKit's keep-storage, `docker system df`): the records no image shares. A
 * layer of an image built here is a record too, Shared, which a prune without all=true leaves and whose disk the image
 * holds anyway. Of those, a prune may take the ones not in use and not the builder's own (internal, frontend). */
static int build_cache_size(const cJSON *arr, struct dk_df *df, ca_error **err) {
  df->build_cache_size = df->build_cache_reclaimable = 0;
  if (!arr || cJSON_IsNull(arr))
    return 0;
  if (!cJSON_IsArray(arr))
    return ca_error_set(err, EBADMSG, "BuildCache: expected an array");
  const cJSON *e;
  cJSON_ArrayForEach(e, arr) {
    int64_t size = 0;
    bool shared = false, in_use = false;
    const char *type = "regular";
    if (ca_json_int(e, "Size", 0, INT64_MAX, &size, err) < 0 || ca_json_bool(e, "Shared", &shared, err) < 0 ||
        ca_json_bool(e, "InUse", &in_use, err) < 0 || ca_json_string(e, "Type", &type, err) < 0)
      return ca_error_wrap(err, "BuildCache");
    if (shared)
      continue;
    df->build_cache_size = add_capped(df->build_cache_size, size);
    if (!in_use && !streq(type, "internal") && !streq(type, "frontend"))
      df->build_cache_reclaimable = add_capped(df->build_cache_reclaimable, size);
  }
  return 0;
}

/* An answer parsed as JSON of the type expected (an array, else an object) into *ret. */
static int parse_answer(const char *json, size_t len, const char *what, bool array, cJSON **ret, ca_error **err) {
  int k = ca_json_parse(json, len, what, ret, err);
  if (k < 0 || (array ? cJSON_IsArray(*ret) : cJSON_IsObject(*ret)))
    return k;
  cJSON_Delete(TAKE_PTR(*ret));
  return ca_error_set(err, EBADMSG, "%s: expected %s", what, array ? "an array" : "an object");
}

int dk_parse_df(const char *json, size_t len, struct dk_df **ret, ca_error **err) {
  _cleanup_json_ cJSON *o = NULL;
  int k = parse_answer(json, len, "GET /system/df", false, &o, err);
  if (k < 0)
    return k;
  _cleanup_(dk_df_freep) struct dk_df *df = calloc(1, sizeof(*df));
  if (!df)
    return ca_error_set(err, ENOMEM, "out of memory");
  if ((k = ca_json_int(o, "LayersSize", 0, INT64_MAX, &df->layers_size, err)) < 0 ||
      (k = dk_parse_images(ca_json_field(o, "Images"), &df->images, err)) < 0 ||
      (k = parse_df_containers(ca_json_field(o, "Containers"), df, err)) < 0 ||
      (k = build_cache_size(ca_json_field(o, "BuildCache"), df, err)) < 0)
    return ca_error_wrap(err, "GET /system/df");
  *ret = TAKE_PTR(df);
  return 0;
}

int dk_system_df(struct dk_client *c, struct dk_df **ret, ca_error **err) {
  _cleanup_(dk_req_done) struct dk_req r;
  /* The engine sums every layer's size first: on a large engine that takes a while, so the removal timeout. */
  dk_req_init(&r, "GET", "/system/df", NULL, c->remove_timeout_ms);
  int k = dk_req_perform_retry(c, &r, true, err);
  return k < 0 ? k : dk_parse_df(r.resp.data, r.resp.len, ret, err);
}

int dk_build_prune(struct dk_client *c, uint64_t keep, uint64_t *ret_reclaimed, ca_error **err) {
  char path[96];
  snprintf(path, sizeof(path), "/build/prune?keep-storage=%" PRIu64, keep);
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, "POST", path, NULL, c->remove_timeout_ms);
  int k = dk_req_perform_retry(c, &r, false, err);
  _cleanup_json_ cJSON *o = NULL;
  int64_t reclaimed = 0;
  if (k < 0 || (k = ca_json_parse(r.resp.data, r.resp.len, path, &o, err)) < 0 ||
      (k = ca_json_int(o, "SpaceReclaimed", 0, INT64_MAX, &reclaimed, err)) < 0)
    return k;
  *ret_reclaimed = (uint64_t)reclaimed;
  return 0;
}

int dk_parse_network_pools(const char *json, size_t len, unsigned *ret, ca_error **err) {
  _cleanup_json_ cJSON *o = NULL;
  int k = parse_answer(json, len, "GET /networks", true, &o, err);
  if (k < 0)
    return k;
  unsigned n = 0;
  const cJSON *e;
  cJSON_ArrayForEach(e, o) {
    const cJSON *ipam = NULL, *config = NULL;
    if ((k = ca_json_object(e, "IPAM", &ipam, err)) < 0 || (k = ca_json_array(ipam, "Config", &config, err)) < 0)
      return ca_error_wrap(err, "GET /networks");
    n += config && cJSON_GetArraySize(config) > 0;
  }
  *ret = n;
  return 0;
}

int dk_network_pools_used(struct dk_client *c, unsigned *ret, ca_error **err) {
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, "GET", "/networks", NULL, c->timeout_ms);
  int k = dk_req_perform_retry(c, &r, true, err);
  return k < 0 ? k : dk_parse_network_pools(r.resp.data, r.resp.len, ret, err);
}
