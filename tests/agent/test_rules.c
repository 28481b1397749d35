/* Every collection rule of DESIGN.md, and every way a resource must be spared, with literal labels. */
#include <criterion/criterion.h>
#include <string.h>

#include "rules.h"

#define ID_ALIVE "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_DEAD "dddddddddddddddddddddddddddddddd"
#define ID_UNKNOWN "0123456789abcdef0123456789abcdef"
#define HOST "runner-1"
#define BOOT "b00710b0-0000-0000-0000-000000000001"
#define NOW 1800000000

static enum ag_session_state state_of(void *ud, const char *id) {
  (void)ud;
  if (strcmp(id, ID_ALIVE) == 0)
    return AG_SESSION_ALIVE;
  if (strcmp(id, ID_DEAD) == 0)
    return AG_SESSION_DEAD;
  return AG_SESSION_UNKNOWN;
}

/* pid 100 started at 5000 still runs; everything else is gone. */
static bool alive(void *ud, pid_t pid, uint64_t start) {
  (void)ud;
  return pid == 100 && start == 5000;
}

static struct ag_rule_ctx ctx = {
    .host = HOST, .boot_id = BOOT, .now = NOW, .scan_started = NOW, .session_state = state_of, .process_alive = alive};

static struct ag_rule_input base(const char *session) {
  return (struct ag_rule_input){.session = session, .created = NOW - 60};
}

Test(rules, not_ours_without_a_valid_session_id) {
  const char *bad[] = {NULL, "", "dead", "../../../../etc/passwd", ID_UNKNOWN "0", "0123456789ABCDEF0123456789abcdef"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct ag_rule_input in = base(bad[i]);
    in.expires = "1"; /* even long expired: not ours is not ours */
    cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_NOT_OURS, "case %zu", i);
  }
}

Test(rules, keep_true_is_never_collected) {
  struct ag_rule_input in = base(ID_DEAD);
  in.keep = "true";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_KEEP);
  in.keep = "false";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_RULE_DEAD_SESSION);
}

Test(rules, a_live_session_is_never_collected_whatever_else_it_says) {
  struct ag_rule_input in = base(ID_ALIVE);
  in.host = HOST;
  in.boot_id = "another-boot";
  in.expires = "1";
  in.created = 1;
  struct ag_rule_ctx c = ctx;
  c.older_than = 1;
  cr_assert_eq(ag_rule_match(&c, &in), AG_SPARE_LIVE);
}

Test(rules, created_after_the_scan_began_is_left_for_next_time) {
  struct ag_rule_input in = base(ID_DEAD);
  in.created = NOW + 1;
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_NEW);
  in.created = 0;
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_NEW, "an undated resource is not raced");
}

Test(rules, dead_session_of_this_host) {
  struct ag_rule_input in = base(ID_DEAD);
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_RULE_DEAD_SESSION);
}

Test(rules, owner_gone_needs_this_host_this_boot_and_a_verified_absence) {
  struct ag_rule_input in = base(ID_UNKNOWN);
  in.host = HOST;
  in.boot_id = BOOT;
  in.owner_pid = "100";
  in.owner_start = "5000";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_OWNER_ALIVE);
  in.owner_start = "4999"; /* the pid was reused by another process */
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_RULE_OWNER_GONE);
  in.owner_pid = "101";
  in.owner_start = "5000";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_RULE_OWNER_GONE);
  in.host = "runner-2";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_UNPROVEN, "another host's pid proves nothing here");
}

Test(rules, malformed_owner_labels_prove_nothing) {
  const char *pids[] = {"", "-1", "0", "abc", "100x", "99999999999999999999"};
  for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++) {
    struct ag_rule_input in = base(ID_UNKNOWN);
    in.host = HOST;
    in.boot_id = BOOT;
    in.owner_pid = pids[i];
    in.owner_start = "5000";
    cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_UNPROVEN, "owner-pid '%s'", pids[i]);
  }
}

Test(rules, rebooted_host) {
  struct ag_rule_input in = base(ID_UNKNOWN);
  in.host = HOST;
  in.boot_id = "b00710b0-0000-0000-0000-000000000000";
  in.owner_pid = "100";
  in.owner_start = "5000";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_RULE_REBOOTED);
}

Test(rules, expiry_applies_to_any_host) {
  struct ag_rule_input in = base(ID_UNKNOWN);
  in.host = "runner-9";
  in.boot_id = "x";
  in.expires = "1799999999";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_RULE_EXPIRED);
  in.expires = "1800000001";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_UNPROVEN);
  in.expires = "soon";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_UNPROVEN);
  in.expires = "-5";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_UNPROVEN);
}

Test(rules, older_than_judges_this_host_only_and_ages_from_exit) {
  struct ag_rule_ctx c = ctx;
  c.older_than = 3600;
  struct ag_rule_input in = base(ID_UNKNOWN);
  in.host = HOST;
  in.boot_id = BOOT;
  in.created = NOW - 7200;
  cr_assert_eq(ag_rule_match(&c, &in), AG_RULE_OLDER_THAN);
  in.finished = NOW - 60; /* created long ago, but exited a minute ago */
  cr_assert_eq(ag_rule_match(&c, &in), AG_SPARE_UNPROVEN);
  in.finished = NOW - 3600;
  cr_assert_eq(ag_rule_match(&c, &in), AG_RULE_OLDER_THAN);
  in.host = "runner-2";
  cr_assert_eq(ag_rule_match(&c, &in), AG_SPARE_UNPROVEN, "another host's resource ages only by --ttl");
  in.host = HOST;
  in.owner_pid = "100";
  in.owner_start = "5000";
  cr_assert_eq(ag_rule_match(&c, &in), AG_SPARE_OWNER_ALIVE);
}

Test(rules, names_are_stable) {
  cr_assert_str_eq(ag_rule_name(AG_RULE_DEAD_SESSION), "dead-session");
  cr_assert_str_eq(ag_rule_name(AG_RULE_EXPIRED), "expired");
  cr_assert_str_eq(ag_rule_name(AG_SPARE_KEEP), "keep");
}
