/* Concurrency, PID reuse and broken environments: 8 live runs while 2 gcs collect; registry entries whose pid now
 * belongs to another process; a full state dir; a read-only cgroup tree; an engine socket that accepts and never
 * answers; registry files that are truncated, not JSON, or a symlink; a session's engine down while it is collected
 * (its registry stays until the engine answers). Each says one clear line, loses nothing and crashes nothing. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chaos.h"
#include "scenario_engine.h"
#include "cli_run.h"
#include "cgroup.h"
#include "session.h"

#define IMAGE "cleanup-test/busybox:latest"

static struct scenario sc;

static void setup(void) {
  signal(SIGPIPE, SIG_IGN);
  scenario_setup(&sc);
}
static void teardown(void) {
  scenario_private_engine_stop(&sc); /* nothing when the test used the shared engine */
  scenario_teardown(&sc);
}

TestSuite(faults, .init = setup, .fini = teardown, .timeout = 300 * AG_TIMEOUT_SCALE);

/* Lines in s. */
static size_t lines(const char *s) {
  return cli_count_lines(s);
}

/* ---- 8 concurrent runs while 2 gcs run ------------------------------------------------------------------------ */

#define RUNS 8
#define GCS 2
#define ROUNDS 2

static const char live_body[] =
    "L=\"--label io.cleanup-agent.session=$CLEANUP_AGENT_SESSION --label $TEST_LABEL\"\n"
    "docker run -d --network none $L " IMAGE " sleep 1000 >/dev/null || exit 90\n"
    "docker network create --internal $L net-$CLEANUP_AGENT_SESSION >/dev/null || exit 91\n"
    "docker volume create $L >/dev/null || exit 92\n"
    "sleep 1000 &\n"
    "echo $CLEANUP_AGENT_SESSION > $OUT/session-$1.tmp && mv $OUT/session-$1.tmp $OUT/session-$1\n"
    "while [ ! -e $OUT/go ]; do sleep 0.1; done\n";

/* What a live session must still have: its command and sleeper, container, network, volume, cgroup, registry. */
static bool session_intact(const char *id, char *why, size_t len) {
  int procs = scenario_count_processes(id), c = scenario_count_docker(&sc, DK_CONTAINER, id),
      n = scenario_count_docker(&sc, DK_NETWORK, id), v = scenario_count_docker(&sc, DK_VOLUME, id);
  bool cg = scenario_cgroup_exists(&sc, id);
  char reg[256];
  snprintf(reg, sizeof(reg), "%.96s/sessions/%.32s.json", sc.state, id);
  bool has_reg = access(reg, F_OK) == 0;
  snprintf(why, len, "%d processes, %d containers, %d networks, %d volumes, cgroup %s, registry %s", procs, c, n, v,
           cg ? "yes" : "no", has_reg ? "yes" : "no");
  return procs >= 2 && c == 1 && n == 1 && v == 1 && cg && has_reg;
}

