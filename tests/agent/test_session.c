/* Sessions: ids, the state directory's safety checks, the lease lock and the registry (a file from outside). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "nesting.h"
#include "session.h"

static char tmp[64];

static void setup(void) {
  strcpy(tmp, "/tmp/ag-session-XXXXXX");
  cr_assert_not_null(mkdtemp(tmp));
}

static void teardown(void) {
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(session, .init = setup, .fini = teardown);

Test(session, id_validation) {
  cr_assert(ca_session_id_valid("0123456789abcdef0123456789abcdef"));
  const char *bad[] = {"",
                       "0123456789abcdef0123456789abcde",
                       "0123456789abcdef0123456789abcdef0",
                       "0123456789ABCDEF0123456789abcdef",
                       "../../../../../../../../etc/passw",
                       "0123456789abcdef0123456789abcdeg",
                       "0123456789abcdef 123456789abcdef"};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++)
    cr_assert_not(ca_session_id_valid(bad[i]), "'%s' accepted", bad[i]);
  cr_assert_not(ca_session_id_valid(NULL));
}

Test(session, new_ids_are_valid_and_distinct) {
  char a[33], b[33];
  cr_assert_eq(ag_session_id_new(a, NULL), 0);
  cr_assert_eq(ag_session_id_new(b, NULL), 0);
  cr_assert(ca_session_id_valid(a), "%s", a);
  cr_assert(ca_session_id_valid(b), "%s", b);
  cr_assert_str_neq(a, b);
}

Test(session, owner_self_matches_proc) {
  struct ag_owner o;
  cr_assert_eq(ag_owner_self(&o, NULL), 0);
  cr_assert_eq(o.pid, getpid());
  cr_assert_eq(strlen(o.boot_id), 36, "boot id '%s'", o.boot_id);
  uint64_t start;
  cr_assert_eq(cg_proc_start_time(NULL, getppid(), &start, NULL), 0);
  cr_assert_leq(start, o.start, "a parent cannot start after its child");
  ca_error *err = NULL;
  cr_assert_eq(cg_proc_start_time(NULL, INT_MAX, &start, &err), -ESRCH);
  ca_error_free(err);
}

Test(session, state_dir_created_private_and_checked) {
  char dir[128];
  snprintf(dir, sizeof(dir), "%s/state", tmp);
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open(dir, &s, NULL), 0);
  struct stat st;
  cr_assert_eq(stat(dir, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0700);
  cr_assert_eq(stat(s->sessions, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0700);
  ag_state_free(s);

  /* Open to others: refused with the chmod that fixes it. */
  cr_assert_eq(chmod(dir, 0755), 0);
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ag_state_open(dir, &s, &err), -EPERM);
  cr_assert_not_null(strstr(err->msg, "chmod 700"), "%s", err->msg);

  /* A symlink planted where the state dir should be: refused. */
  char link[128];
  snprintf(link, sizeof(link), "%s/link", tmp);
  cr_assert_eq(symlink(dir, link), 0);
  cr_assert_eq(ag_state_open(link, &s, &err), -ELOOP);
  cr_assert_not_null(strstr(err->msg, "symbolic link"), "%s", err->msg);
}

Test(session, lock_is_exclusive_and_released_on_close) {
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open(tmp, &s, NULL), 0);
  char id[33];
  cr_assert_eq(ag_session_id_new(id, NULL), 0);
  int fd1 = -1, fd2 = -1;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ag_session_lock(s, id, false, &fd1, &err), -ENOENT);
  cr_assert_eq(ag_session_lock(s, id, true, &fd1, NULL), 0);
  cr_assert_eq(fcntl(fd1, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC, "lock fd must not leak into the command");
  /* A second open file (what another agent would have) cannot take it while the first holds it. */
  cr_assert_eq(ag_session_lock(s, id, false, &fd2, &err), -EWOULDBLOCK);
  cr_assert_not_null(strstr(err->msg, "alive"));
  close(fd1);
  cr_assert_eq(ag_session_lock(s, id, false, &fd2, NULL), 0, "lock free once its holder is gone");
  close(fd2);
  cr_assert_eq(ag_session_lock(s, "../../etc/x", true, &fd2, NULL), -EINVAL);
  ag_state_free(s);
}

/* The entries of the sessions dir whose name starts with prefix ("": all of them, hidden ones too). */
static int count_prefixed(const struct ag_state *s, const char *prefix) {
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "ls -A '%s' | grep -c '^%s'", s->sessions, prefix);
  FILE *p = popen(cmd, "r");
  int n = -1;
  cr_assert_eq(fscanf(p, "%d", &n), 1);
  pclose(p);
  return n;
}

