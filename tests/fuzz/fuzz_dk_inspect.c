/* The engine's answer to GET /containers/<id>/json (dk_parse_container_info). */
#include "docker-internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *body = fuzz_bytes(data, size);
  struct dk_container_info *i = NULL;
  ca_error *e = NULL;
  int r = dk_parse_container_info(body, size, &i, &e);
  fuzz_check_result(r, &e);
  if (r == 0) {
    FUZZ_ASSERT(i && i->id && i->id[0]);
    FUZZ_ASSERT(i->pid >= 0 && i->created_us >= 0 && i->started_us >= 0 && i->finished_us >= 0);
  }
  dk_container_info_free(i);
  free(body);
  return 0;
}
