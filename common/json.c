/* JSON field helpers over cJSON, for every text the agent did not write itself or may find damaged: engine answers,
 * the session registry, the container-seq checkpoint. Each field is type-checked; absent and null fields are left to
 * the caller; anything else malformed is an EBADMSG error that names the field. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common.h"

const char *ca_json_type_name(const cJSON *j) {
  static const struct {
    cJSON_bool (*is)(const cJSON *);
    const char *name;
  } types[] = {{cJSON_IsString, "a string"}, {cJSON_IsNumber, "a number"}, {cJSON_IsBool, "a boolean"},
               {cJSON_IsNull, "null"},       {cJSON_IsArray, "an array"},  {cJSON_IsObject, "an object"}};
  for (size_t i = 0; i < ELEMENTSOF(types); i++)
    if (types[i].is(j))
      return types[i].name;
  return "something else";
}

int ca_json_parse(const char *text, size_t len, const char *what, cJSON **ret, ca_error **err) {
  if (!text || len == 0)
    return ca_error_set(err, EBADMSG, "%s: empty where JSON was expected", what);
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(text, len, &end, false);
  if (!j) {
    size_t at = end && end >= text ? (size_t)(end - text) : 0;
    return ca_error_set(err, EBADMSG, "%s: malformed JSON at byte %zu of %zu", what, at, len);
  }
  size_t used = end && end >= text ? (size_t)(end - text) : len;
  while (used < len && (text[used] == ' ' || text[used] == '\n' || text[used] == '\r' || text[used] == '\t'))
    used++;
  if (used != len) {
    cJSON_Delete(j);
    return ca_error_set(err, EBADMSG, "%s: unexpected data after the JSON value at byte %zu of %zu", what, used, len);
  }
  *ret = j;
  return 0;
}

const cJSON *ca_json_field(const cJSON *obj, const char *key) {
  const cJSON *f = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
  return cJSON_IsNull(f) ? NULL : f;
}

int ca_json_require(const cJSON *obj, const char *const *keys, ca_error **err) {
  for (const char *const *k = keys; *k; k++)
    if (!ca_json_field(obj, *k))
      return ca_error_set(err, EBADMSG, "field %s is missing", *k);
  return 0;
}

/* The field in *ret when it has the type test accepts; *ret untouched when absent or null; else an error naming it. */
static int typed(const cJSON *obj, const char *key, cJSON_bool (*test)(const cJSON *), const char *want,
                 const cJSON **ret, ca_error **err) {
  const cJSON *f = ca_json_field(obj, key);
  if (f && !test(f))
    return ca_error_set(err, EBADMSG, "field %s: expected %s, got %s", key, want, ca_json_type_name(f));
  if (f)
    *ret = f;
  return 0;
}

int ca_json_string(const cJSON *obj, const char *key, const char **ret, ca_error **err) {
  const cJSON *f = NULL;
  int r = typed(obj, key, cJSON_IsString, "a string", &f, err);
  if (r < 0 || !f)
    return r;
  if (!f->valuestring)
    return ca_error_set(err, EBADMSG, "field %s: expected a string, got something else", key);
  *ret = f->valuestring;
  return 0;
}

int ca_json_strdup(const cJSON *obj, const char *key, char **ret, ca_error **err) {
  const char *s = NULL;
  int r = ca_json_string(obj, key, &s, err);
  if (r < 0 || !s)
    return r;
  char *copy = strdup(s);
  if (!copy)
    return ca_error_set(err, ENOMEM, "out of memory");
  *ret = copy;
  return 0;
}

int ca_json_strv(const cJSON *obj, const char *key, char ***ret, ca_error **err) {
  const cJSON *arr = NULL;
  int r = typed(obj, key, cJSON_IsArray, "an array", &arr, err);
  if (r < 0)
    return r;
  _cleanup_strv_free_ char **v = calloc((size_t)cJSON_GetArraySize(arr) + 1, sizeof(char *));
  if (!v)
    return ca_error_set(err, ENOMEM, "out of memory");
  size_t i = 0;
  const cJSON *s;
  cJSON_ArrayForEach(s, arr) {
    if (!cJSON_IsString(s) || !s->valuestring)
      return ca_error_set(err, EBADMSG, "field %s: expected strings, got %s", key, ca_json_type_name(s));
    if (!(v[i++] = strdup(s->valuestring)))
      return ca_error_set(err, ENOMEM, "out of memory");
  }
  *ret = TAKE_PTR(v);
  return 0;
}

int ca_json_double(const cJSON *obj, const char *key, double min, double max, double *ret, ca_error **err) {
  const cJSON *f = NULL;
  int r = typed(obj, key, cJSON_IsNumber, "a number", &f, err);
  if (r < 0 || !f)
    return r;
  if (!(f->valuedouble >= min && f->valuedouble <= max))
    return ca_error_set(err, EBADMSG, "field %s: %g is not a number in [%g, %g]", key, f->valuedouble, min, max);
  *ret = f->valuedouble;
  return 0;
}

int ca_json_int(const cJSON *obj, const char *key, int64_t min, int64_t max, int64_t *ret, ca_error **err) {
  double d = NAN; /* stays NAN when the field is absent */
  int r = ca_json_double(obj, key, -HUGE_VAL, HUGE_VAL, &d, err);
  if (r < 0 || isnan(d))
    return r;
  /* The range before the conversion: converting a double outside int64_t's range (1e300) is undefined, and
   * (double)INT64_MAX rounds up to 2^63, which passes "d > max" but does not fit an int64_t. */
  if (!isfinite(d) || d != floor(d) || d < (double)min || d > (double)max || d >= 0x1p63)
    return ca_error_set(err, EBADMSG, "field %s: %g is not an integer in [%" PRId64 ", %" PRId64 "]", key, d, min, max);
  *ret = (int64_t)d;
  return 0;
}

int ca_json_bool(const cJSON *obj, const char *key, bool *ret, ca_error **err) {
  const cJSON *f = NULL;
  int r = typed(obj, key, cJSON_IsBool, "a boolean", &f, err);
  if (r == 0 && f)
    *ret = cJSON_IsTrue(f);
  return r;
}

int ca_json_object(const cJSON *obj, const char *key, const cJSON **ret, ca_error **err) {
  return typed(obj, key, cJSON_IsObject, "an object", ret, err);
}

int ca_json_array(const cJSON *obj, const char *key, const cJSON **ret, ca_error **err) {
  return typed(obj, key, cJSON_IsArray, "an array", ret, err);
}

bool ca_json_add_int(cJSON *obj, const char *key, int64_t v) {
  char buf[24];
  snprintf(buf, sizeof(buf), "%" PRId64, v);
  return cJSON_AddRawToObject(obj, key, buf) != NULL;
}