Test(session, a_new_lock_has_no_name_until_published) {
  /* An agent SIGKILLed after creating its lock but before its guardian holds it has nobody to collect what it left
   * (tests/chaos: 1 of 50 kills at 222 ms left a .<id>.lock.<pid>): until then, there must be nothing. */
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open(tmp, &s, NULL), 0);
  char id[33];
  cr_assert_eq(ag_session_id_new(id, NULL), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int fd = -1;
    if (ag_session_lock_new(s, id, &fd, NULL) < 0)
      _exit(1);
    raise(SIGKILL);
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFSIGNALED(st), "the creator failed (exit %d)", WEXITSTATUS(st));
  cr_assert_eq(count_prefixed(s, ""), 0, "a killed creator left a file in %s", s->sessions);
  /* Published, it is the session's lock, held by its creator. */
  int fd = -1, other = -1;
  cr_assert_eq(ag_session_lock_new(s, id, &fd, NULL), 0);
  cr_assert_eq(ag_session_lock_publish(s, fd, id, NULL), 0);
  cr_assert_eq(count_prefixed(s, ""), 1);
  cr_assert_eq(ag_session_lock(s, id, false, &other, NULL), -EWOULDBLOCK);
  close(fd);
  cr_assert_eq(ag_session_lock(s, id, false, &other, NULL), 0);
  close(other);
  ag_state_free(s);
}

static struct ag_registry sample(void) {
  static char make[] = "make", test[] = "test", arg[] = "ARG=a \"quoted\" \xc3\xa9";
  static char root[] = "/sys/fs/cgroup/unified/cleanup-agent.slice", host[] = "unix:///var/run/docker.sock";
  static char *cmd[] = {make, test, arg, NULL};
  struct ag_registry r = {.created = 1764000000, .expires = 1764003600, .guardian_pid = 4242};
  strcpy(r.id, "0123456789abcdef0123456789abcdef");
  strcpy(r.mode, "run");
  strcpy(r.owner.host, "ci-runner-7");
  strcpy(r.owner.boot_id, "2b1e6f0c-1111-2222-3333-444455556666");
  r.owner.pid = 1234;
  r.owner.start = 987654321;
  r.cgroup_root = root;
  r.docker_host = host;
  r.command = cmd;
  return r;
}

Test(session, registry_round_trip_through_the_file) {
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open(tmp, &s, NULL), 0);
  struct ag_registry in = sample(), out;
  cr_assert_eq(ag_registry_write(s, &in, NULL), 0);
  char path[256];
  snprintf(path, sizeof(path), "%s/%s.json", s->sessions, in.id);
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600);
  cr_assert_eq(ag_registry_load(s, in.id, &out, NULL), 0);
  cr_assert_str_eq(out.id, in.id);
  cr_assert_str_eq(out.mode, "run");
  cr_assert_str_eq(out.owner.host, in.owner.host);
  cr_assert_str_eq(out.owner.boot_id, in.owner.boot_id);
  cr_assert_eq(out.owner.pid, 1234);
  cr_assert_eq(out.owner.start, 987654321);
  cr_assert_eq(out.created, in.created);
  cr_assert_eq(out.expires, in.expires);
  cr_assert_eq(out.guardian_pid, 4242);
  cr_assert_str_eq(out.cgroup_root, in.cgroup_root);
  cr_assert_str_eq(out.docker_host, in.docker_host);
  cr_assert_str_eq(out.command[2], in.command[2]);
  cr_assert_null(out.command[3]);
  ag_registry_done(&out);

  char **ids = NULL;
  cr_assert_eq(ag_state_list_sessions(s, &ids, NULL), 0);
  cr_assert_str_eq(ids[0], in.id);
  cr_assert_null(ids[1]);
  ca_strv_free(ids);
  cr_assert_eq(ag_registry_remove(s, in.id, NULL), 0);
  cr_assert_eq(access(path, F_OK), -1);
  ag_state_free(s);
}

/* A command line of any length the kernel takes still gives a registry every reader loads: the command is recorded
 * up to a bound, and says what it left out. Here 40,000 arguments of 8 control characters (48 bytes each as JSON) and
 * 70,000 empty ones (4 bytes each). */
Test(session, a_huge_command_line_gives_a_registry_that_loads) {
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open(tmp, &s, NULL), 0);
  const struct {
    size_t n;
    const char *arg;
  } cases[] = {{40000, "\x01\x02\x03\x04\x05\x06\x07\x08"}, {70000, ""}};
  for (size_t c = 0; c < ELEMENTSOF(cases); c++) {
    char **cmd = calloc(cases[c].n + 2, sizeof(char *));
    cmd[0] = strdup("sleep");
    for (size_t i = 1; i <= cases[c].n; i++)
      cmd[i] = strdup(cases[c].arg);
    struct ag_registry in = sample(), out;
    in.command = cmd;
    cr_assert_eq(ag_registry_write(s, &in, NULL), 0);
    _cleanup_error_ ca_error *err = NULL;
    cr_assert_eq(ag_registry_load(s, in.id, &out, &err), 0, "case %zu: %s", c, err ? err->msg : "");
    cr_assert_str_eq(out.mode, "run");
    cr_assert_str_eq(out.command[0], "sleep");
    size_t n = 0;
    while (out.command[n])
      n++;
    cr_assert_lt(n, cases[c].n + 1, "case %zu: the whole command was recorded", c);
    cr_assert_not_null(strstr(out.command[n - 1], "more arguments"), "%s", out.command[n - 1]);
    ag_registry_done(&out);
    ca_strv_free(cmd);
  }
  ag_state_free(s);
}

/* Every whole number the parser accepts comes back from the file as it was written (cJSON's own number printing drops
 * the last digit from about 2^52 up). */
