/* The flat-keyed cgroup files: cgroup.events, memory.events (and v1 memory.oom_control), cpu.stat (v1 and v2),
 * pids.events and any "key N" file (cg_parse_keyed). Every parser sees the same text. */
#include "cgroup.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_cstr(data, size);
  ca_error *e = NULL;
  cg_events ev;
  fuzz_check_result(cg_parse_events(text, &ev, &e), &e);
  cg_memory_events me;
  fuzz_check_result(cg_parse_memory_events(text, &me, &e), &e);
  cg_cpu_stat cs;
  fuzz_check_result(cg_parse_cpu_stat(text, &cs, &e), &e);
  uint64_t v;
  fuzz_check_result(cg_parse_keyed(text, "max", &v, &e), &e);
  free(text);
  return 0;
}