Test(faults, eight_live_runs_lose_nothing_to_two_concurrent_gcs) {
  scenario_private_engine_start(&sc); /* gc --older-than 1s takes every dead session of its engine */
  const char *script = scenario_script(&sc, "live.sh", live_body);
  int lost = 0, sessions = 0, gc_runs = 0, gc_bad = 0;
  for (int round = 0; round < ROUNDS; round++) {
    pid_t runs[RUNS], gcs[GCS];
    char ids[RUNS][128];
    char go[160];
    snprintf(go, sizeof(go), "%s/go", sc.dir);
    unlink(go);
    for (int i = 0; i < RUNS; i++) {
      char n[8];
      snprintf(n, sizeof(n), "%d", i);
      runs[i] = scenario_start(&sc, (const char *[]){"run", "--grace", "1s", "--", script, n, NULL});
    }
    for (int i = 0; i < RUNS; i++) {
      char name[32];
      snprintf(name, sizeof(name), "session-%d", i);
      cr_assert(scenario_read_marker(&sc, name, 60000, ids[i]), "run %d never got going: %s", i, scenario_stderr(&sc));
      unlink(strcat(strcat(strcpy((char[192]){0}, sc.dir), "/"), name));
    }
    /* Older than --older-than 1s, so that only their liveness protects them. And dead sessions for gc to take. */
    chaos_sleep_ms(1100);
    for (int i = 0; i < GCS; i++)
      gcs[i] = scenario_start(&sc, (const char *[]){"gc", "--older-than", "1s", NULL});
    for (int i = 0; i < GCS; i++) {
      int rc = scenario_wait(gcs[i]);
      gc_runs++;
      gc_bad += rc != 0;
      cr_expect_eq(rc, 0, "gc %d of round %d exited %d", i, round, rc);
    }
    for (int i = 0; i < RUNS; i++) {
      char why[256];
      sessions++;
      if (!session_intact(ids[i], why, sizeof(why))) {
        lost++;
        fprintf(stderr, "chaos: live session %s lost something to gc: %s\n", ids[i], why);
      }
    }
    int fd = open(go, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    cr_assert_geq(fd, 0);
    close(fd);
    for (int i = 0; i < RUNS; i++) {
      int rc = scenario_wait(runs[i]);
      cr_expect_eq(rc, 0, "run %d exited %d", i, rc);
    }
    for (int i = 0; i < RUNS; i++)
      cr_expect(scenario_wait_nothing_left(&sc, ids[i], 5000), "session %s left something at its end", ids[i]);
  }
  chaos_report("8 concurrent runs while 2 gcs --older-than 1s run", sessions, lost,
               "%d rounds; %d gc runs, %d exited non-zero; a trial is one live session", ROUNDS, gc_runs, gc_bad);
  cr_expect_eq(lost, 0);
}

/* ---- PID reuse -------------------------------------------------------------------------------------------------- */

#define PID_TRIALS 10

/* A process that is not the session's: its pid is written into the registry with another start time. */
static pid_t spawn_bystander(uint64_t *ret_start) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    execlp("sleep", "sleep", "60", (char *)NULL);
    _exit(127);
  }
  cr_assert_eq(cg_proc_start_time(NULL, pid, ret_start, NULL), 0);
  return pid;
}

static void write_registry(struct ag_state *st, const char *id, pid_t pid, uint64_t start) {
  struct ag_registry reg = {.created = time(NULL), .guardian_pid = pid};
  memcpy(reg.id, id, sizeof(reg.id));
  strcpy(reg.mode, "run");
  cr_assert_eq(ag_owner_self(&reg.owner, NULL), 0);
  reg.owner.pid = pid;
  reg.owner.start = start;
  cr_assert_eq(ag_registry_write(st, &reg, NULL), 0);
}