Test(session, registry_round_trip_keeps_the_largest_numbers_exact) {
  const int64_t values[] = {(INT64_C(1) << 53), (INT64_C(1) << 53) - 1, INT64_C(6433333333333331), INT64_C(1) << 50};
  for (size_t i = 0; i < ELEMENTSOF(values); i++) {
    struct ag_registry in = sample(), out;
    in.owner.start = (uint64_t)values[i];
    in.created = values[i];
    in.expires = values[i] - 1;
    _cleanup_free_ char *text = ag_registry_format(&in);
    cr_assert_not_null(text);
    cr_assert_eq(ag_registry_parse(text, strlen(text), &out, NULL), 0, "%s", text);
    cr_assert_eq(out.owner.start, in.owner.start, "%s", text);
    cr_assert_eq(out.created, in.created, "%s", text);
    cr_assert_eq(out.expires, in.expires, "%s", text);
    cr_assert_eq(out.guardian_pid, in.guardian_pid);
    ag_registry_done(&out);
  }
}

Test(session, registry_parse_rejects_malformed_and_oddly_typed) {
  const char *bad[] = {
      "",
      "not json",
      "[]",
      "{\"session\":\"0123456789abcdef0123456789abcdef\"",
      "{}",
      /* id not an id */
      "{\"session\":\"../../x\",\"mode\":\"run\",\"host\":\"h\",\"boot_id\":\"b\",\"owner_pid\":1,\"owner_start\":1,"
      "\"created\":1,\"expires\":0,\"guardian_pid\":0}",
      /* pid as a string */
      "{\"session\":\"0123456789abcdef0123456789abcdef\",\"mode\":\"run\",\"host\":\"h\",\"boot_id\":\"b\","
      "\"owner_pid\":\"1\",\"owner_start\":1,\"created\":1,\"expires\":0,\"guardian_pid\":0}",
      /* negative pid, fractional start */
      "{\"session\":\"0123456789abcdef0123456789abcdef\",\"mode\":\"run\",\"host\":\"h\",\"boot_id\":\"b\","
      "\"owner_pid\":-5,\"owner_start\":1,\"created\":1,\"expires\":0,\"guardian_pid\":0}",
      "{\"session\":\"0123456789abcdef0123456789abcdef\",\"mode\":\"run\",\"host\":\"h\",\"boot_id\":\"b\","
      "\"owner_pid\":5,\"owner_start\":1.5,\"created\":1,\"expires\":0,\"guardian_pid\":0}",
      /* huge number, over-long mode, command not strings */
      "{\"session\":\"0123456789abcdef0123456789abcdef\",\"mode\":\"run\",\"host\":\"h\",\"boot_id\":\"b\","
      "\"owner_pid\":5,\"owner_start\":1e300,\"created\":1,\"expires\":0,\"guardian_pid\":0}",
      "{\"session\":\"0123456789abcdef0123456789abcdef\",\"mode\":\"runrunrunrunrunrunrun\",\"host\":\"h\","
      "\"boot_id\":\"b\",\"owner_pid\":5,\"owner_start\":1,\"created\":1,\"expires\":0,\"guardian_pid\":0}",
      "{\"session\":\"0123456789abcdef0123456789abcdef\",\"mode\":\"run\",\"host\":\"h\",\"boot_id\":\"b\","
      "\"owner_pid\":5,\"owner_start\":1,\"created\":1,\"expires\":0,\"guardian_pid\":0,\"command\":[1,2]}",
  };
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    struct ag_registry r;
    _cleanup_error_ ca_error *err = NULL;
    cr_assert_lt(ag_registry_parse(bad[i], strlen(bad[i]), &r, &err), 0, "accepted: %s", bad[i]);
    cr_assert_not_null(err);
  }
}

Test(session, corrupt_registry_is_moved_aside_not_lost) {
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open(tmp, &s, NULL), 0);
  const char *id = "0123456789abcdef0123456789abcdef";
  char path[256];
  snprintf(path, sizeof(path), "%s/%s.json", s->sessions, id);
  FILE *f = fopen(path, "w");
  fputs("{\"session\":\"0123456789abc", f); /* truncated by a crash or a full disk */
  fclose(f);
  struct ag_registry r;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ag_registry_load(s, id, &r, &err), -EINVAL);
  cr_assert_not_null(strstr(err->msg, "moved aside"), "%s", err->msg);
  cr_assert_eq(access(path, F_OK), -1, "the corrupt file no longer trips the next start");
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "test \"$(cat %s/%s.json.corrupt-*)\" = '{\"session\":\"0123456789abc'", s->sessions, id);
  cr_assert_eq(system(cmd), 0, "the corrupt contents are kept");
  ag_state_free(s);
}

Test(session, registry_symlink_is_refused_and_moved_aside) {
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open(tmp, &s, NULL), 0);
  const char *id = "fedcba9876543210fedcba9876543210";
  char path[256];
  snprintf(path, sizeof(path), "%s/%s.json", s->sessions, id);
  cr_assert_eq(symlink("/etc/passwd", path), 0);
  struct ag_registry r;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_lt(ag_registry_load(s, id, &r, &err), 0);
  cr_assert_not_null(strstr(err->msg, "symbolic link"), "%s", err->msg);
  cr_assert_eq(access("/etc/passwd", R_OK), 0, "the target is untouched");
  ag_state_free(s);
}

