/* The list splitter (dk_split_*): the first byte picks the mode and the chunk size, the rest is the answer, fed in
 * those chunks as curl would deliver it. Checks that any chunking gives what the whole gives, and, against cJSON
 * reading the whole answer at once, that an accepted answer is one JSON value of the list's shape with exactly the
 * elements handed over. */
#include <cjson/cJSON.h>

#include "docker-internal.h"
#include "fuzz.h"

struct count {
  size_t n;
  size_t bytes;
};

static int count_element(void *userdata, const char *json, size_t len, ca_error **err) {
  struct count *c = userdata;
  /* an element is whole JSON text: cJSON reads it to its end */
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(json, len, &end, false);
  if (!j)
    return ca_error_set(err, EBADMSG, "not JSON");
  FUZZ_ASSERT(cJSON_IsObject(j) && end == json + len);
  cJSON_Delete(j);
  c->n++;
  c->bytes += len;
  return 0;
}

static int split(enum dk_split_mode mode, const char *body, size_t len, size_t chunk, struct count *c) {
  struct dk_split s;
  ca_error *e = NULL;
  dk_split_init(&s, mode, 1 << 16, count_element, c);
  int r = 0;
  for (size_t at = 0; r == 0 && at < len; at += chunk)
    r = dk_split_feed(&s, body + at, CA_MIN(chunk, len - at), &e);
  if (r == 0)
    r = dk_split_finish(&s, &e);
  FUZZ_ASSERT((r == 0) == (e == NULL));
  FUZZ_ASSERT(r == 0 || (e->msg && e->msg[0] && r == -e->code));
  ca_error_free(e);
  dk_split_done(&s);
  return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  enum dk_split_mode mode = data[0] & 1 ? DK_SPLIT_VOLUMES : DK_SPLIT_ARRAY;
  size_t chunk = (size_t)(data[0] >> 1) + 1;
  size_t len = size - 1;
  char *body = fuzz_bytes(data + 1, len);
  struct count whole = {0}, parts = {0};
  int r = split(mode, body, len, len ? len : 1, &whole);
  int r2 = split(mode, body, len, chunk, &parts);
  FUZZ_ASSERT(r == r2 && whole.n == parts.n && whole.bytes == parts.bytes);
  if (r == 0 && !memchr(body, '\0', len)) {
    /* cJSON stops at a NUL; without one, what the splitter took whole cJSON takes whole */
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, false);
    FUZZ_ASSERT(j);
    while (end < body + len && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r'))
      end++;
    FUZZ_ASSERT(end == body + len);
    const cJSON *arr = mode == DK_SPLIT_ARRAY ? j : cJSON_GetObjectItemCaseSensitive(j, "Volumes");
    FUZZ_ASSERT(mode == DK_SPLIT_ARRAY ? cJSON_IsArray(arr) : cJSON_IsObject(j));
    FUZZ_ASSERT((size_t)cJSON_GetArraySize(arr) == whole.n);
    cJSON_Delete(j);
  }
  free(body);
  return 0;
}
