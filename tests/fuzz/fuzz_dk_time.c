/* RFC 3339 times from the engine ("Created", "StartedAt", "FinishedAt": dk_parse_time). */
#include "docker-internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_cstr(data, size);
  int64_t us = -1;
  ca_error *e = NULL;
  int r = dk_parse_time(s, &us, &e);
  fuzz_check_result(r, &e);
  if (r == 0)
    FUZZ_ASSERT(us >= -(INT64_C(86400) * 1000000)); /* 1970 minus at most a day of offset, or 0 for never */
  free(s);
  return 0;
}