Test(session, listing_ignores_names_that_are_not_ids) {
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open(tmp, &s, NULL), 0);
  const char *names[] = {"junk.json", "0123456789abcdef0123456789abcdef.lock", "0123456789ABCDEF0123456789abcdef.json",
                         "0123456789abcdef0123456789abcdef.json.corrupt-1", "x.lock"};
  for (size_t i = 0; i < ELEMENTSOF(names); i++) {
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", s->sessions, names[i]);
    close(open(p, O_CREAT | O_WRONLY, 0600));
  }
  char **ids = NULL;
  cr_assert_eq(ag_state_list_sessions(s, &ids, NULL), 0);
  cr_assert_str_eq(ids[0], "0123456789abcdef0123456789abcdef");
  cr_assert_null(ids[1]);
  ca_strv_free(ids);
  ag_state_free(s);
}

Test(session, labels_of_a_session) {
  struct ag_registry reg = {.id = "0123456789abcdef0123456789abcdef",
                            .mode = "run",
                            .created = 1700000000,
                            .expires = 1700003600,
                            .owner = {.host = "h", .boot_id = "b", .pid = 42, .start = 7}};
  const char *extra[] = {"team=ci", NULL};
  char **l = ag_session_labels(&reg, extra);
  cr_assert_not_null(l);
  const char *want[] = {AG_LABEL_SESSION "=0123456789abcdef0123456789abcdef",
                        AG_LABEL_MANAGED "=true",
                        AG_LABEL_HOST "=h",
                        AG_LABEL_BOOT_ID "=b",
                        AG_LABEL_OWNER_PID "=42",
                        AG_LABEL_OWNER_START "=7",
                        AG_LABEL_CREATED "=1700000000",
                        AG_LABEL_MODE "=run",
                        AG_LABEL_EXPIRES "=1700003600",
                        "team=ci",
                        NULL};
  for (size_t i = 0; want[i]; i++)
    cr_assert_str_eq(l[i], want[i]);
  cr_assert_null(l[ELEMENTSOF(want) - 1]);
  ca_strv_free(l);
  reg.expires = 0; /* without a TTL there is no expires label */
  l = ag_session_labels(&reg, NULL);
  cr_assert_str_eq(l[7], AG_LABEL_MODE "=run");
  cr_assert_null(l[8]);
  ca_strv_free(l);
}

Test(session, temp_files_of_a_killed_write_are_listed_and_removed_with_their_session) {
  /* An agent SIGKILLed inside ca_write_file_atomic or lock_create leaves <id>.json.tmp.<pid> or .<id>.lock.<pid>:
   * they name a session the collection must find, and go when it does. Another session's files stay. */
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open(tmp, &s, NULL), 0);
  const char *id = "0123456789abcdef0123456789abcdef", *other = "fedcba9876543210fedcba9876543210";
  const char *names[] = {"0123456789abcdef0123456789abcdef.json.tmp.4242",
                         ".0123456789abcdef0123456789abcdef.lock.4243",
                         "fedcba9876543210fedcba9876543210.json.tmp.4244", ".fedcba9876543210fedcba9876543210.lock.1"};
  for (size_t i = 0; i < ELEMENTSOF(names); i++) {
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", s->sessions, names[i]);
    close(open(p, O_CREAT | O_WRONLY, 0600));
  }
  char **ids = NULL;
  cr_assert_eq(ag_state_list_sessions(s, &ids, NULL), 0);
  cr_assert(ids[0] && ids[1] && !ids[2], "the temp files name two sessions");
  cr_assert((streq(ids[0], id) && streq(ids[1], other)) || (streq(ids[0], other) && streq(ids[1], id)));
  ca_strv_free(ids);
  cr_assert_eq(ag_registry_remove(s, id, NULL), 0);
  for (size_t i = 0; i < ELEMENTSOF(names); i++) {
    char p[256];
    snprintf(p, sizeof(p), "%s/%s", s->sessions, names[i]);
    cr_assert_eq(access(p, F_OK) == 0, i >= 2, "%s %s", names[i], i >= 2 ? "was removed" : "is left");
  }
  ag_state_free(s);
}

Test(session, a_corrupt_registry_moved_aside_keeps_its_session_listed) {
  /* ps may be the first to read it: once moved aside, the lock file keeps the session known to collection. */
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open(tmp, &s, NULL), 0);
  const char *id = "0123456789abcdef0123456789abcdef";
  char p[256];
  snprintf(p, sizeof(p), "%s/%s.json", s->sessions, id);
  FILE *f = fopen(p, "w");
  fputs("{\"session\": \"0123", f);
  fclose(f);
  struct ag_registry r;
  cr_assert_lt(ag_registry_load(s, id, &r, NULL), 0);
  char **ids = NULL;
  cr_assert_eq(ag_state_list_sessions(s, &ids, NULL), 0);
  cr_assert(ids[0] && streq(ids[0], id) && !ids[1], "the session is no longer listed");
  ca_strv_free(ids);
  ag_state_free(s);
}

