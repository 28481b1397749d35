/* The daemon's error bodies (dk_http_error): the first two bytes pick the status (400..599) and whether the
 * Api-Version header came; the rest is the body. */
#include <errno.h>

#include "docker-internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 2)
    return 0;
  long status = 400 + data[0] % 200;
  bool has_api_version = data[1] & 1;
  char *body = fuzz_bytes(data + 2, size - 2);
  ca_error *e = NULL;
  int r = dk_http_error(&e, "GET", "/containers/json?all=1", status, body, size - 2, has_api_version);
  FUZZ_ASSERT(r < 0 && e && e->detail == status);
  FUZZ_ASSERT(strncmp(e->msg, "GET /containers/json: daemon said ", 34) == 0);
  fuzz_check_result(r, &e);
  free(body);
  return 0;
}
