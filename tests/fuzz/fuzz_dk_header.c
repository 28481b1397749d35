/* The engine's response headers (client.c's curl header callback: the status line, Api-Version). The input is split
 * into lines, each handed over as curl does: its own buffer, ending in '\n', no NUL after it. */
#include "docker-internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct dk_req r;
  dk_req_init(&r, "GET", "/_ping", NULL, 1000);
  for (size_t pos = 0; pos < size;) {
    const uint8_t *nl = memchr(data + pos, '\n', size - pos);
    if (!nl)
      break; /* curl hands over complete lines only */
    size_t len = (size_t)(nl - (data + pos)) + 1;
    char *line = fuzz_bytes(data + pos, len);
    FUZZ_ASSERT(dk_header_line(&r, line, len) == len);
    free(line);
    size_t n = strnlen(r.api_version_hdr, sizeof(r.api_version_hdr));
    FUZZ_ASSERT(n < sizeof(r.api_version_hdr) && !strpbrk(r.api_version_hdr, "\r\n"));
    if (r.headers_done)
      FUZZ_ASSERT(r.status >= 200);
    pos += len;
  }
  dk_req_done(&r);
  return 0;
}