Test(session, a_temp_lock_names_a_session_only_once_its_creator_is_gone) {
  /* Taking the lock of a session whose agent is creating it would stop that agent from starting. */
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open(tmp, &s, NULL), 0);
  char p[256];
  snprintf(p, sizeof(p), "%s/.aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.lock.%d", s->sessions, (int)getpid());
  close(open(p, O_CREAT | O_WRONLY, 0600));
  snprintf(p, sizeof(p), "%s/.bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.lock.2147483646", s->sessions); /* above pid_max */
  close(open(p, O_CREAT | O_WRONLY, 0600));
  char **ids = NULL;
  cr_assert_eq(ag_state_list_sessions(s, &ids, NULL), 0);
  cr_assert(ids[0] && streq(ids[0], "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb") && !ids[1], "%s", ids[0] ? ids[0] : "none");
  ca_strv_free(ids);
  ag_state_free(s);
}

/* The machine (/etc/machine-id) and the PID namespace are the agent's identity for gc's owner rules (issue 19). */
Test(session, owner_self_names_this_machine_and_pid_namespace) {
  struct ag_owner o;
  cr_assert_eq(ag_owner_self(&o, NULL), 0);
  struct stat ns;
  cr_assert_eq(stat("/proc/self/ns/pid", &ns), 0);
  cr_assert_eq(o.pidns, (uint64_t)ns.st_ino);
  char *id = NULL;
  size_t len;
  if (ca_read_file("/etc/machine-id", 64, &id, &len, NULL) == 0) {
    id[strcspn(id, "\n")] = '\0';
    cr_assert_str_eq(o.machine, id);
    free(id);
  } else {
    cr_assert_str_eq(o.machine, "");
  }
}

Test(session, registry_and_labels_carry_machine_and_pidns_and_older_registries_still_parse) {
  struct ag_registry in = sample(), out;
  strcpy(in.owner.machine, "3d1219c7c4c5404aaa1f6d2a48adfda4");
  in.owner.pidns = 4026531836;
  _cleanup_free_ char *text = ag_registry_format(&in);
  cr_assert_eq(ag_registry_parse(text, strlen(text), &out, NULL), 0, "%s", text);
  cr_assert_str_eq(out.owner.machine, in.owner.machine);
  cr_assert_eq(out.owner.pidns, in.owner.pidns);
  ag_registry_done(&out);
  char **labels = ag_session_labels(&in, NULL);
  bool machine = false, pidns = false;
  for (char **l = labels; *l; l++) {
    machine |= streq(*l, "io.cleanup-agent.machine=3d1219c7c4c5404aaa1f6d2a48adfda4");
    pidns |= streq(*l, "io.cleanup-agent.pidns=4026531836");
  }
  ca_strv_free(labels);
  cr_assert(machine && pidns, "the machine and pidns labels are missing");

  struct ag_registry old = sample(); /* written before machine and pidns existed, or without a machine id */
  _cleanup_free_ char *old_text = ag_registry_format(&old);
  cr_assert_null(strstr(old_text, "machine"));
  cr_assert_eq(ag_registry_parse(old_text, strlen(old_text), &out, NULL), 0, "%s", old_text);
  cr_assert_str_eq(out.owner.machine, "");
  cr_assert_eq(out.owner.pidns, 0);
  ag_registry_done(&out);
  labels = ag_session_labels(&old, NULL);
  for (char **l = labels; *l; l++)
    cr_assert(!strstr(*l, ".machine=") && !strstr(*l, ".pidns="), "label %s without an identity", *l);
  ca_strv_free(labels);

  const char *head =
      "{\"session\":\"0123456789abcdef0123456789abcdef\",\"mode\":\"run\",\"host\":\"h\",\"boot_id\":\"b\","
      "\"owner_pid\":5,\"owner_start\":1,\"created\":1,\"expires\":0,\"guardian_pid\":0,";
  const char *bad[] = {"\"machine\":\"\"}",
                       "\"machine\":\"3D1219C7C4C5404AAA1F6D2A48ADFDA4\"}",
                       "\"machine\":\"../../3d1219c7c4c5404aaa1f6d2a48adfd\"}",
                       "\"machine\":42}",
                       "\"machine\":\"3d1219c7c4c5404aaa1f6d2a48adfda4aa\"}",
                       "\"pidns\":0}",
                       "\"pidns\":\"4026531836\"}",
                       "\"pidns\":-1}",
                       "\"pidns\":1.5}"};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    char json[512];
    snprintf(json, sizeof(json), "%s%s", head, bad[i]);
    _cleanup_error_ ca_error *err = NULL;
    cr_assert_lt(ag_registry_parse(json, strlen(json), &out, &err), 0, "accepted: %s", json);
  }
}

/* Without a cgroup (issue 19): the command's process group and start times, for a collector without the agent;
 * optional (a cgroup session, an older registry), all four or none, each of the form the agent writes. */
