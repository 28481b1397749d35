/* /proc/<pid>/cgroup (cg_parse_proc_cgroup): which cgroup a process is in, v2 and v1 lines. */
#include "cgroup.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_cstr(data, size);
  cg_proc_cgroup c = {0};
  ca_error *e = NULL;
  int r = cg_parse_proc_cgroup(text, &c, &e);
  fuzz_check_result(r, &e);
  if (r == 0) {
    const char *paths[] = {c.unified, c.v1_memory, c.v1_pids, c.v1_cpu};
    for (size_t i = 0; i < 4; i++)
      FUZZ_ASSERT(!paths[i] || paths[i][0] == '/');
  }
  cg_proc_cgroup_done(&c);
  free(text);
  return 0;
}
