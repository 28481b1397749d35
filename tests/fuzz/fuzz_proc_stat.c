/* /proc/<pid>/stat (cg_parse_proc_stat): the identity of a process (pid, comm, start time) before it is signalled,
 * and the cpu line of /proc/stat (seq_parse_proc_stat) is a separate target (host_load). */
#include "cgroup.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_cstr(data, size);
  cg_proc_stat st;
  ca_error *e = NULL;
  int r = cg_parse_proc_stat(text, &st, &e);
  fuzz_check_result(r, &e);
  if (r == 0) {
    FUZZ_ASSERT(st.pid > 0 && st.ppid >= 0 && st.pgrp >= 0);
    FUZZ_ASSERT(strlen(st.comm) < sizeof(st.comm));
  }
  free(text);
  return 0;
}
