/* libFuzzer target: bytes a client sends to the session's Docker proxy, through its request parsing and the create
 * body rewrite (agent/proxy/proxy.c). The first byte picks the size of the pieces the input is fed in, as reads would
 * cut it. Links agent/proxy/proxy.c with common, cJSON and libhttp_parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const labels[] = {"io.cleanup-agent.session=0123456789abcdef0123456789abcdef",
                                     "io.cleanup-agent.managed=true", "io.cleanup-agent.mode=run", NULL};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  size_t step = (size_t)data[0] + 1;
  data++;
  size--;
  struct ag_proxy_req *r = ag_proxy_req_new("0123456789abcdef0123456789abcdef", labels);
  if (!r)
    return 0;
  ca_buf to_engine = CA_BUF_INIT(AG_PROXY_BODY_MAX * 2);
  ca_buf to_client = CA_BUF_INIT(1024 * 1024);
  for (size_t off = 0; off < size;) {
    size_t n = size - off < step ? size - off : step;
    if (ag_proxy_req_feed(r, (const char *)data + off, n, &to_engine, &to_client, NULL) < 0)
      break;
    off += n;
    /* The server writes the buffers out after every read. */
    ca_buf_reset(&to_engine);
    ca_buf_reset(&to_client);
  }
  ca_buf_free(&to_engine);
  ca_buf_free(&to_client);
  ag_proxy_req_free(r);
  return 0;
}
