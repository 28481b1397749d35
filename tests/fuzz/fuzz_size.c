/* SIZE (--memory 512M, ...: ca_parse_size) and the other numbers of the command line (ca_parse_uint,
 * ca_parse_positive_double). A parsed size below 2^63 printed with ca_format_size (one decimal) must parse back to
 * within 5% of it. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_cstr(data, size);
  ca_error *e = NULL;
  uint64_t bytes = 0;
  int r = ca_parse_size(s, &bytes, &e);
  fuzz_check_result(r, &e);
  if (r == 0 && bytes < UINT64_C(1) << 63) {
    char buf[32];
    uint64_t again = 0;
    r = ca_parse_size(ca_format_size(bytes, buf), &again, &e);
    fuzz_check_result(r, &e);
    FUZZ_ASSERT(r == 0 && again >= bytes - bytes / 20 && again <= bytes + bytes / 20);
  }
  uint64_t u;
  fuzz_check_result(ca_parse_uint(s, "--pids", 1, 1u << 22, &u, &e), &e);
  double d;
  r = ca_parse_positive_double(s, "--cpus", 1024, &d, &e);
  fuzz_check_result(r, &e);
  if (r == 0)
    FUZZ_ASSERT(d > 0 && d <= 1024);
  free(s);
  return 0;
}
