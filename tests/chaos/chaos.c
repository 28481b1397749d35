#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chaos.h"
#include "cli_run.h"
#include "session.h"

static uint64_t prng_state;
static bool prng_seeded;

uint64_t chaos_seed(void) {
  static uint64_t seed;
  if (!prng_seeded) {
    const char *env = getenv("CHAOS_SEED");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    seed = env && *env ? strtoull(env, NULL, 0) : (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec;
    prng_state = seed;
    prng_seeded = true;
    fprintf(stderr, "chaos: seed %llu (replay with CHAOS_SEED=%llu)\n", (unsigned long long)seed,
            (unsigned long long)seed);
  }
  return seed;
}

/* splitmix64: tiny, and the same sequence for the same seed everywhere. */
uint64_t chaos_rand(uint64_t n) {
  (void)chaos_seed();
  uint64_t z = (prng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return n ? z % n : 0;
}

void chaos_report(const char *scenario, int trials, int left, const char *fmt, ...) {
  char note[512] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(note, sizeof(note), fmt, ap);
    va_end(ap);
  }
  char line[1024];
  snprintf(line, sizeof(line), "chaos: %s: %d trials, %d left something behind%s%s (seed %llu)\n", scenario, trials,
           left, *note ? "; " : "", note, (unsigned long long)chaos_seed());
  fputs(line, stderr);
  const char *path = getenv("CHAOS_RESULTS");
  if (path && *path) {
    FILE *f = fopen(path, "a");
    cr_assert_not_null(f, "CHAOS_RESULTS=%s cannot be opened", path);
    fputs(line, f);
    fclose(f);
  }
}

/* Label filters that select a trial's engine objects: its test label, or its agent's owner labels. */
static int count_kind(struct scenario *s, enum dk_kind kind, const struct chaos_owner *owner, bool remove) {
  struct dk_filter by_test[] = {{"label", s->test_label}, {NULL, NULL}};
  struct dk_filter by_owner[] = {
      {"label", owner ? owner->pid_label : ""}, {"label", owner ? owner->start_label : ""}, {NULL, NULL}};
  const struct dk_filter *sets[] = {by_test, owner && *owner->pid_label ? by_owner : NULL};
  int n = 0;
  for (size_t k = 0; k < 2; k++) {
    if (!sets[k])
      continue;
    struct dk_list *l = NULL;
    _cleanup_error_ ca_error *err = NULL;
    cr_assert_eq(dk_list(s->dk, kind, sets[k], &l, &err), 0, "list: %s", err ? err->msg : "");
    n += (int)l->n;
    for (size_t i = 0; remove && i < l->n; i++)
      (void)dk_remove(s->dk, kind, l->items[i].id, NULL); /* the count above already said it was left */
    dk_list_free(l);
  }
  return n;
}

static int count_dirs(const char *path) {
  DIR *d = opendir(path);
  if (!d)
    return 0;
  struct dirent *de;
  int n = 0;
  while ((de = readdir(d)))
    n += de->d_type == DT_DIR && de->d_name[0] != '.';
  closedir(d);
  return n;
}

static int count_shm(const char *tag) {
  char pattern[128];
  snprintf(pattern, sizeof(pattern), "/dev/shm/chaos-%s*", tag);
  glob_t g;
  int n = glob(pattern, 0, NULL, &g) == 0 ? (int)g.gl_pathc : 0;
  globfree(&g);
  return n;
}

void chaos_count_left(struct scenario *s, const char *tag, const struct chaos_owner *owner, struct chaos_left *ret) {
  char entry[96];
  snprintf(entry, sizeof(entry), "CHAOS_TAG=%s", tag);
  *ret = (struct chaos_left){
      .processes = cli_count_env_processes(entry),
      .containers = count_kind(s, DK_CONTAINER, owner, false),
      .networks = count_kind(s, DK_NETWORK, owner, false),
      .volumes = count_kind(s, DK_VOLUME, owner, false),
      .cgroups = count_dirs(s->cgroup_root),
      .state_files = scenario_count_state_files(s),
      .shm = count_shm(tag),
  };
}

int chaos_left_total(const struct chaos_left *l) {
  return l->processes + l->containers + l->networks + l->volumes + l->cgroups + l->state_files + l->shm;
}

const char *chaos_left_describe(const struct chaos_left *l, char *buf, size_t len) {
  const struct {
    int n;
    const char *what;
  } parts[] = {{l->processes, "processes"},  {l->containers, "containers"}, {l->networks, "networks"},
               {l->volumes, "volumes"},      {l->cgroups, "cgroups"},       {l->state_files, "state files"},
               {l->shm, "/dev/shm segments"}};
  size_t n = 0;
  buf[0] = '\0';
  for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]) && n < len; i++)
    if (parts[i].n)
      n += (size_t)snprintf(buf + n, len - n, "%s%d %s", n ? ", " : "", parts[i].n, parts[i].what);
  return buf;
}

void chaos_sweep(struct scenario *s, const char *tag, const struct chaos_owner *owner) {
  char entry[96];
  snprintf(entry, sizeof(entry), "CHAOS_TAG=%s", tag);
  pid_t pids[512];
  int n = cli_find_env_processes(entry, pids, 512);
  for (int i = 0; i < n && i < 512; i++)
    kill(pids[i], SIGKILL); /* found through the trial's tag in their environment */
  enum dk_kind kinds[] = {DK_CONTAINER, DK_NETWORK, DK_VOLUME};
  for (size_t k = 0; k < 3; k++)
    (void)count_kind(s, kinds[k], owner, true);
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "rm -f %s/sessions/* /dev/shm/chaos-%s*; for d in %s/*/; do [ -d \"$d\" ] || continue; "
           "echo 1 > \"$d/cgroup.kill\" 2>/dev/null; sleep 0.2; rmdir \"$d\"; done",
           s->state, tag, s->cgroup_root);
  int rc = system(cmd);
  (void)rc; /* the leftover count already failed the trial; this only lets the next one start clean */
}

void chaos_owner_of(pid_t pid, uint64_t start, struct chaos_owner *ret) {
  snprintf(ret->pid_label, sizeof(ret->pid_label), AG_LABEL_OWNER_PID "=%d", (int)pid);
  snprintf(ret->start_label, sizeof(ret->start_label), AG_LABEL_OWNER_START "=%llu", (unsigned long long)start);
}

void chaos_sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0)
    ;
}

bool chaos_cgroup_kill(const char *cgroup, int timeout_ms) {
  char path[512];
  snprintf(path, sizeof(path), "%s/cgroup.kill", cgroup);
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, "1", 1) != 1) {
    if (fd >= 0)
      close(fd);
    return false;
  }
  close(fd);
  snprintf(path, sizeof(path), "%s/cgroup.events", cgroup);
  for (int waited = 0; waited <= timeout_ms; waited += 20) {
    if (strstr(scenario_read_text(path), "populated 0"))
      return true;
    chaos_sleep_ms(20);
  }
  return false;
}

void chaos_job_cgroup(const struct scenario *s, const char *name, char *ret, size_t len) {
  /* Next to the scenario's cgroup root, on the same cgroup2 mount. */
  const char *slash = strrchr(s->cgroup_root, '/');
  snprintf(ret, len, "%.*s/%s", (int)(slash - s->cgroup_root), s->cgroup_root, name);
  cr_assert(mkdir(ret, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", ret, strerror(errno));
}
