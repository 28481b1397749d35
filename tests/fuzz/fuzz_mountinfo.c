/* /proc/self/mountinfo (cg_parse_mountinfo): where the cgroup hierarchies are. */
#include "cgroup.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_cstr(data, size);
  cg_mounts m = {0};
  ca_error *e = NULL;
  int r = cg_parse_mountinfo(text, &m, &e);
  fuzz_check_result(r, &e);
  if (r == 0 && (m.v1_memory || m.v1_pids || m.v1_cpu))
    FUZZ_ASSERT(m.v1_count > 0);
  cg_mounts_done(&m);
  free(text);
  return 0;
}
