/* Unit tests of the cgroup driver choice and the systemd driver's parts that need no systemd: which driver AUTO
 * picks, the scope's unit properties for given limits, the names of session leaves, and one clear line when the
 * manager's bus is not there. Nothing here writes to a cgroup. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "cgroup-internal.h"
#include "fake_systemd.h"

#define ID "0123456789abcdef0123456789abcdef"

Test(cgroup_driver, parse_names_the_three) {
  enum cg_driver d;
  cr_assert(cg_driver_parse("auto", &d, NULL) == 0 && d == CG_DRIVER_AUTO);
  cr_assert(cg_driver_parse("systemd", &d, NULL) == 0 && d == CG_DRIVER_SYSTEMD);
  cr_assert(cg_driver_parse("cgroupfs", &d, NULL) == 0 && d == CG_DRIVER_CGROUPFS);
  ca_error *err = NULL;
  cr_assert(cg_driver_parse("Systemd", &d, &err) == -EINVAL);
  cr_expect(strstr(err->msg, "'Systemd'") && strstr(err->msg, "auto, systemd or cgroupfs"), "%s", err->msg);
  ca_error_free(err);
}

Test(cgroup_driver, auto_resolves_by_host) {
  /* wanted, booted, unified, root given, delegated */
  cr_expect_eq(cg_driver_resolve(CG_DRIVER_AUTO, true, true, false, false), CG_DRIVER_SYSTEMD);
  cr_expect_eq(cg_driver_resolve(CG_DRIVER_AUTO, false, true, false, false), CG_DRIVER_CGROUPFS, "no systemd");
  cr_expect_eq(cg_driver_resolve(CG_DRIVER_AUTO, true, false, false, false), CG_DRIVER_CGROUPFS, "hybrid");
  cr_expect_eq(cg_driver_resolve(CG_DRIVER_AUTO, true, true, true, false), CG_DRIVER_CGROUPFS, "--cgroup-root");
  cr_expect_eq(cg_driver_resolve(CG_DRIVER_AUTO, true, true, false, true), CG_DRIVER_CGROUPFS, "delegated to us");
  cr_expect_eq(cg_driver_resolve(CG_DRIVER_SYSTEMD, false, false, false, false), CG_DRIVER_SYSTEMD, "asked for");
  cr_expect_eq(cg_driver_resolve(CG_DRIVER_CGROUPFS, true, true, false, false), CG_DRIVER_CGROUPFS, "asked for");
  cr_expect_eq(cg_driver_resolve(CG_DRIVER_SYSTEMD, true, true, true, false), CG_DRIVER_CGROUPFS, "a root by path");
}

Test(cgroup_driver, default_driver_applies_to_auto) {
  cg_driver_set_default(CG_DRIVER_CGROUPFS);
  cr_expect_eq(cg_driver_resolve(CG_DRIVER_AUTO, true, true, false, false), CG_DRIVER_CGROUPFS);
  cg_driver_set_default(CG_DRIVER_AUTO);
  cr_expect_eq(cg_driver_resolve(CG_DRIVER_AUTO, true, true, false, false), CG_DRIVER_SYSTEMD);
}

/* Opens the default root only to look at it (writes nothing), with the agent's names. */
static cg_root *open_looking(enum cg_driver driver, const char *systemd_dir, const char *bus, ca_error **err) {
  cg_root_options o = {.name = "cleanup-agent-test-driver.slice",
                       .slice = "cleanup_agent_test.slice",
                       .unit_prefix = "cleanup-agent-test-",
                       .open_existing = true,
                       .allow_process = true,
                       .driver = driver,
                       .systemd_dir = systemd_dir,
                       .bus_address = bus};
  cg_root *root = NULL;
  return cg_root_open(&o, &root, err) == 0 ? root : NULL;
}

