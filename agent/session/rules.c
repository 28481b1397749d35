/* The collection rules of DESIGN.md as one pure function. */
#include <string.h>

#include "common.h"
#include "rules.h"
#include "session.h"

const char *ag_rule_name(enum ag_rule r) {
  switch (r) {
    case AG_SPARE_NOT_OURS:
      return "not-ours";
    case AG_SPARE_KEEP:
      return "keep";
    case AG_SPARE_LIVE:
      return "live";
    case AG_SPARE_NEW:
      return "new";
    case AG_SPARE_UNPROVEN:
      return "unproven";
    case AG_SPARE_OWNER_ALIVE:
      return "owner-alive";
    case AG_RULE_NONE:
      return "none";
    case AG_RULE_DEAD_SESSION:
      return "dead-session";
    case AG_RULE_OWNER_GONE:
      return "owner-gone";
    case AG_RULE_REBOOTED:
      return "rebooted";
    case AG_RULE_EXPIRED:
      return "expired";
    case AG_RULE_OLDER_THAN:
      return "older-than";
    case AG_RULE_SET_ASIDE:
      return "set-aside";
  }
  return "?";
}

/* A label value as a number, or false: a malformed value proves nothing. */
static bool label_uint(const char *s, uint64_t max, uint64_t *ret) {
  return s && ca_parse_uint(s, "label", 0, max, ret, NULL) == 0;
}

/* Where the owner labels say the resource was made, compared with gc's own identity. */
enum origin {
  ORIGIN_UNKNOWN,     /* another machine, no machine label, or gc does not know its own machine */
  ORIGIN_OTHER_BOOT,  /* this machine, another boot */
  ORIGIN_OTHER_PIDNS, /* this machine and boot, another (or an unknown) PID namespace */
  ORIGIN_HERE,        /* this machine, boot and PID namespace: its pids are gc's pids */
};

/* A boot id as the kernel writes it (/proc/sys/kernel/random/boot_id): a UUID in lowercase hex. */
static bool boot_id_valid(const char *s) {
  for (size_t i = 0; i < 36; i++)
    if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' : !strchr("0123456789abcdef", s[i]) || !s[i])
      return false;
  return s[36] == '\0';
}

static enum origin origin_of(const struct ag_rule_ctx *ctx, const struct ag_rule_input *in) {
  if (!ctx->machine || !*ctx->machine || !in->machine || !streq(in->machine, ctx->machine) || !in->boot_id ||
      !boot_id_valid(in->boot_id)) /* a malformed one proves nothing, a reboot least */
    return ORIGIN_UNKNOWN;
  if (!streq(in->boot_id, ctx->boot_id))
    return ORIGIN_OTHER_BOOT;
  uint64_t pidns;
  if (ctx->pidns == 0 || !label_uint(in->pidns, UINT64_MAX, &pidns) || pidns != ctx->pidns)
    return ORIGIN_OTHER_PIDNS;
  return ORIGIN_HERE;
}

enum ag_rule ag_rule_match(const struct ag_rule_ctx *ctx, const struct ag_rule_input *in) {
  if (!ca_session_id_valid(in->session))
    return AG_SPARE_NOT_OURS;
  if (in->keep && streq(in->keep, "true"))
    return AG_SPARE_KEEP;
  enum ag_session_state state = ctx->session_state(ctx->userdata, in->session);
  if (state == AG_SESSION_ALIVE)
    return AG_SPARE_LIVE;
  /* Unknown creation time counts as new: what cannot be dated is not raced. */
  if (in->created <= 0 || in->created > ctx->scan_started)
    return AG_SPARE_NEW;

  if (state == AG_SESSION_DEAD)
    return AG_RULE_DEAD_SESSION;
  enum origin origin = origin_of(ctx, in);
  if (origin == ORIGIN_OTHER_BOOT)
    return AG_RULE_REBOOTED;
  /* The owner process, when the labels name gc's own PID namespace and parse: 1 still runs, -1 gone, 0 unknown. */
  int owner = 0;
  bool asked = false;
  uint64_t pid, start, expires;
  if (origin == ORIGIN_HERE && label_uint(in->owner_pid, INT32_MAX, &pid) && pid > 0 &&
      label_uint(in->owner_start, UINT64_MAX, &start)) {
    owner = ctx->process_alive(ctx->userdata, (pid_t)pid, start);
    asked = true;
  }
  if (owner < 0)
    return AG_RULE_OWNER_GONE;
  if (label_uint(in->expires, INT64_MAX, &expires) && (int64_t)expires < ctx->now)
    return AG_RULE_EXPIRED;
  if (owner > 0)
    return AG_SPARE_OWNER_ALIVE;
  if (asked) /* a process has the owner's pid, and gc cannot see which (hidepid): it may be the owner, running */
    return AG_SPARE_UNPROVEN;
  /* --older-than only judges sessions of this machine (of this hostname when labeled before machine labels): on a
   * shared engine, another machine's long session is not ours to end; expiry is the only rule for those. Age from the
   * exit for stopped containers, else from creation. */
  bool this_machine = in->machine ? ctx->machine && *ctx->machine && streq(in->machine, ctx->machine)
                                  : in->host && streq(in->host, ctx->host);
  if (ctx->older_than && this_machine) {
    int64_t since = in->finished > 0 ? in->finished : in->created;
    if (ctx->now - since >= (int64_t)ctx->older_than)
      return AG_RULE_OLDER_THAN;
  }
  return AG_SPARE_UNPROVEN;
}
