/* Engine answers to GET /containers/json, /networks and /volumes (dk_parse_list). The first byte picks the kind; the
 * rest is the body, handed over with its exact length as curl delivers it. */
#include "docker-internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  enum dk_kind kind = data[0] % 3 == 0 ? DK_CONTAINER : data[0] % 3 == 1 ? DK_NETWORK : DK_VOLUME;
  char *body = fuzz_bytes(data + 1, size - 1);
  struct dk_list *l = NULL;
  ca_error *e = NULL;
  int r = dk_parse_list(kind, body, size - 1, &l, &e);
  fuzz_check_result(r, &e);
  if (r == 0) {
    FUZZ_ASSERT(l);
    for (size_t i = 0; i < l->n; i++) {
      FUZZ_ASSERT(l->items[i].id && l->items[i].id[0]);
      for (size_t k = 0; k < l->items[i].labels.n; k++)
        FUZZ_ASSERT(dk_item_label(&l->items[i], l->items[i].labels.v[k].key));
    }
  }
  dk_list_free(l);
  free(body);
  return 0;
}
