/* The session registry file (ag_registry_parse): state-dir files that a crash may truncate or anyone with access
 * may edit. A parsed registry written back with ag_registry_format must parse again to the same fields. */
#include "fuzz.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_bytes(data, size);
  struct ag_registry reg = {0};
  ca_error *e = NULL;
  int r = ag_registry_parse(text, size, &reg, &e);
  fuzz_check_result(r, &e);
  if (r == 0) {
    FUZZ_ASSERT(ca_session_id_valid(reg.id) && reg.owner.pid > 0 && reg.command);
    char *again_text = ag_registry_format(&reg);
    FUZZ_ASSERT(again_text);
    struct ag_registry again = {0};
    r = ag_registry_parse(again_text, strlen(again_text), &again, &e);
    fuzz_check_result(r, &e);
    FUZZ_ASSERT(r == 0);
    FUZZ_ASSERT(strcmp(again.id, reg.id) == 0 && strcmp(again.mode, reg.mode) == 0);
    FUZZ_ASSERT(strcmp(again.owner.host, reg.owner.host) == 0 && again.owner.pid == reg.owner.pid);
    FUZZ_ASSERT(strcmp(again.owner.machine, reg.owner.machine) == 0 && again.owner.pidns == reg.owner.pidns);
    FUZZ_ASSERT(again.owner.start == reg.owner.start && again.created == reg.created);
    FUZZ_ASSERT(again.expires == reg.expires && again.guardian_pid == reg.guardian_pid);
    FUZZ_ASSERT(!reg.cgroup_root == !again.cgroup_root);
    size_t i = 0;
    for (; reg.command[i]; i++)
      FUZZ_ASSERT(again.command[i] && strcmp(reg.command[i], again.command[i]) == 0);
    FUZZ_ASSERT(!again.command[i]);
    ag_registry_done(&again);
    free(again_text);
    ag_registry_done(&reg);
  }
  free(text);
  return 0;
}
