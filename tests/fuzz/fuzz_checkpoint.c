/* The container-seq checkpoint (seq_checkpoint_parse), for a fixed list of three files (the seed corpus was written
 * for it). A parsed checkpoint written back with seq_checkpoint_format must parse again to the same outcomes. */
#include "fuzz.h"
#include "seq.h"

#define N 3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const files[N] = {"tests/a.sh", "tests/b.sh", "tests/c d.sh"};
  char *text = fuzz_bytes(data, size);
  struct seq_result res[N] = {0};
  ca_error *e = NULL;
  int r = seq_checkpoint_parse(text, size, files, N, res, &e);
  fuzz_check_result(r, &e);
  if (r == 0) {
    char *again_text = seq_checkpoint_format(files, N, res, NULL);
    FUZZ_ASSERT(again_text);
    struct seq_result again[N] = {0};
    r = seq_checkpoint_parse(again_text, strlen(again_text), files, N, again, &e);
    fuzz_check_result(r, &e);
    FUZZ_ASSERT(r == 0);
    for (size_t i = 0; i < N; i++) {
      FUZZ_ASSERT(again[i].outcome == res[i].outcome && again[i].exit_code == res[i].exit_code);
      FUZZ_ASSERT(!again[i].message == !res[i].message);
      seq_result_done(&again[i]);
      seq_result_done(&res[i]);
    }
    free(again_text);
  }
  free(text);
  return 0;
}
