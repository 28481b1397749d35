/* Unit tests of the cgroup module's parsers, fed literal kernel text (real samples and malformed ones). */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"

static const char hybrid_mountinfo[] =
    "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
    "25 24 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:4 - tmpfs tmpfs ro,mode=755\n"
    "26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:5 - cgroup2 cgroup2 rw,nsdelegate\n"
    "27 25 0:25 / /sys/fs/cgroup/systemd rw,nosuid shared:6 - cgroup cgroup rw,xattr,name=systemd\n"
    "30 25 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct\n"
    "31 25 0:29 / /sys/fs/cgroup/memory rw,nosuid shared:10 - cgroup cgroup rw,memory\n"
    "32 25 0:30 / /sys/fs/cgroup/pids rw,nosuid shared:11 - cgroup cgroup rw,pids\n"
    "33 25 0:31 / /sys/fs/cgroup/freezer rw,nosuid shared:12 - cgroup cgroup rw,freezer\n"
    "34 25 0:32 / /sys/fs/cgroup/cpuset rw,nosuid shared:13 - cgroup cgroup rw,cpuset,clone_children\n";

Test(parse_mountinfo, hybrid_host) {
  cg_mounts m;
  cr_assert(cg_parse_mountinfo(hybrid_mountinfo, &m, NULL) == 0);
  cr_expect_str_eq(m.unified, "/sys/fs/cgroup/unified");
  cr_expect_str_eq(m.v1_memory, "/sys/fs/cgroup/memory");
  cr_expect_str_eq(m.v1_pids, "/sys/fs/cgroup/pids");
  cr_expect_str_eq(m.v1_cpu, "/sys/fs/cgroup/cpu,cpuacct", "cpu must not match cpuset or cpuacct alone");
  cr_expect_eq(m.v1_count, 6);
  cg_mounts_done(&m);
}

Test(parse_mountinfo, unified_host_without_optional_fields_and_escaped_path) {
  const char text[] = "29 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup2 rw\n"
                      "40 29 0:26 / /mnt/my\\040cgroups rw shared:1 master:2 - cgroup2 none rw";
  cg_mounts m;
  cr_assert(cg_parse_mountinfo(text, &m, NULL) == 0);
  cr_expect_str_eq(m.unified, "/sys/fs/cgroup", "the first cgroup2 mount wins");
  cr_expect_null(m.v1_memory);
  cr_expect_eq(m.v1_count, 0);
  cg_mounts_done(&m);

  cr_assert(cg_parse_mountinfo("40 29 0:26 / /mnt/my\\040cgroups rw - cgroup2 none rw\n", &m, NULL) == 0);
  cr_expect_str_eq(m.unified, "/mnt/my cgroups");
  cg_mounts_done(&m);
}

Test(parse_mountinfo, no_cgroups_at_all) {
  cg_mounts m;
  cr_assert(cg_parse_mountinfo("22 1 0:21 / /proc rw - proc proc rw\n", &m, NULL) == 0);
  cr_expect_null(m.unified);
  cr_expect_eq(m.v1_count, 0);
  cg_mounts_done(&m);
  cr_assert(cg_parse_mountinfo("", &m, NULL) == 0);
  cg_mounts_done(&m);
}

Test(parse_mountinfo, malformed_lines_name_the_line) {
  cg_mounts m;
  ca_error *err = NULL;
  cr_expect_eq(cg_parse_mountinfo("22 1 0:21 / /proc rw - proc proc rw\n26 25 0:24 /\n", &m, &err), -EINVAL);
  cr_expect(err && strstr(err->msg, "line 2"), "%s", err ? err->msg : "");
  cr_expect_eq(cg_parse_mountinfo("26 25 0:24 / /sys/fs/cgroup rw shared:5 cgroup2 cgroup2 rw\n", &m, &err), -EINVAL);
  cr_expect(err && strstr(err->msg, "fstype"), "%s", err ? err->msg : "");
  cr_expect_eq(cg_parse_mountinfo("26 25 0:24 / /x rw -\n", &m, &err), -EINVAL);
  ca_error_free(err);
}