Test(cgroup_driver, auto_picks_cgroupfs_without_systemd) {
  cg_root *root = open_looking(CG_DRIVER_AUTO, "/nonexistent/systemd/system", NULL, NULL);
  cr_assert(root);
  cr_expect_eq(cg_root_driver(root), CG_DRIVER_CGROUPFS);
  cg_root_free(root);
}

/* The host's own answer, asserted on both kinds of host the test command runs on: systemd where systemd is PID 1
 * on pure cgroup v2 (a stock Debian 12; the suites run from a login session there, not from a delegated unit),
 * cgroupfs elsewhere (this hybrid host without systemd). */
Test(cgroup_driver, auto_picks_the_driver_of_this_host) {
  struct statfs sfs;
  bool unified = statfs("/sys/fs/cgroup", &sfs) == 0 && sfs.f_type == CGROUP2_SUPER_MAGIC;
  enum cg_driver want = cg_systemd_booted(NULL) && unified ? CG_DRIVER_SYSTEMD : CG_DRIVER_CGROUPFS;
  cg_root *root = open_looking(CG_DRIVER_AUTO, NULL, NULL, NULL);
  cr_assert(root);
  cr_expect_eq(cg_root_driver(root), want, "picked %d, want %d (systemd %s, cgroup2 at /sys/fs/cgroup %s)",
               cg_root_driver(root), want, cg_systemd_booted(NULL) ? "yes" : "no", unified ? "yes" : "no");
  cg_root_free(root);
}

Test(cgroup_driver, missing_bus_is_one_clear_line) {
  char dir[] = "/tmp/cg-driver-XXXXXX";
  cr_assert(mkdtemp(dir));
  /* With process tracking allowed, it becomes the reason said once at start. */
  cg_root *root = open_looking(CG_DRIVER_SYSTEMD, dir, "unix:path=/nonexistent/cg-test-bus", NULL);
  cr_assert(root);
  cr_expect_eq(cg_root_tracking(root), CG_TRACK_PROCESS);
  const char *why = cg_root_fallback_reason(root);
  cr_expect(strstr(why, "no systemd") && strstr(why, "/nonexistent/cg-test-bus") && !strchr(why, '\n'), "%s", why);
  cg_root_free(root);
  /* Without it, the error. */
  cg_root_options o = {.slice = "x.slice",
                       .unit_prefix = "x-",
                       .driver = CG_DRIVER_SYSTEMD,
                       .systemd_dir = dir,
                       .bus_address = "unix:path=/nonexistent/cg-test-bus"};
  ca_error *err = NULL;
  root = NULL;
  cr_expect(cg_root_open(&o, &root, &err) < 0 && !root);
  cr_assert(err);
  cr_expect(strstr(err->msg, "/nonexistent/cg-test-bus") && !strchr(err->msg, '\n'), "%s", err->msg);
  ca_error_free(err);
  rmdir(dir);
}

/* Asked for by name where systemd is not PID 1: an error of one line, never a quiet fallback (auto falls back). */
Test(cgroup_driver, systemd_asked_for_without_systemd_is_an_error) {
  ca_error *err = NULL;
  cg_root *root = open_looking(CG_DRIVER_SYSTEMD, "/nonexistent/systemd/system", NULL, &err);
  cr_expect_null(root, "driver %s", root ? cg_driver_name(cg_root_driver(root)) : "");
  cr_assert(err);
  cr_expect(strstr(err->msg, "systemd is not PID 1") && !strchr(err->msg, '\n'), "%s", err->msg);
  ca_error_free(err);
  cg_root_free(root);
}

static const cg_unit_prop *find(const cg_unit_prop *p, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if (streq(p[i].name, name))
      return &p[i];
  return NULL;
}

