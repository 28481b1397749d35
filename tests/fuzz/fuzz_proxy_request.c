/* libFuzzer target: one connection through the session's Docker proxy (agent/proxy/proxy.c and proxy_body.c): the
 * bytes a client sends through its request parsing and the create body rewrite, and the engine's answers through the
 * tracking that decides where the proxy's own answers go and when the connection turns into a byte stream.
 *
 * Input: the first byte picks the size of the pieces everything is fed in, as reads would cut it, and when odd
 * sets a cgroup parent (--contain-containers). The rest is split
 * at every "\0\xff": the first part is what the client sends, the next what the engine answers, and so on, in turn;
 * the engine closes at the end. Links the two proxy sources with common, cJSON and libhttp_parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "proxy.h"

static const char *const labels[] = {"io.cleanup-agent.session=0123456789abcdef0123456789abcdef",
                                     "io.cleanup-agent.managed=true", "io.cleanup-agent.mode=run", NULL};

/* What the proxy answers itself is one of its own HTTP error answers, whole. */
static void check_own_answer(const ca_buf *to_client) {
  if (!to_client->len)
    return;
  FUZZ_ASSERT(to_client->len > 13 && memcmp(to_client->data, "HTTP/1.1 4", 10) == 0);
  FUZZ_ASSERT(memmem(to_client->data, to_client->len, "Connection: close\r\n", 19) != NULL);
}

/* Feeds one part from one side in pieces of step bytes; false once the connection is over. */
static bool feed_part(struct ag_proxy_req *r, bool client, const char *part, size_t size, size_t step,
                      ca_buf *to_engine, ca_buf *to_client) {
  for (size_t off = 0; off < size;) {
    size_t n = size - off < step ? size - off : step;
    int k = client ? ag_proxy_req_feed(r, part + off, n, to_engine, to_client, NULL)
                   : ag_proxy_resp_feed(r, part + off, n, to_client, NULL);
    if (client)
      check_own_answer(to_client);
    if (!client && k == AG_PROXY_GO && !ag_proxy_req_waiting(r))
      k = ag_proxy_req_feed(r, NULL, 0, to_engine, to_client, NULL); /* what waited for this answer goes on */
    /* The server writes the buffers out after every read. */
    ca_buf_reset(to_engine);
    ca_buf_reset(to_client);
    if (k < 0 || (k == AG_PROXY_CLOSE && !client))
      return false; /* a client side close may leave the proxy's answer to the engine side: that goes on */
    off += n;
  }
  return true;
}

/* The server's hooks, as it sets them: bound volumes exist, ids are noted, the session is not ending. */
static int volume_exists(void *ctx, const char *name, ca_error **err) {
  (void)ctx, (void)err;
  FUZZ_ASSERT(name[0] != '\0');
  return 0;
}

static void created(void *ctx, char kind, const char *id) {
  (void)ctx;
  FUZZ_ASSERT((kind == 'c' || kind == 'n' || kind == 'v') && id[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  size_t step = (size_t)data[0] + 1;
  char *all = fuzz_bytes(data + 1, size - 1);
  size--;
  struct ag_proxy_req *r = ag_proxy_req_new("0123456789abcdef0123456789abcdef", labels);
  if (!r)
    abort();
  ag_proxy_req_set_volume_fn(r, volume_exists, NULL);
  if (data[0] & 1) /* --contain-containers: container creates get the session's cgroup parent */
    ag_proxy_req_set_cgroup_parent(r, "/cleanup-agent.slice/run-0123456789abcdef0123456789abcdef");
  ag_proxy_req_set_hooks(r, &(struct ag_proxy_hooks){.created = created});
  ca_buf to_engine = CA_BUF_INIT(AG_PROXY_BODY_MAX * 2);
  ca_buf to_client = CA_BUF_INIT(AG_PROXY_BODY_MAX * 2);
  bool client = true, open = true;
  for (size_t off = 0; open && off <= size; client = !client) {
    const char *sep = memmem(all + off, size - off, "\0\xff", 2);
    size_t end = sep ? (size_t)(sep - all) : size;
    open = feed_part(r, client, all + off, end - off, step, &to_engine, &to_client);
    off = end + 2;
  }
  if (open)
    (void)ag_proxy_resp_feed(r, NULL, 0, &to_client, NULL); /* the engine closes */
  ca_buf_free(&to_engine);
  ca_buf_free(&to_client);
  ag_proxy_req_free(r);
  free(all);
  return 0;
}