Test(parse_proc_stat, comm_with_spaces_and_parentheses) {
  const char text[] = "4242 (my (evil) cmd) S 1 4242 4200 0 -1 4194560 120 0 0 0 3 1 0 0 20 0 1 0 987654 "
                      "8192000 300 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0\n";
  cg_proc_stat st;
  cr_assert(cg_parse_proc_stat(text, &st, NULL) == 0);
  cr_expect_eq(st.pid, 4242);
  cr_expect_str_eq(st.comm, "my (evil) cmd");
  cr_expect_eq(st.state, 'S');
  cr_expect_eq(st.ppid, 1);
  cr_expect_eq(st.pgrp, 4242);
  cr_expect_eq(st.start_time, 987654);
}

Test(parse_proc_stat, long_comm_is_truncated_to_the_kernel_size) {
  cg_proc_stat st;
  cr_assert(cg_parse_proc_stat("7 (abcdefghijklmnopqrstuvwxyz) R 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 5", &st, NULL) ==
            0);
  cr_expect_eq(strlen(st.comm), 16);
  cr_expect_eq(st.start_time, 5);
}

Test(parse_proc_stat, malformed) {
  cg_proc_stat st;
  ca_error *err = NULL;
  cr_expect_eq(cg_parse_proc_stat("", &st, &err), -EINVAL);
  cr_expect_eq(cg_parse_proc_stat("12 sleep S 1 12 12", &st, &err), -EINVAL, "no parentheses");
  cr_expect_eq(cg_parse_proc_stat("12 (sleep) S 1 12 12 0 -1 0 0 0 0 0 0 0 0 0 20 0 1", &st, &err), -EINVAL);
  cr_expect(err && strstr(err->msg, "field 21"), "truncated before starttime: %s", err ? err->msg : "");
  cr_expect_eq(cg_parse_proc_stat("12 (sleep) S 1 12 12 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 12x", &st, &err), -EINVAL);
  cr_expect_eq(cg_parse_proc_stat("x (sleep) S 1 12 12 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 12", &st, &err), -EINVAL);
  cr_expect_eq(cg_parse_proc_stat("12 (sleep) SS 1 12 12 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 12", &st, &err), -EINVAL);
  cr_expect_eq(cg_parse_proc_stat("12 (sleep) S -1 12 12 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 12", &st, &err), -EINVAL);
  cr_expect_eq(
      cg_parse_proc_stat("12 (sleep) S 1 12 12 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 99999999999999999999999", &st, &err),
      -EINVAL, "overflowing starttime");
  ca_error_free(err);
}

Test(parse_proc_cgroup, hybrid_and_unified) {
  const char hybrid[] = "9:name=systemd:/\n8:pids:/ci/job\n4:memory:/process_api/e8eb\n1:cpu,cpuacct:/\n"
                        "3:cpuset:/\n0::/cleanup-agent.slice/run-x\n";
  cg_proc_cgroup c;
  cr_assert(cg_parse_proc_cgroup(hybrid, &c, NULL) == 0);
  cr_expect_str_eq(c.unified, "/cleanup-agent.slice/run-x");
  cr_expect_str_eq(c.v1_memory, "/process_api/e8eb");
  cr_expect_str_eq(c.v1_pids, "/ci/job");
  cr_expect_str_eq(c.v1_cpu, "/");
  cg_proc_cgroup_done(&c);

  cr_assert(cg_parse_proc_cgroup("0::/a:b/c\n", &c, NULL) == 0);
  cr_expect_str_eq(c.unified, "/a:b/c", "colons in the path belong to it");
  cr_expect_null(c.v1_memory);
  cg_proc_cgroup_done(&c);
}

Test(parse_proc_cgroup, malformed) {
  cg_proc_cgroup c;
  ca_error *err = NULL;
  cr_expect_eq(cg_parse_proc_cgroup("0::/ok\nnonsense\n", &c, &err), -EINVAL);
  cr_expect(err && strstr(err->msg, "line 2"), "%s", err ? err->msg : "");
  cr_expect_eq(cg_parse_proc_cgroup("x:memory:/\n", &c, &err), -EINVAL);
  cr_expect_eq(cg_parse_proc_cgroup("0::relative\n", &c, &err), -EINVAL);
  ca_error_free(err);
}

