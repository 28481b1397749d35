/* DUR (--timeout 30s, --ttl 1h30m, ...: ca_parse_duration). A parsed duration printed with ca_format_duration must
 * parse back to it, less the sub-second part the printer drops (it keeps tenths below an hour). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_cstr(data, size);
  ca_error *e = NULL;
  uint64_t usec = 0;
  int r = ca_parse_duration(s, &usec, &e);
  fuzz_check_result(r, &e);
  if (r == 0) {
    char buf[32];
    uint64_t again = 0;
    r = ca_parse_duration(ca_format_duration(usec, buf), &again, &e);
    fuzz_check_result(r, &e);
    FUZZ_ASSERT(r == 0 && again <= usec && usec - again < 1000000);
  }
  free(s);
  return 0;
}
