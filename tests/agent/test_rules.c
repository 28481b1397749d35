/* Every collection rule of DESIGN.md, and every way a resource must be spared, with literal labels. */
#include <criterion/criterion.h>
#include <string.h>

#include "rules.h"

#define ID_ALIVE "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_DEAD "dddddddddddddddddddddddddddddddd"
#define ID_UNKNOWN "0123456789abcdef0123456789abcdef"
#define HOST "runner-1"
#define BOOT "b00710b0-0000-0000-0000-000000000001"
#define MACHINE "5f1e0c2a9b8d4e7fa1b2c3d4e5f60718"
#define OTHER_MACHINE "0123456789abcdef0123456789abcdef"
#define PIDNS "4026531836"
#define NOW 1800000000

static enum ag_session_state state_of(void *ud, const char *id) {
  (void)ud;
  if (strcmp(id, ID_ALIVE) == 0)
    return AG_SESSION_ALIVE;
  if (strcmp(id, ID_DEAD) == 0)
    return AG_SESSION_DEAD;
  return AG_SESSION_UNKNOWN;
}

/* pid 100 started at 5000 still runs; pid 102 cannot be seen (hidepid); everything else is gone. */
static int alive(void *ud, pid_t pid, uint64_t start) {
  (void)ud;
  return pid == 102 ? 0 : pid == 100 && start == 5000 ? 1 : -1;
}

static struct ag_rule_ctx ctx = {.host = HOST,
                                 .machine = MACHINE,
                                 .boot_id = BOOT,
                                 .pidns = 4026531836,
                                 .now = NOW,
                                 .scan_started = NOW,
                                 .session_state = state_of,
                                 .process_alive = alive};

static struct ag_rule_input base(const char *session) {
  return (struct ag_rule_input){.session = session, .created = NOW - 60};
}

/* The labels of a session of this machine, this boot and this PID namespace. */
static void this_machine(struct ag_rule_input *in) {
  in->host = HOST;
  in->machine = MACHINE;
  in->boot_id = BOOT;
  in->pidns = PIDNS;
}

/* The labels of a session of this machine, boot and PID namespace whose owner process is gone. */
static void owner_gone_here(struct ag_rule_input *in) {
  this_machine(in);
  in->owner_pid = "101";
  in->owner_start = "5000";
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
  this_machine(&in);
  in.owner_pid = "100";
  in.owner_start = "5000";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_OWNER_ALIVE);
  in.owner_start = "4999"; /* the pid was reused by another process */
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_RULE_OWNER_GONE);
  in.owner_pid = "101";
  in.owner_start = "5000";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_RULE_OWNER_GONE);
  in.owner_pid = "102";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_UNPROVEN, "an owner gc cannot see is not gone");
  struct ag_rule_ctx older = ctx;
  older.older_than = 1;
  in.created = 1;
  cr_assert_eq(ag_rule_match(&older, &in), AG_SPARE_UNPROVEN, "nor old: it may be running");
  in.created = NOW - 60;
  in.expires = "1";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_RULE_EXPIRED, "its expiry still applies");
  in.expires = NULL;
  in.owner_pid = "101";
  in.machine = OTHER_MACHINE;
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_UNPROVEN, "another machine's pid proves nothing here");
}

Test(rules, malformed_owner_labels_prove_nothing) {
  const char *pids[] = {"", "-1", "0", "abc", "100x", "99999999999999999999"};
  for (size_t i = 0; i < sizeof(pids) / sizeof(pids[0]); i++) {
    struct ag_rule_input in = base(ID_UNKNOWN);
    this_machine(&in);
    in.owner_pid = pids[i];
    in.owner_start = "5000";
    cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_UNPROVEN, "owner-pid '%s'", pids[i]);
  }
}

