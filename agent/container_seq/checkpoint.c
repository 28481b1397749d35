/* The container-seq checkpoint: the file list and each finished file's result, as JSON (cJSON, never printf). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "seq.h"

#define CHECKPOINT_VERSION 1

static void json_deletep(cJSON **j) {
  cJSON_Delete(*j);
}

void seq_result_done(struct seq_result *r) {
  free(r->message);
  free(r->tail);
  r->message = r->tail = NULL;
}

void seq_files_hash(const char *cwd, const char *const *files, size_t n, char ret[static 17]) {
  uint64_t h = 0xcbf29ce484222325ULL;
  const char *parts[] = {cwd ? cwd : ""};
  for (size_t i = 0; i <= n; i++) {
    const char *s = i == 0 ? parts[0] : files[i - 1];
    /* The terminating NUL is hashed too, so that {"ab","c"} and {"a","bc"} differ. */
    for (size_t k = 0, len = strlen(s) + 1; k < len; k++) {
      h ^= (unsigned char)s[k];
      h *= 0x100000001b3ULL;
    }
  }
  snprintf(ret, 17, "%016llx", (unsigned long long)h);
}

static const char *const reason_names[] = {
    [SEQ_REASON_EXIT] = "exit", [SEQ_REASON_TIMEOUT] = "timeout", [SEQ_REASON_OOM] = "oom"};

char *seq_checkpoint_format(const char *const *files, size_t n, const struct seq_result *results, const char *session) {
  _cleanup_(json_deletep) cJSON *j = cJSON_CreateObject();
  if (!j)
    return NULL;
  cJSON_AddNumberToObject(j, "version", CHECKPOINT_VERSION);
  cJSON_AddStringToObject(j, "kind", "cleanup-agent container-seq checkpoint");
  if (session)
    cJSON_AddStringToObject(j, "session", session);
  cJSON_AddNumberToObject(j, "updated", (double)time(NULL));
  cJSON *fl = cJSON_AddArrayToObject(j, "files");
  cJSON *rs = cJSON_AddArrayToObject(j, "results");
  if (!fl || !rs)
    return NULL;
  for (size_t i = 0; i < n; i++) {
    cJSON *s = cJSON_CreateString(files[i]);
    if (!s || !cJSON_AddItemToArray(fl, s)) {
      cJSON_Delete(s);
      return NULL;
    }
    const struct seq_result *r = &results[i];
    if (r->outcome == SEQ_PENDING)
      continue;
    cJSON *o = cJSON_CreateObject();
    if (!o || !cJSON_AddItemToArray(rs, o)) {
      cJSON_Delete(o);
      return NULL;
    }
    cJSON_AddNumberToObject(o, "index", (double)i);
    cJSON_AddStringToObject(o, "file", files[i]);
    cJSON_AddBoolToObject(o, "passed", r->outcome == SEQ_PASS);
    cJSON_AddStringToObject(o, "reason", reason_names[r->reason]);
    cJSON_AddNumberToObject(o, "exit_code", r->exit_code);
    cJSON_AddNumberToObject(o, "duration_ms", (double)r->duration_usec / 1000.0);
    if (r->message)
      cJSON_AddStringToObject(o, "message", r->message);
    if (r->tail)
      cJSON_AddStringToObject(o, "tail", r->tail);
  }
  return cJSON_Print(j);
}

/* "3 files: a.sh, b.sh, c.sh" or "12 files: a.sh, b.sh, c.sh, ..." for messages. */
static void describe_list(const cJSON *arr, char *buf, size_t len) {
  int n = cJSON_GetArraySize(arr);
  size_t k = (size_t)snprintf(buf, len, "%d file%s", n, n == 1 ? "" : "s");
  int i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, arr) {
    if (k >= len)
      break;
    if (i == 3) {
      k += (size_t)snprintf(buf + k, len - k, ", ...");
      break;
    }
    k += (size_t)snprintf(buf + k, len - k, "%s%s", i ? ", " : ": ", cJSON_IsString(it) ? it->valuestring : "?");
    i++;
  }
}

static bool json_number(const cJSON *o, const char *key, double min, double max, double *ret) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!cJSON_IsNumber(v) || v->valuedouble < min || v->valuedouble > max)
    return false;
  *ret = v->valuedouble;
  return true;
}

