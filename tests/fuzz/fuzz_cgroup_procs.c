/* cgroup.procs (cg_parse_procs, cgroup/parse.c): the pids a leaf holds, one a line, read before every signal. Every
 * pid returned must be in 1..INT32_MAX. */
#include "cgroup-internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_cstr(data, size);
  pid_t *pids = NULL;
  size_t n = 0, cap = 0;
  ca_error *e = NULL;
  int r = cg_parse_procs(text, "/sys/fs/cgroup/run-x/cgroup.procs", &pids, &n, &cap, &e);
  fuzz_check_result(r, &e);
  FUZZ_ASSERT(n <= cap);
  for (size_t i = 0; i < n; i++)
    FUZZ_ASSERT(pids[i] > 0);
  free(pids);
  free(text);
  return 0;
}