Test(session, registry_records_the_process_group_of_a_session_without_a_cgroup) {
  struct ag_registry in = sample(), out;
  in.main_pid = in.pgrp = 31337;
  in.main_start = in.pgrp_start = (UINT64_C(1) << 53) - 1;
  _cleanup_free_ char *text = ag_registry_format(&in);
  cr_assert_eq(ag_registry_parse(text, strlen(text), &out, NULL), 0, "%s", text);
  cr_assert_eq(out.main_pid, 31337);
  cr_assert_eq(out.pgrp, 31337);
  cr_assert_eq(out.main_start, in.main_start);
  cr_assert_eq(out.pgrp_start, in.pgrp_start);
  ag_registry_done(&out);

  struct ag_registry none = sample();
  _cleanup_free_ char *none_text = ag_registry_format(&none);
  cr_assert_null(strstr(none_text, "pgrp"), "a cgroup session records no group: %s", none_text);
  cr_assert_eq(ag_registry_parse(none_text, strlen(none_text), &out, NULL), 0, "%s", none_text);
  cr_assert(out.main_pid == 0 && out.pgrp == 0 && out.main_start == 0 && out.pgrp_start == 0);
  ag_registry_done(&out);

  const char *head =
      "{\"version\":1,\"session\":\"0123456789abcdef0123456789abcdef\",\"mode\":\"run\",\"host\":\"h\","
      "\"boot_id\":\"b\",\"owner_pid\":5,\"owner_start\":1,\"created\":1,\"expires\":0,\"guardian_pid\":0,";
  const char *bad[] = {"\"main_pid\":7,\"main_start\":1}",
                       "\"pgrp\":7,\"pgrp_start\":1}",
                       "\"main_pid\":0,\"main_start\":1,\"pgrp\":7,\"pgrp_start\":1}",
                       "\"main_pid\":7,\"main_start\":-1,\"pgrp\":7,\"pgrp_start\":1}",
                       "\"main_pid\":7,\"main_start\":1,\"pgrp\":\"7\",\"pgrp_start\":1}",
                       "\"main_pid\":7,\"main_start\":1,\"pgrp\":7,\"pgrp_start\":1.5}",
                       "\"main_pid\":2147483648,\"main_start\":1,\"pgrp\":7,\"pgrp_start\":1}"};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    char json[512];
    snprintf(json, sizeof(json), "%s%s", head, bad[i]);
    _cleanup_error_ ca_error *err = NULL;
    cr_assert_lt(ag_registry_parse(json, strlen(json), &out, &err), 0, "accepted: %s", json);
  }
}

/* The registry's version (issue 19): a newer agent's registry is not read as ours, and not taken for corruption. */
Test(session, registry_version_is_checked) {
  const char *body =
      "\"session\":\"0123456789abcdef0123456789abcdef\",\"mode\":\"run\",\"host\":\"h\",\"boot_id\":\"b\","
      "\"owner_pid\":5,\"owner_start\":1,\"created\":1,\"expires\":0,\"guardian_pid\":0}";
  char json[512];
  struct ag_registry r;
  snprintf(json, sizeof(json), "{\"version\":1,%s", body);
  cr_assert_eq(ag_registry_parse(json, strlen(json), &r, NULL), 0, "%s", json);
  ag_registry_done(&r);
  /* A newer agent may have changed any other field: the version alone decides, before the rest is read. */
  const char *newer = "{\"version\":2,\"session\":42}";
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ag_registry_parse(newer, strlen(newer), &r, &err), -EPROTONOSUPPORT);
  cr_assert(strstr(err->msg, "version 2") && strstr(err->msg, "newer"), "%s", err->msg);
  const char *bad[] = {"{", "{\"version\":0,", "{\"version\":\"1\",", "{\"version\":1.5,", "{\"version\":-1,"};
  for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
    snprintf(json, sizeof(json), "%s%s", bad[i], body);
    ca_error_free(TAKE_PTR(err));
    int rc = ag_registry_parse(json, strlen(json), &r, &err);
    cr_assert(rc < 0 && rc != -EPROTONOSUPPORT, "%s: %d", json, rc);
  }
}

