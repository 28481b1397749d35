/* The container-seq checkpoint: the file list and each finished file's result, as JSON (cJSON, never printf). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "seq.h"

#define CHECKPOINT_VERSION 1

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
  _cleanup_json_ cJSON *j = cJSON_CreateObject();
  if (!j)
    return NULL;
  ca_json_add_int(j, "version", CHECKPOINT_VERSION);
  cJSON_AddStringToObject(j, "kind", "cleanup-agent container-seq checkpoint");
  if (session)
    cJSON_AddStringToObject(j, "session", session);
  ca_json_add_int(j, "updated", (int64_t)time(NULL));
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
    ca_json_add_int(o, "index", (int64_t)i);
    cJSON_AddStringToObject(o, "file", files[i]);
    cJSON_AddBoolToObject(o, "passed", r->outcome == SEQ_PASS);
    cJSON_AddStringToObject(o, "reason", reason_names[r->reason]);
    ca_json_add_int(o, "exit_code", r->exit_code);
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

/* One result of the checkpoint into its slot of results (zeroed, n slots), checked against files. */
static int parse_result(const cJSON *it, const char *const *files, size_t n, struct seq_result *results,
                        ca_error **err) {
  static const char *const required[] = {"index", "file", "passed", "reason", "exit_code", "duration_ms", NULL};
  int64_t idx = 0, code = 0;
  double ms = 0;
  bool passed = false;
  const char *file = NULL, *reason = NULL;
  if (!cJSON_IsObject(it))
    return ca_error_set(err, EBADMSG, "expected an object, got %s", ca_json_type_name(it));
  int r;
  if ((r = ca_json_require(it, required, err)) < 0 ||
      (r = ca_json_int(it, "index", 0, (int64_t)n - 1, &idx, err)) < 0 ||
      (r = ca_json_string(it, "file", &file, err)) < 0 || (r = ca_json_bool(it, "passed", &passed, err)) < 0 ||
      (r = ca_json_string(it, "reason", &reason, err)) < 0 ||
      (r = ca_json_int(it, "exit_code", -1, 255, &code, err)) < 0 ||
      (r = ca_json_double(it, "duration_ms", 0, 1e12, &ms, err)) < 0)
    return r;
  struct seq_result *res = &results[idx];
  if (!streq(file, files[idx]) || res->outcome != SEQ_PENDING)
    return ca_error_set(err, EBADMSG, "result %" PRId64 " does not match its file", idx);
  size_t k = 0;
  while (k < ELEMENTSOF(reason_names) && !streq(reason, reason_names[k]))
    k++;
  if (k == ELEMENTSOF(reason_names))
    return ca_error_set(err, EBADMSG, "result %" PRId64 " has an unknown reason", idx);
  res->reason = (enum seq_reason)k;
  res->outcome = passed ? SEQ_PASS : SEQ_FAIL;
  res->exit_code = (int)code;
  res->duration_usec = (uint64_t)(ms * 1000.0);
  if ((r = ca_json_strdup(it, "message", &res->message, err)) < 0 ||
      (r = ca_json_strdup(it, "tail", &res->tail, err)) < 0)
    return ca_error_wrap(err, "result %" PRId64, idx);
  return 0;
}

int seq_checkpoint_parse(const char *text, size_t len, const char *const *files, size_t n,
                         struct seq_result *ret_results, ca_error **err) {
  _cleanup_json_ cJSON *j = NULL;
  _cleanup_error_ ca_error *why = NULL;
  if (ca_json_parse(text, len, "checkpoint", &j, &why) < 0 || !cJSON_IsObject(j))
    return ca_error_set(err, EINVAL, "not a container-seq checkpoint (%s)", why ? why->msg : "not a JSON object");
  const char *kind = NULL;
  int64_t version = 0;
  const cJSON *fl = NULL, *rs = NULL;
  if (ca_json_string(j, "kind", &kind, NULL) < 0 || !kind || !streq(kind, "cleanup-agent container-seq checkpoint"))
    return ca_error_set(err, EINVAL, "not a container-seq checkpoint");
  if (ca_json_int(j, "version", 1, CHECKPOINT_VERSION, &version, NULL) < 0 || version == 0)
    return ca_error_set(err, EINVAL, "checkpoint version is not %d", CHECKPOINT_VERSION);
  if (ca_json_array(j, "files", &fl, NULL) < 0 || ca_json_array(j, "results", &rs, NULL) < 0 || !fl || !rs)
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
    if ((r = parse_result(it, files, n, tmp, &why)) < 0)
      break;
  }
  if (r < 0) {
    for (size_t k = 0; k < n; k++)
      seq_result_done(&tmp[k]);
    return ca_error_set(err, EINVAL, "checkpoint holds a malformed result: %s", why ? why->msg : "?");
  }
  memcpy(ret_results, tmp, n * sizeof(*tmp));
  return 0;
}
