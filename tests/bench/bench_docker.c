/* Benchmarks of docker_api against the real engine (DOCKER_HOST or /var/run/docker.sock); prints a table of medians.
 *   bulk:   removal of N running labeled containers: dk_remove_many vs the docker CLI
 *           (docker rm -f $(docker ps -aq --filter label=...)) vs one-by-one dk_remove (what Ryuk does)
 *   cycles: M sequential create+start+wait+remove through dk_ vs a shell loop of docker run --rm; the client's own
 *           CPU time per cycle is its overhead on top of the engine's work.
 * Usage: bench_docker [--reps R] [--containers N] [--cycles M] [--parallel P] [--docker PATH]
 * Everything created carries the test label (test_label.h) =bench-<random> and is removed before exit. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>

#include "docker.h"
#include "test_label.h"

#define IMAGE "cleanup-test/busybox:latest"

static struct dk_client *cl;
static char run_id[40];
static const char *docker_cli = "/usr/bin/docker"; /* Debian's 20.10 CLI, same version as the engine */

static void die(const char *what, ca_error *e) {
  fprintf(stderr, "bench_docker: %s: %s\n", what, e ? e->msg : "failed");
  exit(1);
}

static double now_ms(void) {
  return (double)ca_now_monotonic_usec() / 1000.0;
}