Test(faults, a_reused_pid_is_never_signalled) {
  scenario_private_engine_start(&sc); /* its gc takes every dead session of its engine */
  char host_arg[160];
  snprintf(host_arg, sizeof(host_arg), "--docker-host=%s", sc.docker_host);
  struct ag_state *st = NULL;
  cr_assert_eq(ag_state_open(sc.state, &st, NULL), 0);
  struct ag_owner self;
  cr_assert_eq(ag_owner_self(&self, NULL), 0);
  int signalled = 0, collected = 0;
  for (int t = 0; t < PID_TRIALS; t++) {
    uint64_t start;
    pid_t bystander = spawn_bystander(&start);
    uint64_t other = start + 1 + chaos_rand(1000);

    /* kill of a "live" session (its lock held by a helper for 1 s) whose agent pid is now the bystander's. */
    char id[33];
    cr_assert_eq(ag_session_id_new(id, NULL), 0);
    int lock = -1;
    cr_assert_eq(ag_session_lock(st, id, true, &lock, NULL), 0);
    write_registry(st, id, bystander, other);
    pid_t holder = fork();
    cr_assert_geq(holder, 0);
    if (holder == 0) {
      chaos_sleep_ms(1000);
      _exit(0);
    }
    close(lock); /* the holder keeps the lock until it exits */
    struct cli_result *r = calloc(1, sizeof(*r));
    char state_arg[128];
    snprintf(state_arg, sizeof(state_arg), "--state-dir=%s", sc.state);
    cli_run(r, (const char *[]){state_arg, host_arg, "kill", id, NULL}, NULL);
    cr_expect_eq(r->status, 0, "kill: %s", r->err);
    scenario_wait(holder);

    /* A dead session (registry, free lock) and a container whose owner labels name the bystander's pid with another
     * start time: the next start and gc collect both, and signal nobody. */
    char dead[33], l_sess[96], l_pid[64], l_start[80], l_host[300], l_boot[96], l_machine[96], l_pidns[64];
    cr_assert_eq(ag_session_id_new(dead, NULL), 0);
    cr_assert_eq(ag_session_lock(st, dead, true, &lock, NULL), 0);
    write_registry(st, dead, bystander, other);
    close(lock);
    char orphan[33];
    cr_assert_eq(ag_session_id_new(orphan, NULL), 0);
    snprintf(l_sess, sizeof(l_sess), AG_LABEL_SESSION "=%s", orphan);
    snprintf(l_pid, sizeof(l_pid), AG_LABEL_OWNER_PID "=%d", (int)bystander);
    snprintf(l_start, sizeof(l_start), AG_LABEL_OWNER_START "=%llu", (unsigned long long)other);
    snprintf(l_host, sizeof(l_host), AG_LABEL_HOST "=%s", self.host);
    snprintf(l_boot, sizeof(l_boot), AG_LABEL_BOOT_ID "=%s", self.boot_id);
    snprintf(l_machine, sizeof(l_machine), AG_LABEL_MACHINE "=%s", self.machine);
    snprintf(l_pidns, sizeof(l_pidns), AG_LABEL_PIDNS "=%llu", (unsigned long long)self.pidns);
    const char *labels[] = {l_sess,        l_pid, l_start, l_host, l_boot, l_machine, l_pidns, AG_LABEL_MANAGED "=true",
                            sc.test_label, NULL};
    struct dk_container_spec spec = {
        .image = IMAGE, .cmd = (const char *[]){"sleep", "1000", NULL}, .labels = labels, .network_mode = "none"};
    _cleanup_free_ char *cid = NULL;
    cr_assert_eq(dk_container_create(sc.dk, &spec, &cid, NULL), 0);
    cli_run(r, (const char *[]){state_arg, host_arg, "run", "--", "true", NULL}, NULL);
    cr_expect_eq(r->status, 0, "run: %s", r->err);
    cli_run(r, (const char *[]){state_arg, host_arg, "gc", NULL}, NULL);
    cr_expect_eq(r->status, 0, "gc: %s", r->err);
    collected += scenario_count_docker(&sc, DK_CONTAINER, orphan) == 0;
    free(r);

    int status;
    bool alive = waitpid(bystander, &status, WNOHANG) == 0;
    signalled += !alive;
    cr_expect(alive, "trial %d: the bystander (pid %d) was signalled", t, (int)bystander);
    kill(bystander, SIGKILL); /* our own child */
    waitpid(bystander, &status, 0);
  }
  ag_state_free(st);
  chaos_report("PID reuse: registry and owner labels name a live pid with another start time", PID_TRIALS, signalled,
               "kill, the next start and gc each ran once per trial; the orphan container was collected in %d of %d",
               collected, PID_TRIALS);
  cr_expect_eq(signalled, 0);
  cr_expect_eq(collected, PID_TRIALS);
}

/* ---- broken environments: one clear line each ------------------------------------------------------------------- */

static int broken_left;
static int broken_trials;

static void broken_result(const char *what, bool ok, const char *said) {
  broken_trials++;
  broken_left += !ok;
  fprintf(stderr, "chaos: %s: %s; it said: %s", what, ok ? "ok" : "FAILED", said);
}