Test(parse_events, populated) {
  cg_events ev;
  cr_assert(cg_parse_events("populated 1\nfrozen 0\n", &ev, NULL) == 0);
  cr_expect(ev.populated);
  cr_assert(cg_parse_events("populated 0\n", &ev, NULL) == 0, "kernels before 5.2 have no frozen line");
  cr_expect(!ev.populated);
}

Test(parse_events, malformed) {
  cg_events ev;
  ca_error *err = NULL;
  cr_expect_eq(cg_parse_events("frozen 0\n", &ev, &err), -ENOENT);
  cr_expect(err && strstr(err->msg, "populated"), "%s", err ? err->msg : "");
  cr_expect_eq(cg_parse_events("populated yes\n", &ev, &err), -EINVAL);
  cr_expect_eq(cg_parse_events("populated 2\n", &ev, &err), -EINVAL);
  cr_expect_eq(cg_parse_events("populated 1\npopulated 0\n", &ev, &err), -EINVAL);
  cr_expect_eq(cg_parse_events("populated\n", &ev, &err), -EINVAL);
  cr_expect_eq(cg_parse_events("", &ev, &err), -ENOENT);
  ca_error_free(err);
}

Test(parse_memory_events, v2_events_and_v1_oom_control) {
  cg_memory_events m;
  cr_assert(cg_parse_memory_events("low 0\nhigh 0\nmax 57\noom 2\noom_kill 1\noom_group_kill 0\n", &m, NULL) == 0);
  cr_expect_eq(m.oom_kill, 1);
  cr_assert(cg_parse_memory_events("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n", &m, NULL) == 0);
  cr_expect_eq(m.oom_kill, 3);
}

Test(parse_memory_events, malformed) {
  cg_memory_events m;
  ca_error *err = NULL;
  cr_expect_eq(cg_parse_memory_events("low 0\nhigh 0\n", &m, &err), -ENOENT, "no oom_kill");
  cr_expect(err && strstr(err->msg, "oom_kill"), "%s", err ? err->msg : "");
  cr_expect_eq(cg_parse_memory_events("oom_kill -1\n", &m, &err), -EINVAL);
  cr_expect_eq(cg_parse_memory_events("oom_kill 1\nmax 18446744073709551616\n", &m, &err), -EINVAL, "overflow");
  ca_error_free(err);
}

Test(parse_cpu_stat, v2_and_v1) {
  cg_cpu_stat c;
  cr_assert(cg_parse_cpu_stat("usage_usec 123456\nuser_usec 100000\nsystem_usec 23456\nnr_periods 50\n"
                              "nr_throttled 7\nthrottled_usec 8000\nnr_bursts 0\nburst_usec 0\n",
                              &c, NULL) == 0);
  cr_expect_eq(c.usage_usec, 123456);
  cr_expect_eq(c.nr_throttled, 7);
  cr_expect_eq(c.throttled_usec, 8000);
  cr_assert(cg_parse_cpu_stat("usage_usec 5\nuser_usec 3\nsystem_usec 2\n", &c, NULL) == 0,
            "without the cpu controller only the usage lines exist");
  cr_expect_eq(c.usage_usec, 5);
  cr_expect_eq(c.nr_throttled, 0);
  cr_assert(cg_parse_cpu_stat("nr_periods 10\nnr_throttled 4\nthrottled_time 2500000\n", &c, NULL) == 0);
  cr_expect_eq(c.nr_throttled, 4);
  cr_expect_eq(c.throttled_usec, 2500, "v1 throttled_time is in nanoseconds");
  cr_expect_eq(c.usage_usec, 0);
}