static double cpu_ms(int who) {
  struct rusage ru;
  getrusage(who, &ru);
  return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000.0 +
         (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000.0;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof(*v), cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- setup: many running containers, created in parallel --------------------------------------------------- */

struct filler {
  struct dk_client *c;
  const char *label;
  int count;
};

static void *fill(void *arg) {
  struct filler *f = arg;
  const char *cmd[] = {"sleep", "3600", NULL};
  const char *labels[] = {f->label, NULL};
  struct dk_container_spec spec = {.image = IMAGE, .cmd = cmd, .labels = labels, .network_mode = "none"};
  for (int i = 0; i < f->count; i++) {
    char *id = NULL;
    ca_error *e = NULL;
    if (dk_container_create(f->c, &spec, &id, &e) < 0 || dk_container_start(f->c, id, &e) < 0)
      die("create a running container", e);
    free(id);
  }
  return NULL;
}

static void make_running(const char *label, int n) {
  enum { THREADS = 8 };
  pthread_t t[THREADS];
  struct filler f[THREADS];
  for (int i = 0; i < THREADS; i++) {
    ca_error *e = NULL;
    f[i] = (struct filler){.label = label, .count = n / THREADS + (i < n % THREADS)};
    if (dk_client_clone(cl, &f[i].c, &e) < 0)
      die("clone", e);
    pthread_create(&t[i], NULL, fill, &f[i]);
  }
  for (int i = 0; i < THREADS; i++) {
    pthread_join(t[i], NULL);
    dk_client_free(f[i].c);
  }
}

static struct dk_list *list_labeled(const char *label) {
  const struct dk_filter filt[] = {{"label", label}, {0}};
  struct dk_list *l = NULL;
  ca_error *e = NULL;
  if (dk_list(cl, DK_CONTAINER, filt, &l, &e) < 0)
    die("list", e);
  return l;
}

/* ---- bulk removal ------------------------------------------------------------------------------------------ */

enum method { M_DK_BULK, M_CLI, M_ONE_BY_ONE, M_COUNT };
static const char *const method_names[] = {"dk_remove_many", "docker rm -f $(docker ps -aq --filter)",
                                           "one-by-one dk_remove"};

static double remove_all(enum method m, const char *label, unsigned parallel) {
  double t0 = now_ms();
  if (m == M_CLI) {
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s rm -f $(%s ps -aq --filter label=%s) > /dev/null", docker_cli, docker_cli, label);
    if (system(cmd) != 0)
      die("docker rm -f", NULL);
    return now_ms() - t0;
  }
  /* listing is part of the job for every method, as in the CLI pipeline */
  struct dk_list *l = list_labeled(label);
  ca_error *e = NULL;
  if (m == M_DK_BULK) {
    const char **ids = calloc(l->n, sizeof(char *));
    ca_error **errs = calloc(l->n, sizeof(ca_error *));
    for (size_t i = 0; i < l->n; i++)
      ids[i] = l->items[i].id;
    if (dk_remove_many(cl, DK_CONTAINER, ids, l->n, parallel, errs, &e) < 0)
      die("bulk remove", e);
    free(ids);
    free(errs);
  } else {
    for (size_t i = 0; i < l->n; i++)
      if (dk_remove(cl, DK_CONTAINER, l->items[i].id, &e) < 0)
        die("remove", e);
  }
  dk_list_free(l);
  return now_ms() - t0;
}

/* ---- cycles ------------------------------------------------------------------------------------------------ */

static double dk_cycles(const char *label, int n, double *ret_cpu_ms) {
  const char *cmd[] = {"true", NULL};
  const char *labels[] = {label, NULL};
  struct dk_container_spec spec = {.image = IMAGE, .cmd = cmd, .labels = labels, .network_mode = "none"};
  double cpu0 = cpu_ms(RUSAGE_SELF), t0 = now_ms();
  for (int i = 0; i < n; i++) {
    char *id = NULL;
    struct dk_wait *w = NULL;
    int code = -1;
    ca_error *e = NULL;
    if (dk_container_create(cl, &spec, &id, &e) < 0 || dk_wait_begin(cl, id, DK_WAIT_NEXT_EXIT, &w, &e) < 0 ||
        dk_container_start(cl, id, &e) < 0 || dk_wait_end(w, NULL, &code, &e) < 0 ||
        dk_remove(cl, DK_CONTAINER, id, &e) < 0)
      die("cycle", e);
    if (code != 0)
      die("cycle: container failed", NULL);
    dk_wait_free(w);
    free(id);
  }
  *ret_cpu_ms = (cpu_ms(RUSAGE_SELF) - cpu0) / n;
  return (now_ms() - t0) / n;
}

static double cli_cycles(const char *label, int n, double *ret_cpu_ms) {
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "for i in $(seq %d); do %s run --rm --network none --label %s " IMAGE " true || exit 1; done", n, docker_cli,
           label);
  double cpu0 = cpu_ms(RUSAGE_CHILDREN), t0 = now_ms();
  if (system(cmd) != 0)
    die("docker run loop", NULL);
  *ret_cpu_ms = (cpu_ms(RUSAGE_CHILDREN) - cpu0) / n;
  return (now_ms() - t0) / n;
}

static void cleanup_all(void) {
  if (!cl)
    return;
  /* every label of this run starts with the run id; list all bench containers by key and match the prefix */
  const struct dk_filter filt[] = {{"label", AG_TEST_LABEL_KEY}, {0}};
  struct dk_list *l = NULL;
  if (dk_list(cl, DK_CONTAINER, filt, &l, NULL) < 0)
    return;
  for (size_t i = 0; i < l->n; i++) {
    const char *v = dk_item_label(&l->items[i], AG_TEST_LABEL_KEY);
    if (v && strncmp(v, run_id, strlen(run_id)) == 0)
      (void)dk_remove(cl, DK_CONTAINER, l->items[i].id, NULL); /* best effort at exit */
  }
  dk_list_free(l);
}

int main(int argc, char **argv) {
  int reps = 3, containers = 200, cycles = 50;
  unsigned parallel = 16;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--reps") == 0)
      reps = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--containers") == 0)
      containers = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--cycles") == 0)
      cycles = atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--parallel") == 0)
      parallel = (unsigned)atoi(argv[i + 1]);
    else if (strcmp(argv[i], "--docker") == 0)
      docker_cli = argv[i + 1];
    else {
      fprintf(stderr, "usage: %s [--reps R] [--containers N] [--cycles M] [--parallel P] [--docker PATH]\n", argv[0]);
      return 2;
    }
  }
  if (reps < 1 || reps > 50 || containers < 1 || cycles < 1) {
    fprintf(stderr, "bench_docker: bad arguments\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  ca_error *e = NULL;
  if (dk_global_init(&e) < 0 || dk_client_new(NULL, &cl, &e) < 0)
    die("connect", e);
  unsigned char rnd[8];
  if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
    die("getrandom", NULL);
  snprintf(run_id, sizeof(run_id), "bench-%02x%02x%02x%02x%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
           rnd[5], rnd[6], rnd[7]);
  atexit(cleanup_all);

  double bulk[M_COUNT][50];
  for (int r = 0; r < reps; r++)
    for (int m = 0; m < M_COUNT; m++) {
      char label[96];
      snprintf(label, sizeof(label), AG_TEST_LABEL_KEY "=%s-bulk-%d-%d", run_id, r, m);
      make_running(label, containers);
      struct dk_list *l = list_labeled(label);
      if (l->n != (size_t)containers)
        die("setup: wrong number of containers", NULL);
      dk_list_free(l);
      bulk[m][r] = remove_all((enum method)m, label, parallel);
      l = list_labeled(label);
      if (l->n != 0)
        die("removal left containers behind", NULL);
      dk_list_free(l);
      fprintf(stderr, "rep %d: %s: %.0f ms\n", r + 1,
              m == M_CLI       ? "cli"
              : m == M_DK_BULK ? "bulk"
                               : "one-by-one",
              bulk[m][r]);
    }

  double dk_wall[50], dk_cpu[50], cli_wall[50], cli_cpu[50];
  for (int r = 0; r < reps; r++) {
    char label[96];
    snprintf(label, sizeof(label), AG_TEST_LABEL_KEY "=%s-cycle-%d", run_id, r);
    dk_wall[r] = dk_cycles(label, cycles, &dk_cpu[r]);
    cli_wall[r] = cli_cycles(label, cycles, &cli_cpu[r]);
    fprintf(stderr, "rep %d: cycles: dk %.1f ms (cpu %.2f), cli %.1f ms (cpu %.2f)\n", r + 1, dk_wall[r], dk_cpu[r],
            cli_wall[r], cli_cpu[r]);
  }

  _cleanup_free_ char *version = NULL, *os = NULL;
  if (dk_engine_version(cl, &version, &os, &e) < 0)
    die("version", e);
  printf("\nengine %s (API %s), CLI %s, %d repetitions, medians\n\n", version, dk_client_api_version(cl), docker_cli,
         reps);
  printf("| bulk removal of %d running containers | median ms | vs one-by-one |\n", containers);
  printf("| --- | ---: | ---: |\n");
  double med[M_COUNT];
  for (int m = 0; m < M_COUNT; m++)
    med[m] = median(bulk[m], reps);
  for (int m = 0; m < M_COUNT; m++) {
    char name[96];
    if (m == M_DK_BULK)
      snprintf(name, sizeof(name), "%s (parallel %u)", method_names[m], parallel);
    else
      snprintf(name, sizeof(name), "%s", method_names[m]);
    printf("| %s | %.0f | %.2fx |\n", name, med[m], med[M_ONE_BY_ONE] / med[m]);
  }
  printf("\n| %d create+start+wait+remove cycles | median ms per cycle | client CPU ms per cycle |\n", cycles);
  printf("| --- | ---: | ---: |\n");
  printf("| dk_ (one client, wait armed before start) | %.1f | %.2f |\n", median(dk_wall, reps), median(dk_cpu, reps));
  printf("| shell loop of docker run --rm | %.1f | %.2f |\n", median(cli_wall, reps), median(cli_cpu, reps));
  printf("\ndk_ bulk vs CLI: %.2fx faster; dk_ bulk vs one-by-one: %.2fx faster; dk_ per cycle %.1f ms less than "
         "the CLI loop\n",
         med[M_CLI] / med[M_DK_BULK], med[M_ONE_BY_ONE] / med[M_DK_BULK],
         median(cli_wall, reps) - median(dk_wall, reps));
  dk_client_free(cl);
  cl = NULL;
  return 0;
}