Test(cgroup_driver, scope_properties_for_limits) {
  cg_unit_prop p[CG_SCOPE_PROPS_MAX];
  cg_limits l = {.memory_max = 100 << 20, .pids_max = 50, .cpus = 1.5};
  size_t n = cg_scope_properties("cleanup_agent.slice", "d", &l, 4242, p);
  cr_assert(n <= CG_SCOPE_PROPS_MAX);
  const cg_unit_prop *q;
  cr_expect((q = find(p, n, "Slice")) && q->type == 's' && streq(q->s, "cleanup_agent.slice"));
  cr_expect((q = find(p, n, "Delegate")) && q->type == 'b' && q->u == 1);
  cr_expect((q = find(p, n, "CollectMode")) && streq(q->s, "inactive-or-failed"));
  cr_expect((q = find(p, n, "MemoryMax")) && q->type == 't' && q->u == 100u << 20);
  cr_expect((q = find(p, n, "MemorySwapMax")) && q->type == 't' && q->u == 0);
  cr_expect((q = find(p, n, "TasksMax")) && q->type == 't' && q->u == 51, "50 and the scope's holder");
  cr_expect((q = find(p, n, "CPUQuotaPerSecUSec")) && q->type == 't' && q->u == 1500000);
  cr_expect((q = find(p, n, "PIDs")) && q->type == 'u' && q->u == 4242);
  cr_expect((q = find(p, n, "MemoryAccounting")) && q->u == 1, "the OOM report reads memory.events");
}

Test(cgroup_driver, scope_properties_without_limits) {
  cg_unit_prop p[CG_SCOPE_PROPS_MAX];
  cg_limits none = {0};
  size_t n = cg_scope_properties("s.slice", "d", &none, 1, p);
  cr_expect_null(find(p, n, "MemoryMax"));
  cr_expect_null(find(p, n, "MemorySwapMax"));
  cr_expect_null(find(p, n, "TasksMax"));
  cr_expect_null(find(p, n, "CPUQuotaPerSecUSec"));
  cr_expect(find(p, n, "Delegate") && find(p, n, "PIDs"));
  cg_limits tiny = {.cpus = 0.001};
  n = cg_scope_properties("s.slice", "d", &tiny, 1, p);
  const cg_unit_prop *q = find(p, n, "CPUQuotaPerSecUSec");
  cr_expect(q && q->u == 10000, "1%% at least, as cpu.max's 1 ms per 100 ms");
}

/* run --contain-containers: the session's slice holds the limits (and the holder's task), its scope none. */
Test(cgroup_driver, session_slice_properties) {
  cg_unit_prop p[CG_SCOPE_PROPS_MAX];
  cg_limits l = {.memory_max = 128 << 20, .pids_max = 50, .cpus = 0.5};
  size_t n = cg_slice_properties("d", &l, p);
  cr_assert(n <= CG_SCOPE_PROPS_MAX);
  const cg_unit_prop *q;
  cr_expect((q = find(p, n, "MemoryMax")) && q->u == 128u << 20);
  cr_expect((q = find(p, n, "MemorySwapMax")) && q->u == 0);
  cr_expect((q = find(p, n, "TasksMax")) && q->u == 51, "50 and the scope's holder, which is in the slice too");
  cr_expect((q = find(p, n, "CPUQuotaPerSecUSec")) && q->u == 500000);
  cr_expect((q = find(p, n, "MemoryAccounting")) && q->u == 1, "the OOM report reads the slice's memory.events");
  cr_expect(find(p, n, "TasksAccounting") && find(p, n, "CPUAccounting") && find(p, n, "CollectMode"));
  cr_expect_null(find(p, n, "Delegate"), "a slice is systemd's: the agent writes nothing in it");
  cr_expect_null(find(p, n, "PIDs"));
  cr_expect_null(find(p, n, "Slice"), "its parent follows from its name");
  n = cg_scope_properties("cleanup_agent-" ID ".slice", "d", NULL, 7, p);
  cr_expect_null(find(p, n, "MemoryMax"), "the scope in the session's slice has no limit of its own");
  cr_expect_null(find(p, n, "TasksMax"));
  cr_expect((q = find(p, n, "Slice")) && streq(q->s, "cleanup_agent-" ID ".slice"));
  cr_expect(find(p, n, "MemoryAccounting") && find(p, n, "Delegate"));
}