Test(parse_cpu_stat, malformed) {
  cg_cpu_stat c;
  ca_error *err = NULL;
  cr_expect_eq(cg_parse_cpu_stat("user_usec 3\n", &c, &err), -ENOENT);
  cr_expect_eq(cg_parse_cpu_stat("usage_usec 1.5\n", &c, &err), -EINVAL);
  cr_expect_eq(cg_parse_cpu_stat("usage_usec 1\nnr_throttled x\n", &c, &err), -EINVAL);
  cr_expect(err && strstr(err->msg, "line 2"), "%s", err ? err->msg : "");
  ca_error_free(err);
}

Test(parse_keyed, pids_events) {
  uint64_t v;
  cr_assert(cg_parse_keyed("max 12\n", "max", &v, NULL) == 0);
  cr_expect_eq(v, 12);
  cr_expect_eq(cg_parse_keyed("max 12", "ma", &v, NULL), -ENOENT, "keys match whole words");
  cr_expect_eq(cg_parse_keyed(" 12\n", "max", &v, NULL), -EINVAL);
}

Test(session_id, validation) {
  cr_expect(ca_session_id_valid("0123456789abcdef0123456789abcdef"));
  cr_expect(!ca_session_id_valid("0123456789abcdef0123456789abcde"));
  cr_expect(!ca_session_id_valid("0123456789abcdef0123456789abcdef0"));
  cr_expect(!ca_session_id_valid("0123456789ABCDEF0123456789abcdef"));
  cr_expect(!ca_session_id_valid("../../../../../../../../../../.."));
  cr_expect(!ca_session_id_valid(""));
  cr_expect(!ca_session_id_valid(NULL));
}

/* The one reader of /proc/<pid>/stat, against a live child and then against a procfs of our own making. */
Test(proc_read_stat, live_process_then_gone) {
  pid_t child = fork();
  cr_assert_geq(child, 0);
  if (child == 0) {
    pause();
    _exit(0);
  }
  cg_proc_stat st, self;
  cr_assert_eq(cg_proc_read_stat(NULL, child, &st, NULL), 0);
  cr_assert_eq(cg_proc_read_stat("/proc", getpid(), &self, NULL), 0);
  cr_assert_eq(st.pid, child);
  cr_assert_eq(st.ppid, getpid());
  cr_assert_geq(st.start_time, self.start_time, "a child cannot start before its parent");
  uint64_t start = 0;
  cr_assert_eq(cg_proc_start_time(NULL, child, &start, NULL), 0);
  cr_assert_eq(start, st.start_time);
  kill(child, SIGKILL);
  cr_assert_eq(waitpid(child, NULL, 0), child);
  ca_error *err = NULL;
  cr_assert_eq(cg_proc_start_time(NULL, child, &start, &err), -ESRCH);
  cr_assert_not_null(strstr(err->msg, "is gone"), "%s", err->msg);
  ca_error_free(err);
}

Test(proc_read_stat, reads_the_given_procfs_and_reports_garbage) {
  static const char good[] = "42 (a) b) S 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0 0\n",
                    bad[] = "42 (a) S 1\n";
  char proc[] = "/tmp/cg-proc-XXXXXX", pid_dir[64], stat[80];
  cr_assert_not_null(mkdtemp(proc));
  snprintf(pid_dir, sizeof(pid_dir), "%s/42", proc);
  snprintf(stat, sizeof(stat), "%s/stat", pid_dir);
  cr_assert_eq(mkdir(pid_dir, 0700), 0);
  cr_assert_eq(ca_write_file_atomic(stat, good, strlen(good), 0600, NULL), 0);
  cg_proc_stat st;
  cr_assert_eq(cg_proc_read_stat(proc, 42, &st, NULL), 0);
  cr_assert_str_eq(st.comm, "a) b");
  cr_assert_eq(st.start_time, 777);
  cr_assert_eq(ca_write_file_atomic(stat, bad, strlen(bad), 0600, NULL), 0);
  ca_error *err = NULL;
  cr_assert_eq(cg_proc_read_stat(proc, 42, &st, &err), -EINVAL);
  cr_assert_not_null(strstr(err->msg, stat), "the message names the file: %s", err->msg);
  ca_error_free(err);
  cr_assert(unlink(stat) == 0 && rmdir(pid_dir) == 0 && rmdir(proc) == 0);
}