Test(rules, rebooted_host) {
  struct ag_rule_input in = base(ID_UNKNOWN);
  this_machine(&in);
  in.boot_id = "b00710b0-0000-0000-0000-000000000000";
  in.owner_pid = "100";
  in.owner_start = "5000";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_RULE_REBOOTED);
  in.pidns = "4026532999";
  in.host = "renamed-since";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_RULE_REBOOTED, "the machine id, not the hostname nor the pidns, decides");
  const char *malformed[] = {"", "garbage", "B00710B0-0000-0000-0000-000000000000",
                             "b00710b0-0000-0000-0000-00000000000"};
  for (size_t i = 0; i < sizeof(malformed) / sizeof(malformed[0]); i++) {
    in.boot_id = malformed[i];
    cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_UNPROVEN, "boot-id '%s' proves nothing", malformed[i]);
  }
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
  this_machine(&in);
  in.created = NOW - 7200;
  cr_assert_eq(ag_rule_match(&c, &in), AG_RULE_OLDER_THAN);
  in.finished = NOW - 60; /* created long ago, but exited a minute ago */
  cr_assert_eq(ag_rule_match(&c, &in), AG_SPARE_UNPROVEN);
  in.finished = NOW - 3600;
  cr_assert_eq(ag_rule_match(&c, &in), AG_RULE_OLDER_THAN);
  in.machine = OTHER_MACHINE;
  cr_assert_eq(ag_rule_match(&c, &in), AG_SPARE_UNPROVEN, "another machine's resource ages only by --ttl");
  in.machine = MACHINE;
  in.owner_pid = "100";
  in.owner_start = "5000";
  cr_assert_eq(ag_rule_match(&c, &in), AG_SPARE_OWNER_ALIVE);
}

/* Cloned CI machines named alike share an engine: the hostname says nothing about whose boot a resource is of. */
Test(rules, same_hostname_on_another_machine_is_spared_not_rebooted) {
  struct ag_rule_input in = base(ID_UNKNOWN);
  owner_gone_here(&in);
  in.machine = OTHER_MACHINE;
  in.boot_id = "b00710b0-0000-0000-0000-000000000002";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_UNPROVEN);
}

/* An agent in a container with the host's hostname and machine but its own PID namespace: its pids mean nothing
 * in gc's namespace. */
Test(rules, another_pid_namespace_is_spared_not_owner_gone) {
  struct ag_rule_input in = base(ID_UNKNOWN);
  owner_gone_here(&in);
  in.pidns = "4026532999";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_UNPROVEN);
  const char *bad[] = {NULL, "", "x", "-4026531836", "4026531836 ", "99999999999999999999999"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    in.pidns = bad[i];
    cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_UNPROVEN, "pidns '%s'", bad[i] ? bad[i] : "(none)");
  }
  struct ag_rule_ctx c = ctx;
  c.pidns = 0; /* gc cannot read its own namespace */
  in.pidns = PIDNS;
  cr_assert_eq(ag_rule_match(&c, &in), AG_SPARE_UNPROVEN);
}

/* Labeled before machine labels existed: only expiry and --older-than (of this hostname) judge it. */
Test(rules, without_a_machine_label_only_expiry_and_older_than) {
  struct ag_rule_input in = base(ID_UNKNOWN);
  owner_gone_here(&in);
  in.machine = NULL;
  in.pidns = NULL;
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_UNPROVEN, "owner gone is not proven without a machine");
  in.boot_id = "b00710b0-0000-0000-0000-000000000000";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_SPARE_UNPROVEN, "rebooted is not proven without a machine");
  in.expires = "1799999999";
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_RULE_EXPIRED);
  in.expires = NULL;
  struct ag_rule_ctx c = ctx;
  c.older_than = 30;
  cr_assert_eq(ag_rule_match(&c, &in), AG_RULE_OLDER_THAN);
  in.host = "runner-2";
  cr_assert_eq(ag_rule_match(&c, &in), AG_SPARE_UNPROVEN);
}

/* gc itself without /etc/machine-id proves no owner dead and no reboot, whatever the labels say; an empty machine id
 * is no machine id. */
Test(rules, gc_without_a_machine_id_proves_no_owner_dead) {
  const char *gc_machines[] = {NULL, ""}, *boots[] = {BOOT, "b00710b0-0000-0000-0000-000000000000"};
  for (size_t i = 0; i < 4; i++) {
    struct ag_rule_ctx c = ctx;
    c.machine = gc_machines[i % 2];
    struct ag_rule_input in = base(ID_UNKNOWN);
    owner_gone_here(&in);
    in.machine = c.machine ? c.machine : MACHINE;
    in.boot_id = boots[i / 2];
    cr_assert_eq(ag_rule_match(&c, &in), AG_SPARE_UNPROVEN, "case %zu", i);
  }
}

Test(rules, same_machine_boot_and_pidns_with_the_owner_gone_is_owner_gone) {
  struct ag_rule_input in = base(ID_UNKNOWN);
  owner_gone_here(&in);
  cr_assert_eq(ag_rule_match(&ctx, &in), AG_RULE_OWNER_GONE);
}

Test(rules, names_are_stable) {
  cr_assert_str_eq(ag_rule_name(AG_RULE_DEAD_SESSION), "dead-session");
  cr_assert_str_eq(ag_rule_name(AG_RULE_EXPIRED), "expired");
  cr_assert_str_eq(ag_rule_name(AG_SPARE_KEEP), "keep");
}