Test(cgroup_driver, session_slice_names) {
  char name[128];
  cr_expect(cg_session_slice_name("cleanup_agent.slice", ID, name, sizeof(name)) == 0);
  cr_expect_str_eq(name, "cleanup_agent-" ID ".slice", "a child of cleanup_agent.slice by the dash rule");
  cr_expect(cg_session_slice_name("a-b.slice", ID, name, sizeof(name)) == 0);
  cr_expect_str_eq(name, "a-b-" ID ".slice");
  cr_expect(cg_session_slice_name("-.slice", ID, name, sizeof(name)) == -EINVAL, "the root slice has no dash rule");
  cr_expect(cg_session_slice_name("cleanup-agent.scope", ID, name, sizeof(name)) == -EINVAL);
  cr_expect(cg_session_slice_name(".slice", ID, name, sizeof(name)) == -EINVAL);
  cr_expect(cg_session_slice_name(NULL, ID, name, sizeof(name)) == -EINVAL);
  cr_expect(cg_session_slice_name("cleanup_agent.slice", ID, name, 20) == -ENAMETOOLONG);
}

Test(cgroup_driver, leaf_names) {
  const char *id;
  cr_expect(cg_leaf_name_id("run-" ID, &id) && strncmp(id, ID, 32) == 0);
  cr_expect(cg_leaf_name_id("cleanup-agent-run-" ID ".scope", &id) && strncmp(id, ID, 32) == 0);
  cr_expect(cg_leaf_name_id("run-" ID ".scope", &id));
  cr_expect_not(cg_leaf_name_id("cleanup-agent-guardian-" ID ".scope", &id), "a helper's scope is no session");
  cr_expect_not(cg_leaf_name_id("xrun-" ID ".scope", &id));
  cr_expect_not(cg_leaf_name_id("run-" ID "0", &id));
  cr_expect_not(cg_leaf_name_id("run-0123456789ABCDEF0123456789abcdef", &id));
  cr_expect_not(cg_leaf_name_id("supervisor", &id));
}

/* A collector's root opened as a plain directory, faked by hand over a temp dir (cg_leaf_open only looks). */
static cg_root fake_collector_root(char *mount, char *path) {
  return (cg_root){.tracking = CG_TRACK_CGROUP,
                   .driver = CG_DRIVER_CGROUPFS,
                   .path = path,
                   .track_mount = mount,
                   .track_is_v2 = true};
}

/* run --contain-containers: a session's slice whose scope went (the agent or guardian killed between the scope's stop
 * and the slice's, or a slice's stop past its 10 s) is still the session's: a leaf of the slice, so that
 * cg_leaf_remove stops it and the collector keeps the session until it is gone. */
Test(cgroup_driver, a_session_slice_without_its_scope_opens_as_the_slice) {
  char mount[] = "/tmp/cg-slice-XXXXXX", root_dir[PATH_MAX / 2], slice[PATH_MAX];
  cr_assert(mkdtemp(mount));
  snprintf(root_dir, sizeof(root_dir), "%s/cleanup_agent.slice", mount);
  snprintf(slice, sizeof(slice), "%s/cleanup_agent-" ID ".slice", root_dir);
  cr_assert_eq(mkdir(root_dir, 0755), 0);
  cg_root root = fake_collector_root(mount, root_dir);
  cg_leaf *leaf = NULL;
  ca_error *err = NULL;
  cr_expect_eq(cg_leaf_open(&root, ID, &leaf, &err), -ENOENT, "no slice, no scope: nothing is left");
  cr_expect(err && err->code == ENOENT, "%s", err ? err->msg : "");
  ca_error_free(TAKE_PTR(err));
  cr_assert_eq(mkdir(slice, 0755), 0);
  cr_assert_eq(cg_leaf_open(&root, ID, &leaf, &err), 0, "%s", err ? err->msg : "");
  cr_expect_str_eq(cg_leaf_path(leaf), slice);
  cr_expect_null(cg_leaf_unit(leaf), "no scope");
  cg_leaf_free(leaf);
  rmdir(slice);
  rmdir(root_dir);
  rmdir(mount);
}