static int dup_optional_string(const cJSON *o, const char *key, char **ret) {
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
  if (!v || cJSON_IsNull(v))
    return 0;
  if (!cJSON_IsString(v))
    return -EINVAL;
  if (!(*ret = strdup(v->valuestring)))
    return -ENOMEM;
  return 0;
}

int seq_checkpoint_parse(const char *text, size_t len, const char *const *files, size_t n,
                         struct seq_result *ret_results, ca_error **err) {
  _cleanup_(json_deletep) cJSON *j = cJSON_ParseWithLength(text, len);
  if (!j || !cJSON_IsObject(j))
    return ca_error_set(err, EINVAL, "not a container-seq checkpoint (not a JSON object)");
  double version;
  const cJSON *kind = cJSON_GetObjectItemCaseSensitive(j, "kind");
  if (!cJSON_IsString(kind) || !streq(kind->valuestring, "cleanup-agent container-seq checkpoint"))
    return ca_error_set(err, EINVAL, "not a container-seq checkpoint");
  if (!json_number(j, "version", 1, CHECKPOINT_VERSION, &version))
    return ca_error_set(err, EINVAL, "checkpoint version is not %d", CHECKPOINT_VERSION);
  const cJSON *fl = cJSON_GetObjectItemCaseSensitive(j, "files");
  const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "results");
  if (!cJSON_IsArray(fl) || !cJSON_IsArray(rs))
    return ca_error_set(err, EINVAL, "checkpoint lacks \"files\" or \"results\"");

  /* The list must be the same files in the same order: results are by position. */
  bool same = (size_t)cJSON_GetArraySize(fl) == n;
  size_t i = 0;
  const cJSON *it;
  cJSON_ArrayForEach(it, fl) {
    if (!same)
      break;
    if (!cJSON_IsString(it) || !streq(it->valuestring, files[i]))
      same = false;
    i++;
  }
  if (!same) {
    char theirs[512];
    describe_list(fl, theirs, sizeof(theirs));
    return ca_error_set(err, ESTALE, "it was made for another file list (%s), not these %zu file%s", theirs, n,
                        n == 1 ? "" : "s");
  }

  _cleanup_free_ struct seq_result *tmp = calloc(n ? n : 1, sizeof(*tmp));
  if (!tmp)
    return ca_error_set(err, ENOMEM, "out of memory");
  int r = 0;
  cJSON_ArrayForEach(it, rs) {
    double idx, code, ms;
    const cJSON *passed = cJSON_GetObjectItemCaseSensitive(it, "passed");
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(it, "reason");
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(it, "file");
    if (!cJSON_IsObject(it) || !json_number(it, "index", 0, (double)n - 1, &idx) || idx != (double)(size_t)idx ||
        !json_number(it, "exit_code", -1, 255, &code) || !json_number(it, "duration_ms", 0, 1e12, &ms) ||
        !cJSON_IsBool(passed) || !cJSON_IsString(reason) || !cJSON_IsString(file)) {
      r = ca_error_set(err, EINVAL, "checkpoint holds a malformed result");
      break;
    }
    struct seq_result *res = &tmp[(size_t)idx];
    if (!streq(file->valuestring, files[(size_t)idx]) || res->outcome != SEQ_PENDING) {
      r = ca_error_set(err, EINVAL, "checkpoint result %zu does not match its file", (size_t)idx);
      break;
    }
    res->reason = ELEMENTSOF(reason_names);
    for (size_t k = 0; k < ELEMENTSOF(reason_names); k++)
      if (streq(reason->valuestring, reason_names[k]))
        res->reason = (enum seq_reason)k;
    if (res->reason == ELEMENTSOF(reason_names)) {
      r = ca_error_set(err, EINVAL, "checkpoint result %zu has an unknown reason", (size_t)idx);
      break;
    }
    res->outcome = cJSON_IsTrue(passed) ? SEQ_PASS : SEQ_FAIL;
    res->exit_code = (int)code;
    res->duration_usec = (uint64_t)(ms * 1000.0);
    if (dup_optional_string(it, "message", &res->message) < 0 || dup_optional_string(it, "tail", &res->tail) < 0) {
      r = ca_error_set(err, EINVAL, "checkpoint result %zu: message or tail is not a string", (size_t)idx);
      break;
    }
  }
  if (r < 0) {
    for (size_t k = 0; k < n; k++)
      seq_result_done(&tmp[k]);
    return r;
  }
  memcpy(ret_results, tmp, n * sizeof(*tmp));
  return 0;
}
