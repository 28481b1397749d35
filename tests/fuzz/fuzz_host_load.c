/* The host load files container-seq reads: /proc/stat (seq_parse_proc_stat), /proc/meminfo (seq_parse_meminfo)
 * and /proc/pressure/memory (seq_parse_psi). Every parser sees the same text. */
#include "fuzz.h"
#include "seq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_cstr(data, size);
  ca_error *e = NULL;
  struct seq_cpu_times t;
  int r = seq_parse_proc_stat(text, &t, &e);
  fuzz_check_result(r, &e);
  if (r == 0)
    FUZZ_ASSERT(t.busy <= t.total);
  uint64_t total, avail;
  r = seq_parse_meminfo(text, &total, &avail, &e);
  fuzz_check_result(r, &e);
  if (r == 0)
    FUZZ_ASSERT(total > 0 && avail <= total);
  double avg10;
  r = seq_parse_psi(text, "full", &avg10, &e);
  fuzz_check_result(r, &e);
  if (r == 0)
    FUZZ_ASSERT(avg10 >= 0 && avg10 <= 100);
  free(text);
  return 0;
}
