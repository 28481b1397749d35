/* The engine's answer to GET /version (dk_parse_version) and the API version it announces in a header
 * (dk_api_version_parse: the input as a string). */
#include "docker-internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *body = fuzz_bytes(data, size);
  char *version = NULL, *os = NULL;
  ca_error *e = NULL;
  int r = dk_parse_version(body, size, &version, &os, &e);
  fuzz_check_result(r, &e);
  if (r == 0)
    FUZZ_ASSERT(version && os);
  free(version);
  free(os);
  free(body);

  char *s = fuzz_cstr(data, size);
  int v = dk_api_version_parse(s);
  FUZZ_ASSERT(v >= -1 && v <= 99 * 1000 + 999);
  free(s);
  return 0;
}
