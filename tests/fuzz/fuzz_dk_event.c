/* The event stream (GET /events): newline-delimited JSON, each line through dk_parse_event as events.c hands it
 * over (trailing '\r' and spaces cut). */
#include "docker-internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *buf = fuzz_bytes(data, size);
  for (size_t pos = 0; pos < size;) {
    const char *nl = memchr(buf + pos, '\n', size - pos);
    size_t len = nl ? (size_t)(nl - (buf + pos)) : size - pos;
    size_t trimmed = len;
    while (trimmed > 0 && (buf[pos + trimmed - 1] == '\r' || buf[pos + trimmed - 1] == ' '))
      trimmed--;
    if (trimmed > 0) {
      cJSON *j = NULL;
      struct dk_event ev;
      ca_error *e = NULL;
      int r = dk_parse_event(buf + pos, trimmed, &j, &ev, &e);
      fuzz_check_result(r, &e);
      if (r == 0) {
        FUZZ_ASSERT(j && ev.type && ev.action && ev.action[0] && ev.id && ev.time_ns >= 0);
        for (size_t k = 0; k < ev.attributes.n; k++)
          FUZZ_ASSERT(dk_labels_get(&ev.attributes, ev.attributes.v[k].key));
        dk_labels_clear(&ev.attributes);
        cJSON_Delete(j);
      }
    }
    pos += len + (nl ? 1 : 0);
  }
  free(buf);
  return 0;
}