Test(faults, full_tmpfs_state_dir_is_one_line_and_loses_nothing) {
  char mnt[128];
  snprintf(mnt, sizeof(mnt), "%s/tiny", sc.dir);
  cr_assert_eq(mkdir(mnt, 0700), 0);
  cr_assert_eq(mount("tmpfs", mnt, "tmpfs", 0, "size=16k,mode=700"), 0, "mount tmpfs: %s", strerror(errno));
  /* A live session already registered there, then the rest filled. */
  struct ag_state *st = NULL;
  cr_assert_eq(ag_state_open(mnt, &st, NULL), 0);
  char live[33];
  cr_assert_eq(ag_session_id_new(live, NULL), 0);
  int lock = -1;
  cr_assert_eq(ag_session_lock(st, live, true, &lock, NULL), 0);
  write_registry(st, live, getpid(), 0);
  char reg[256], before[4096];
  snprintf(reg, sizeof(reg), "%s/sessions/%s.json", mnt, live);
  snprintf(before, sizeof(before), "%s", scenario_read_text(reg));
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "dd if=/dev/zero of=%s/fill bs=4k 2>/dev/null; true", mnt);
  cr_assert_eq(system(cmd), 0);

  struct cli_result *r = calloc(1, sizeof(*r));
  char state_arg[160], marker[160];
  snprintf(state_arg, sizeof(state_arg), "--state-dir=%s", mnt);
  snprintf(marker, sizeof(marker), "echo ran > %s/ran", sc.dir);
  cli_run(r, (const char *[]){state_arg, "run", "--", "sh", "-c", marker, NULL}, NULL);
  bool ok = r->status == 125 && lines(r->err) == 1 && strstr(r->err, "No space left on device") &&
            streq(scenario_read_text(reg), before);
  /* What is in sessions/ now: the live session's two files, nothing else. */
  snprintf(cmd, sizeof(cmd), "test $(ls -A %s/sessions | wc -l) -eq 2", mnt);
  ok = ok && system(cmd) == 0;
  broken_result("state dir on a full 16k tmpfs (run)", ok, r->err);
  cr_expect_eq(r->status, 125, "%s", r->err);
  cr_expect_eq(lines(r->err), 1, "%s", r->err);
  cr_expect_not_null(strstr(r->err, "No space left on device"), "%s", r->err);
  cr_expect_str_eq(scenario_read_text(reg), before, "the live session's registry changed");
  cr_expect(ok, "files other than the live session's are left in %s/sessions", mnt);

  /* gc and ps on the same full dir: they read, they do not need to write. */
  cli_run(r, (const char *[]){state_arg, "ps", NULL}, NULL);
  cr_expect_eq(r->status, 0, "ps: %s", r->err);
  cr_expect_not_null(strstr(r->out, live), "ps does not show the live session: %s", r->out);
  free(r);
  close(lock);
  ag_state_free(st);
  cr_assert_eq(umount(mnt), 0);
  chaos_report("state dir on a tiny full tmpfs", 1, !ok,
               "run refused with one line and exit 125; the live "
               "session's registry unchanged; ps still lists it");
}

Test(faults, read_only_cgroup_tree_falls_back_with_one_line) {
  char tag[48], cmd[1024];
  snprintf(tag, sizeof(tag), "%d-ro-cgroup", (int)getpid());
  const char *mount_point = strrchr(sc.cgroup_root, '/');
  /* A private mount namespace in which the cgroup2 mount is read-only; the host's stays as it is. */
  snprintf(cmd, sizeof(cmd),
           "unshare -m sh -c 'mount --make-rprivate / && mount -o remount,bind,ro %.*s && "
           "CHAOS_TAG=%s exec %s --state-dir %s --cgroup-root %s run -- sh -c \"sleep 100 & echo ran\"' "
           ">%s/ro.out 2>%s/ro.err; echo $? >%s/ro.rc",
           (int)(mount_point - sc.cgroup_root), sc.cgroup_root, tag, AG_BINARY, sc.state, sc.cgroup_root, sc.dir,
           sc.dir, sc.dir);
  cr_assert_eq(system(cmd), 0);
  char path[160], err[4096];
  snprintf(path, sizeof(path), "%s/ro.err", sc.dir);
  snprintf(err, sizeof(err), "%s", scenario_read_text(path));
  snprintf(path, sizeof(path), "%s/ro.rc", sc.dir);
  int rc = atoi(scenario_read_text(path));
  snprintf(path, sizeof(path), "%s/ro.out", sc.dir);
  char entry[80];
  snprintf(entry, sizeof(entry), "CHAOS_TAG=%s", tag);
  int procs = cli_count_env_processes(entry);
  const char *line = strstr(err, "Read-only file system");
  bool ok =
      rc == 0 && line && procs == 0 && scenario_count_state_files(&sc) == 0 && streq(scenario_read_text(path), "ran\n");
  broken_result("read-only cgroup tree (run)", ok, err);
  cr_expect_eq(rc, 0, "%s", err);
  cr_expect_not_null(line, "%s", err);
  cr_expect_eq(procs, 0, "the command's sleeper outlived the run");
  chaos_report("read-only cgroup tree", 1, !ok,
               "run fell back to process-group tracking with one line naming the read-only file system, and still "
               "killed the command's sleeper");
}