/* A collector (the guardian, gc) that opened a recorded root as a plain directory asks the manager that owns it: a
 * user manager's root goes through user@<uid>.service, whose manager has its own bus; root asking the system manager
 * about it would get NoSuchUnit and wait 10 s for the slice on every collection. */
Test(cgroup_driver, a_removal_asks_the_manager_that_owns_the_root) {
  char bus[PATH_MAX], private[PATH_MAX], path[128];
  cg_manager_addresses("/sys/fs/cgroup/cleanup_agent.slice", bus, private, sizeof(bus));
  cr_expect_str_eq(bus, "unix:path=/run/dbus/system_bus_socket");
  cr_expect_str_eq(private, "unix:path=/run/systemd/private");
  unsigned other = geteuid() == 4242 ? 4243 : 4242;
  snprintf(path, sizeof(path), "/sys/fs/cgroup/user.slice/user-%u.slice/user@%u.service/app.slice/x.slice", other,
           other);
  cg_manager_addresses(path, bus, private, sizeof(bus));
  char want[64];
  snprintf(want, sizeof(want), "unix:path=/run/user/%u/systemd/private", other);
  cr_expect_str_eq(private, want, "the private socket takes root as well as the user");
  snprintf(want, sizeof(want), "unix:path=/run/user/%u/bus", other);
  cr_expect_str_eq(bus, want);
  cg_manager_addresses("/sys/fs/cgroup/user.slice/user@12x.service/x.slice", bus, private, sizeof(bus));
  cr_expect_str_eq(bus, "unix:path=/run/dbus/system_bus_socket", "no uid: not a user manager's");
}

/* run --contain-containers: the slice of a session whose start failed after systemd was asked is stopped all the
 * same (before, the slice of a job wait that timed out was left running with nobody to stop it). */
Test(cgroup_driver, a_slice_whose_start_failed_is_stopped) {
  char log_path[] = "/tmp/cg-fake-systemd-XXXXXX";
  int lfd = mkstemp(log_path);
  cr_assert(lfd >= 0);
  close(lfd);
  sd_bus *bus = NULL;
  pid_t server = fake_systemd_start(log_path, &bus);
  char mount[] = "/sys/fs/cgroup", path[] = "/sys/fs/cgroup/cleanup_agent.slice";
  cg_root root = {.tracking = CG_TRACK_CGROUP,
                  .driver = CG_DRIVER_SYSTEMD,
                  .mode = CG_MODE_UNIFIED,
                  .bus = bus,
                  .slice = (char[]){"cleanup_agent.slice"},
                  .unit_prefix = (char[]){"cleanup-agent-test-"},
                  .session_slices = true,
                  .proc = (char[]){"/proc"},
                  .path = path,
                  .track_mount = mount,
                  .track_is_v2 = true};
  cg_leaf *leaf = NULL;
  ca_error *err = NULL;
  cr_expect_lt(cg_leaf_create(&root, ID, &(cg_limits){.pids_max = 50}, &leaf, &err), 0);
  cr_expect(err && strstr(err->msg, "timeout"), "%s", err ? err->msg : "");
  ca_error_free(err);
  sd_bus_flush_close_unref(bus);
  cr_expect(fake_systemd_wait(server), "the fake manager failed");
  _cleanup_free_ char *calls = NULL;
  cr_assert_eq(ca_read_file(log_path, 4096, &calls, NULL, NULL) >= 0, true);
  unlink(log_path);
  cr_expect(strstr(calls, "StartTransientUnit cleanup_agent-" ID ".slice\n"), "%s", calls);
  cr_expect(strstr(calls, "StopUnit cleanup_agent-" ID ".slice\n"), "the slice was not stopped; calls:\n%s", calls);
}
