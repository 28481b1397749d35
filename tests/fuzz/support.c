/* Linked into every fuzz target, under libFuzzer and under the replay driver alike. */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz.h"

_Noreturn void fuzz_fail(const char *file, int line, const char *cond) {
  fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", file, line, cond);
  abort();
}

void fuzz_check_result(int r, ca_error **e) {
  if (r == 0) {
    FUZZ_ASSERT(!*e);
  } else {
    FUZZ_ASSERT(r < 0 && *e && (*e)->code == -r && (*e)->msg && (*e)->msg[0]);
    for (const char *c = (*e)->msg; *c; c++) /* one line, no terminal control */
      FUZZ_ASSERT((unsigned char)*c >= 0x20 && *c != 0x7f);
  }
  ca_error_free(*e);
  *e = NULL;
}