/* An engine socket that accepts and never answers. */
struct hang {
  int fd;
  char path[108];
};
static void *hang_accept(void *arg) {
  struct hang *h = arg;
  for (;;) {
    int c = accept4(h->fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0)
      return NULL;
    /* kept open, never answered; the process exit closes it */
  }
}

/* The state dir holds one registry and it says why it was kept. */
static bool registry_kept_with_reason(const char *state) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "test $(ls %s/sessions/*.json | wc -l) -eq 1 && grep -q '\"collect_error\"' %s/sessions/*.json", state,
           state);
  return system(cmd) == 0;
}

Test(faults, engine_socket_that_never_answers_is_one_line) {
  struct hang h = {.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  cr_assert_geq(h.fd, 0);
  snprintf(h.path, sizeof(h.path), "%s/hang.sock", sc.dir);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  snprintf(a.sun_path, sizeof(a.sun_path), "%s", h.path);
  cr_assert_eq(bind(h.fd, (struct sockaddr *)&a, sizeof(a)), 0);
  cr_assert_eq(listen(h.fd, 64), 0);
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, hang_accept, &h), 0);

  char host[160], state_arg[128], tag[48];
  snprintf(host, sizeof(host), "--docker-host=unix://%s", h.path);
  snprintf(state_arg, sizeof(state_arg), "--state-dir=%s", sc.state);
  snprintf(tag, sizeof(tag), "CHAOS_TAG=%d-hang", (int)getpid());
  char cg_arg[160];
  snprintf(cg_arg, sizeof(cg_arg), "--cgroup-root=%s", sc.cgroup_root);
  struct cli_result *r = calloc(1, sizeof(*r));
  uint64_t t0 = ca_now_monotonic_usec();
  cli_run(r, (const char *[]){host, state_arg, cg_arg, "run", "--", "sh", "-c", "sleep 100 & echo ran", NULL},
          (const char *[]){tag, NULL});
  double secs = (double)(ca_now_monotonic_usec() - t0) / 1e6;
  const char *line = strstr(r->err, "no answer in time");
  bool one_line = line && !strstr(line + 1, "no answer in time");
  /* The engine never answered, so nothing proves the session left nothing there: its registry stays, saying why,
   * for the next start or gc (a resource labeled only with the session id would match no other rule). */
  bool kept = registry_kept_with_reason(sc.state);
  bool ok = r->status == 0 && streq(r->out, "ran\n") && one_line && cli_count_env_processes(tag) == 0 && kept;
  broken_result("engine socket that accepts and never answers (run)", ok, r->err);
  cr_expect_eq(r->status, 0, "%s", r->err);
  cr_expect_str_eq(r->out, "ran\n");
  cr_expect_not_null(strstr(r->err, "no answer in time"), "%s", r->err);
  cr_expect_eq(cli_count_env_processes(tag), 0, "the command's sleeper outlived the run");
  cr_expect(kept, "the session's registry went (or stayed without its reason) though its engine never answered");
  free(r);
  shutdown(h.fd, SHUT_RDWR);
  close(h.fd);
  pthread_join(th, NULL);
  chaos_report("engine socket that accepts and never answers", 1, !ok,
               "run said so in one line, ran the command, killed its sleeper and kept the registry with the reason; "
               "start-up waited %.1f s (3 pings of 10 s)",
               secs);
}

/* A container that carries only session id's label (and the test's). */
static void session_container(const char *id) {
  char label[200];
  snprintf(label, sizeof(label), AG_LABEL_SESSION "=%s", id);
  struct dk_container_spec spec = {.image = IMAGE,
                                   .cmd = (const char *[]){"sleep", "1000", NULL},
                                   .labels = (const char *[]){label, sc.test_label, NULL},
                                   .network_mode = "none"};
  _cleanup_free_ char *cid = NULL;
  cr_assert_eq(dk_container_create(sc.dk, &spec, &cid, NULL), 0);
}

