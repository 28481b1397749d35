/* The engine's answer to POST /containers/<id>/wait (dk_parse_wait_result). */
#include "docker-internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *body = fuzz_bytes(data, size);
  int code = -12345;
  ca_error *e = NULL;
  int r = dk_parse_wait_result(body, size, &code, &e);
  fuzz_check_result(r, &e);
  if (r != 0)
    FUZZ_ASSERT(code == -12345); /* a failed parse leaves the exit code alone */
  free(body);
  return 0;
}