static void put(const struct ag_state *s, const char *name, const char *text) {
  char p[256];
  snprintf(p, sizeof(p), "%s/%s", s->sessions, name);
  FILE *f = fopen(p, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

static bool has(const struct ag_state *s, const char *name) {
  struct stat st;
  return fstatat(s->sessions_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Files of the sessions dir whose name starts with prefix. */

Test(session, a_newer_agents_registry_is_kept_as_it_is) {
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open(tmp, &s, NULL), 0);
  const char *id = "0123456789abcdef0123456789abcdef";
  put(s, "0123456789abcdef0123456789abcdef.json", "{\"version\":7,\"session\":\"0123456789abcdef0123456789abcdef\"}");
  struct ag_registry r;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ag_registry_load(s, id, &r, &err), -EPROTONOSUPPORT);
  cr_assert(strstr(err->msg, "version 7") && strstr(err->msg, "newer") && !strstr(err->msg, "corrupt"), "%s", err->msg);
  cr_assert_eq(count_prefixed(s, id), 1, "the registry was moved, or a lock file made");
  ca_error_free(TAKE_PTR(err));
  cr_assert_eq(ag_registry_check_version(s, id, &err), -EPROTONOSUPPORT);
  cr_assert_not_null(strstr(err->msg, "version 7"), "%s", err->msg);
  put(s, "fedcba9876543210fedcba9876543210.json", "{\"version\":1,");
  cr_assert_eq(ag_registry_check_version(s, "fedcba9876543210fedcba9876543210", NULL), 0, "corrupt is not newer");
  cr_assert_eq(ag_registry_check_version(s, "00000000000000000000000000000000", NULL), 0, "absent is not newer");
  ag_state_free(s);
}

Test(session, a_registry_that_cannot_be_read_is_an_error_not_corruption) {
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open(tmp, &s, NULL), 0);
  const char *id = "0123456789abcdef0123456789abcdef";
  struct ag_registry in = sample(), r;
  cr_assert_eq(ag_registry_write(s, &in, NULL), 0);
  /* EMFILE: no descriptor left for the open. */
  struct rlimit old, low;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  int probe = dup(0);
  cr_assert_geq(probe, 0);
  close(probe);
  low = old;
  low.rlim_cur = (rlim_t)probe;
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  _cleanup_error_ ca_error *err = NULL;
  int rc = ag_registry_load(s, id, &r, &err);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  cr_assert_eq(rc, -EMFILE, "%d: %s", rc, err ? err->msg : "");
  cr_assert(!strstr(err->msg, "corrupt") && !strstr(err->msg, "aside"), "%s", err->msg);
  cr_assert_eq(count_prefixed(s, id), 1, "the registry was moved aside");
  /* EACCES: a reader without the right to read it (a child that dropped root). */
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    ca_error *e = NULL;
    if (setresuid(65534, 65534, 65534) < 0)
      _exit(98);
    _exit(ag_registry_load(s, id, &r, &e) == -EACCES && !strstr(e->msg, "corrupt") ? 0 : 1);
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "EACCES was not reported as such (status %d)", st);
  cr_assert_eq(count_prefixed(s, id), 1, "the registry was moved aside");
  cr_assert_eq(ag_registry_load(s, id, &r, NULL), 0, "the registry is still whole");
  ag_registry_done(&r);
  ag_state_free(s);
}

Test(session, a_read_only_state_changes_nothing) {
  char missing[128];
  snprintf(missing, sizeof(missing), "%s/missing", tmp);
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open_flags(missing, AG_STATE_READ_ONLY, &s, NULL), 0);
  cr_assert_eq(access(missing, F_OK), -1, "the state dir was created");
  char **ids = NULL;
  cr_assert_eq(ag_state_list_sessions(s, &ids, NULL), 0);
  cr_assert_null(ids[0]);
  ca_strv_free(ids);
  int fd = -1;
  cr_assert_eq(ag_session_lock(s, "0123456789abcdef0123456789abcdef", false, &fd, NULL), -ENOENT);
  struct ag_aside *aside = NULL;
  size_t n = 1;
  cr_assert_eq(ag_state_list_aside(s, &aside, &n, NULL), 0);
  cr_assert_eq(n, 0);
  free(aside);
  ag_state_free(s);
  cr_assert_eq(ag_state_open_flags(missing, AG_STATE_NO_CREATE, &s, NULL), 0);
  cr_assert_eq(access(missing, F_OK), -1, "the state dir was created");
  ag_state_free(s);

  /* An existing one: a corrupt registry is named and left where it is; no lock file, registry or removal. */
  cr_assert_eq(ag_state_open(tmp, &s, NULL), 0);
  ag_state_free(s);
  cr_assert_eq(ag_state_open_flags(tmp, AG_STATE_READ_ONLY, &s, NULL), 0);
  const char *id = "0123456789abcdef0123456789abcdef";
  put(s, "0123456789abcdef0123456789abcdef.json", "{\"version\":1,\"session\":\"0123");
  struct ag_registry r;
  _cleanup_error_ ca_error *err = NULL;
  cr_assert_eq(ag_registry_load(s, id, &r, &err), -EINVAL);
  cr_assert(strstr(err->msg, "corrupt") && strstr(err->msg, "left in place"), "%s", err->msg);
  cr_assert_eq(count_prefixed(s, id), 1, "the registry was moved aside or a lock file made");
  cr_assert_eq(ag_session_lock(s, id, true, &fd, NULL), -EROFS);
  struct ag_registry w = sample();
  cr_assert_eq(ag_registry_write(s, &w, NULL), -EROFS);
  cr_assert_eq(ag_registry_remove(s, id, NULL), -EROFS);
  cr_assert(has(s, "0123456789abcdef0123456789abcdef.json"));
  ag_state_free(s);
}