Test(faults, truncated_non_json_and_symlinked_registries_are_one_line_each) {
  char sessions[160];
  snprintf(sessions, sizeof(sessions), "%s/sessions", sc.state);
  cr_assert_eq(mkdir(sc.state, 0700), 0);
  cr_assert_eq(mkdir(sessions, 0700), 0);
  const char *ids[] = {"7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a", "7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b",
                       "7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c"};
  const char *texts[] = {"{\"version\": 1, \"session\": \"7a7a", "this is not JSON\n", NULL};
  char victim[160], path[256];
  snprintf(victim, sizeof(victim), "%s/victim", sc.dir);
  FILE *f = fopen(victim, "w");
  fputs("precious\n", f);
  fclose(f);
  for (int i = 0; i < 3; i++) {
    snprintf(path, sizeof(path), "%s/%s.json", sessions, ids[i]);
    if (texts[i]) {
      f = fopen(path, "w");
      fputs(texts[i], f);
      fclose(f);
    } else {
      cr_assert_eq(symlink(victim, path), 0);
    }
    session_container(ids[i]);
  }
  char state_arg[128], cg_arg[160];
  snprintf(state_arg, sizeof(state_arg), "--state-dir=%s", sc.state);
  snprintf(cg_arg, sizeof(cg_arg), "--cgroup-root=%s", sc.cgroup_root);
  struct cli_result *r = calloc(1, sizeof(*r));
  cli_run(r, (const char *[]){state_arg, cg_arg, "ps", NULL}, NULL);
  cr_expect_eq(r->status, 0, "ps: %s", r->err);
  int ps_rc = r->status;
  char *said = calloc(1, sizeof(r->err) * 2);
  strcpy(said, r->err); /* ps reads them first and names them; it changes nothing, so run is the one to set aside */
  size_t ps_said = strlen(said);
  cli_run(r, (const char *[]){state_arg, cg_arg, "run", "--", "true", NULL}, NULL);
  strcat(said, r->err);
  int ok_count = 0;
  const char *what[] = {"truncated registry", "registry that is not JSON", "registry that is a symlink"};
  for (int i = 0; i < 3; i++) {
    /* One line names the file and says it was moved aside; the session is still collected. */
    const char *line = strstr(said + ps_said, ids[i]);
    const char *eol = line ? strchr(line, '\n') : NULL;
    /* A corrupt file is "moved aside" as .corrupt-<time>, a symlink "set aside" as .symlink-<time>. */
    bool symlink = i == 2;
    const char *aside = symlink ? "set aside" : "moved aside";
    bool one_line = line && eol && memmem(line, (size_t)(eol - line), aside, strlen(aside));
    bool collected = scenario_count_docker(&sc, DK_CONTAINER, ids[i]) == 0;
    char glob_cmd[300];
    snprintf(glob_cmd, sizeof(glob_cmd), "ls %s/%s.json.%s-* >/dev/null 2>&1", sessions, ids[i],
             symlink ? "symlink" : "corrupt");
    bool kept = system(glob_cmd) == 0;
    bool ok = ps_rc == 0 && r->status == 0 && one_line && collected && kept;
    ok_count += ok;
    char desc[128];
    snprintf(desc, sizeof(desc), "%s (ps, then run)", what[i]);
    char one[600];
    snprintf(one, sizeof(one), "%.*s\n", line && eol ? (int)(eol - line) : 0, line ? line : "");
    broken_result(desc, ok, line ? one : "(nothing about it)\n");
    cr_expect(one_line, "%s: no line saying it was moved aside: %s", what[i], said);
    cr_expect(collected, "%s: its session's container was not collected", what[i]);
    cr_expect(kept, "%s: not kept aside", what[i]);
  }
  cr_expect_eq(r->status, 0, "run: %s", r->err);
  bool victim_ok = streq(scenario_read_text(victim), "precious\n");
  cr_expect(victim_ok, "the symlink's target was changed");
  free(r);
  free(said);
  chaos_report("registry files: truncated, not JSON, a symlink", 3, 3 - ok_count + !victim_ok,
               "one line each naming the file, moved aside (kept), the session still collected; the symlink's "
               "target untouched");
}

/* ---- the engine down while a session is collected ---------------------------------------------------------------- */

#define DOWN_TRIALS 6

