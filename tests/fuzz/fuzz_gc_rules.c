/* gc's collection rules over a resource's labels (ag_rule_match, agent/session/rules.c): labels come from the engine,
 * so anyone who can create a container can write them. Input: 24 bytes (the session state, whether the owner process
 * runs, is gone or cannot be told, whether gc knows its machine id, created and finished times), then the label values
 * session, keep, host, boot-id, owner-pid, owner-start, expires, machine and pidns separated by NUL bytes (a missing
 * one is an absent label). The safety rules of DESIGN.md must hold for any labels: nothing without a valid session
 * label, nothing kept, nothing of a live session, nothing new; an owner is only declared gone after the process check
 * said so (not when it could not tell) for exactly the labeled pid, and only when machine, boot id and PID namespace
 * are gc's own; a reboot only on gc's machine. */
#include "fuzz.h"
#include "rules.h"

struct world {
  enum ag_session_state state;
  int alive; /* what the process check says: 1 runs, -1 gone, 0 cannot tell */
  int checks;
  pid_t pid;
  uint64_t start;
};

static enum ag_session_state session_state(void *userdata, const char *id) {
  FUZZ_ASSERT(ca_session_id_valid(id));
  return ((struct world *)userdata)->state;
}

static int process_alive(void *userdata, pid_t pid, uint64_t start) {
  struct world *w = userdata;
  FUZZ_ASSERT(pid > 0);
  w->checks++;
  w->pid = pid;
  w->start = start;
  return w->alive;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 24)
    return 0;
  struct world w = {.state = (enum ag_session_state)(data[0] % 3), .alive = data[1] % 3 - 1};
  int64_t created, finished;
  memcpy(&created, data + 8, sizeof(created));
  memcpy(&finished, data + 16, sizeof(finished));
  if (data[2] & 1) /* mostly realistic times, so the later rules are reached */
    created = 1700000000 + (created & 0xffffff), finished = finished & 1 ? 0 : created + (finished & 0xffff);
  char *copy = fuzz_cstr(data + 24, size - 24); /* NUL-separated values, the last one terminated here */
  const char *v[9] = {NULL};
  size_t n = 0;
  for (size_t pos = 0; n < 9 && pos <= size - 24; n++) {
    v[n] = copy + pos;
    pos += strlen(copy + pos) + 1;
  }
  struct ag_rule_input in = {.session = v[0],
                             .keep = v[1],
                             .host = v[2],
                             .boot_id = v[3],
                             .owner_pid = v[4],
                             .owner_start = v[5],
                             .expires = v[6],
                             .machine = v[7],
                             .pidns = v[8],
                             .created = created,
                             .finished = finished};
  struct ag_rule_ctx ctx = {.host = "ci-runner-7",
                            .machine = data[4] & 1 ? NULL : "3d1219c7c4c5404aaa1f6d2a48adfda4",
                            .pidns = data[4] & 2 ? 0 : 4026531836,
                            .boot_id = "5b6c1f0e-8d1a-4a51-9d3e-2f4c7f0a9b11",
                            .now = 1764624000,
                            .scan_started = 1764623990,
                            .older_than = data[3] & 1 ? 3600 : 0,
                            .session_state = session_state,
                            .process_alive = process_alive,
                            .userdata = &w};
  enum ag_rule r = ag_rule_match(&ctx, &in);
  FUZZ_ASSERT(strcmp(ag_rule_name(r), "?") != 0);
  if (r > 0) {
    FUZZ_ASSERT(ca_session_id_valid(in.session));
    FUZZ_ASSERT(!in.keep || strcmp(in.keep, "true") != 0);
    FUZZ_ASSERT(w.state != AG_SESSION_ALIVE);
    FUZZ_ASSERT(in.created > 0 && in.created <= ctx.scan_started);
  }
  if (r == AG_RULE_OWNER_GONE) {
    FUZZ_ASSERT(w.checks == 1 && w.alive < 0);
    FUZZ_ASSERT(ctx.machine && in.machine && strcmp(in.machine, ctx.machine) == 0 && in.boot_id &&
                strcmp(in.boot_id, ctx.boot_id) == 0);
    uint64_t pid, pidns;
    FUZZ_ASSERT(ctx.pidns && in.pidns && ca_parse_uint(in.pidns, "pidns", 0, UINT64_MAX, &pidns, NULL) == 0 &&
                pidns == ctx.pidns);
    FUZZ_ASSERT(in.owner_pid && ca_parse_uint(in.owner_pid, "pid", 1, INT32_MAX, &pid, NULL) == 0 &&
                pid == (uint64_t)w.pid);
  }
  if (r == AG_RULE_REBOOTED)
    FUZZ_ASSERT(ctx.machine && in.machine && strcmp(in.machine, ctx.machine) == 0 && in.boot_id &&
                strcmp(in.boot_id, ctx.boot_id) != 0);
  if (r == AG_RULE_OLDER_THAN) { /* this machine's, or (labeled before machine labels) this hostname's */
    FUZZ_ASSERT(in.machine ? ctx.machine && strcmp(in.machine, ctx.machine) == 0
                           : in.host && strcmp(in.host, ctx.host) == 0);
    FUZZ_ASSERT(w.checks == 0); /* an owner process that runs or cannot be told about is never old */
  }
  if (r == AG_SPARE_OWNER_ALIVE)
    FUZZ_ASSERT(w.checks == 1 && w.alive > 0);
  free(copy);
  return 0;
}