Test(session, files_set_aside_are_listed_and_only_they_removed) {
  struct ag_state *s = NULL;
  cr_assert_eq(ag_state_open(tmp, &s, NULL), 0);
  const char *aside[] = {"0123456789abcdef0123456789abcdef.json.corrupt-1700000000",
                         "fedcba9876543210fedcba9876543210.json.symlink-1700000001",
                         "00000000000000000000000000000abc.lock.symlink-1700000002"};
  const char *other[] = {"0123456789abcdef0123456789abcdef.json",
                         "0123456789abcdef0123456789abcdef.json.corrupt-",
                         "0123456789abcdef0123456789abcdef.json.corrupt-12x",
                         "x.json.corrupt-1",
                         "0123456789abcdef0123456789abcdef.sock.corrupt-1",
                         "0123456789abcdef0123456789abcdef.lock"};
  for (size_t i = 0; i < ELEMENTSOF(aside); i++)
    put(s, aside[i], "x");
  for (size_t i = 0; i < ELEMENTSOF(other); i++)
    put(s, other[i], "x");
  struct ag_aside *v = NULL;
  size_t n = 0;
  cr_assert_eq(ag_state_list_aside(s, &v, &n, NULL), 0);
  cr_assert_eq(n, ELEMENTSOF(aside));
  for (size_t i = 0; i < n; i++) {
    size_t k = 0;
    while (k < ELEMENTSOF(aside) && !streq(aside[k], v[i].name))
      k++;
    cr_assert_lt(k, ELEMENTSOF(aside), "%s listed", v[i].name);
    cr_assert_eq(v[i].since, 1700000000 + (int64_t)k);
    cr_assert_eq(strncmp(v[i].id, aside[k], 32), 0);
    cr_assert_str_eq(v[i].why, k == 0 ? "corrupt" : "symlink");
  }
  free(v);
  for (size_t i = 0; i < ELEMENTSOF(other); i++)
    cr_assert_eq(ag_state_remove_aside(s, other[i], NULL), -EINVAL, "%s", other[i]);
  for (size_t i = 0; i < ELEMENTSOF(aside); i++) {
    cr_assert_eq(ag_state_remove_aside(s, aside[i], NULL), 0);
    cr_assert_not(has(s, aside[i]));
  }
  for (size_t i = 0; i < ELEMENTSOF(other); i++)
    cr_assert(has(s, other[i]), "%s was removed", other[i]);
  ag_state_free(s);
}

/* A nested run finds its parent's leaf from /proc/self/cgroup: the leaf itself, or (run --contain-containers on a
 * pure v2 host with cgroupfs) the leaf's command sub-cgroup, whose parent holds the inner leaves next to the
 * containers. A fake procfs: self/mountinfo with the cgroup2 mount, self/cgroup with the v2 path. */
static char *nested_dir(const char *mount, const char *cgroup_line) {
  char proc[] = "/tmp/ag-nest-proc-XXXXXX", path[PATH_MAX], mi[PATH_MAX + 128];
  cr_assert_not_null(mkdtemp(proc));
  snprintf(path, sizeof(path), "%s/self", proc);
  cr_assert_eq(mkdir(path, 0700), 0);
  snprintf(path, sizeof(path), "%s/self/mountinfo", proc);
  snprintf(mi, sizeof(mi), "36 25 0:31 / %s rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw\n", mount);
  cr_assert_eq(ca_write_file_atomic(path, mi, strlen(mi), 0600, NULL), 0);
  snprintf(path, sizeof(path), "%s/self/cgroup", proc);
  cr_assert_eq(ca_write_file_atomic(path, cgroup_line, strlen(cgroup_line), 0600, NULL), 0);
  struct ag_nesting n;
  ag_nesting_detect(proc, &n);
  char *dir = n.cgroup_dir ? strdup(n.cgroup_dir) : NULL;
  ag_nesting_done(&n);
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", proc);
  cr_assert_eq(system(cmd), 0);
  return dir;
}

Test(session, a_nested_run_finds_its_parents_leaf_also_from_the_command_sub_cgroup) {
  /* The mount must be this host's cgroup2 (the module checks it is one): the path below it is made up. */
  cg_mounts m = {0};
  cr_assert(cg_mounts_read(NULL, &m, NULL) == 0 && m.unified, "this host has no cgroup2 mount");
  char want[PATH_MAX];
  snprintf(want, sizeof(want), "%s/cleanup-agent.slice/run-0123456789abcdef0123456789abcdef", m.unified);
  cr_assert_eq(setenv("CLEANUP_AGENT_SESSION", "0123456789abcdef0123456789abcdef", 1), 0);
  char *leaf = nested_dir(m.unified, "0::/cleanup-agent.slice/run-0123456789abcdef0123456789abcdef\n");
  cr_expect(leaf && streq(leaf, want), "%s", leaf ? leaf : "(none)");
  char *sub =
      nested_dir(m.unified, "0::/cleanup-agent.slice/run-0123456789abcdef0123456789abcdef/" CG_COMMAND_CGROUP "\n");
  cr_expect(sub && streq(sub, want), "from the command sub-cgroup: %s", sub ? sub : "(none)");
  char *other =
      nested_dir(m.unified, "0::/cleanup-agent.slice/run-ffffffffffffffffffffffffffffffff/" CG_COMMAND_CGROUP "\n");
  cr_expect_null(other, "another session's leaf is not the parent's: %s", other ? other : "");
  char *deeper =
      nested_dir(m.unified, "0::/cleanup-agent.slice/run-0123456789abcdef0123456789abcdef/x/" CG_COMMAND_CGROUP "\n");
  cr_expect_null(deeper, "only the leaf or its command sub-cgroup: %s", deeper ? deeper : "");
  free(leaf);
  free(sub);
  free(other);
  free(deeper);
  cg_mounts_done(&m);
  unsetenv("CLEANUP_AGENT_SESSION");
}