/* The session's engine is <dir>/engine.sock: a symlink to the shared engine, or a socket that refuses (down). */
static void recorded_engine(const char *sock, bool up) {
  unlink(sock);
  if (up) {
    cr_assert_eq(symlink("/var/run/docker.sock", sock), 0);
    return;
  }
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  cr_assert(fd >= 0 && strlen(sock) < sizeof(a.sun_path));
  memcpy(a.sun_path, sock, strlen(sock) + 1);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  close(fd); /* never listened: connect is refused */
}

/* One trial: a run whose engine goes down while it runs, ended by its own end (way 0), its guardian after a SIGKILL
 * (1) or kill (2); what carries only the session's label must survive in the registry's keeping until the engine is
 * back, then one gc with another --docker-host collects it all. Returns what was left in the end (0: nothing). */
static int engine_down_trial(int way, const char *engine_host, const char *none_host, const char *sock, bool *kept) {
  recorded_engine(sock, true);
  const char *script = scenario_script(&sc, "down.sh",
                                       "echo $CLEANUP_AGENT_SESSION > $OUT/down.tmp && mv $OUT/down.tmp $OUT/down\n"
                                       "while [ ! -e $OUT/end ]; do sleep 0.05; done\n");
  char end[160], marker[160];
  snprintf(end, sizeof(end), "%s/end", sc.dir);
  snprintf(marker, sizeof(marker), "%s/down", sc.dir);
  unlink(end);
  unlink(marker);
  pid_t agent = scenario_start(&sc, (const char *[]){"--docker-host", engine_host, "run", "--", script, NULL});
  char id[128];
  cr_assert(scenario_read_marker(&sc, "down", 30000, id), "the command never started: %s", scenario_stderr(&sc));
  session_container(id);
  recorded_engine(sock, false);
  if (way == 0) {
    int fd = open(end, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    close(fd);
    scenario_wait(agent);
  } else {
    kill(agent, SIGKILL); /* our own child */
    scenario_wait(agent);
    if (way == 2)
      (void)scenario_run(&sc, (const char *[]){"--docker-host", none_host, "kill", id, NULL});
  }
  /* Wait for the guardian (its lock) before judging. */
  for (int i = 0; i < 300 && scenario_count_processes(id) > 0; i++)
    chaos_sleep_ms(100);
  char reg[300];
  snprintf(reg, sizeof(reg), "%s/sessions/%s.json", sc.state, id);
  for (int i = 0; i < 100 && !strstr(scenario_read_text(reg), "collect_error"); i++)
    chaos_sleep_ms(100);
  *kept = strstr(scenario_read_text(reg), "collect_error") && scenario_count_docker(&sc, DK_CONTAINER, id) == 1;
  recorded_engine(sock, true);
  (void)scenario_run(&sc, (const char *[]){"--docker-host", none_host, "gc", NULL});
  int left = scenario_count_docker(&sc, DK_CONTAINER, id) + scenario_count_state_files(&sc) +
             scenario_cgroup_exists(&sc, id) + scenario_count_processes(id);
  if (left)
    fprintf(stderr, "chaos: engine down, way %d: session %s left %d things: %s\n", way, id, left, scenario_stderr(&sc));
  return left;
}

Test(faults, engine_down_during_collection_keeps_the_registry_until_it_answers) {
  char sock[160], engine_host[180], none_host[180];
  snprintf(sock, sizeof(sock), "%s/engine.sock", sc.dir);
  snprintf(engine_host, sizeof(engine_host), "unix://%s", sock);
  snprintf(none_host, sizeof(none_host), "unix://%s/none.sock", sc.dir);
  int left = 0, kept = 0, bad = 0;
  for (int t = 0; t < DOWN_TRIALS; t++) {
    bool k = false;
    int way = (int)((t + chaos_rand(3)) % 3);
    int l = engine_down_trial(way, engine_host, none_host, sock, &k);
    left += l > 0;
    kept += k;
    bad += l > 0 || !k;
    cr_expect(k, "trial %d (way %d): the registry did not stay with its reason while the engine was down", t, way);
  }
  chaos_report("engine down during collection (end of run, guardian or kill), then back: one gc collects", DOWN_TRIALS,
               bad,
               "the registry stayed with its reason and the session-labeled container was kept in %d of %d while "
               "the engine was down; gc with another --docker-host collected against the recorded engine",
               kept, DOWN_TRIALS);
  cr_expect_eq(left, 0);
}
