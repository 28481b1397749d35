/* Benchmark of `cleanup-agent container-seq` (not a ctest test: prints a markdown table).
 *
 *   bench_container_seq [FILES] [REPS]     defaults: 50 files, 3 repetitions
 *
 * FILES test files whose body is `true`, run one container each with the same image, limits (64M memory and swap,
 * 1 CPU, 64 pids), network none and read-only bind mount, two ways:
 *   - a shell loop of `/usr/bin/docker run --rm` (Debian's 20.10 CLI, the engine's own version), one file at a time;
 *   - `cleanup-agent container-seq`, which creates the next container and removes the last one while a test runs.
 * Each way runs REPS times, alternating, after one warm-up run each; the table shows medians and the speed-up
 * (target >= 1.15x). The agent binary comes from AG_BINARY (compiled in) or $CLEANUP_AGENT. Run as root with an
 * engine and the cleanup-test/busybox:latest image. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

#define IMAGE "cleanup-test/busybox:latest"
#define DOCKER_CLI "/usr/bin/docker"
#define BENCH_LABEL "io.cleanup-agent.bench=container-seq"

static char dir[64];

static double median_s(uint64_t *v, size_t n) {
  return bench_median(v, n) / 1e9;
}

static int count_left(void) {
  return bench_count_lines(DOCKER_CLI " ps -aq --filter label=" BENCH_LABEL);
}

int main(int argc, char **argv) {
  size_t files = argc > 1 ? strtoul(argv[1], NULL, 10) : 50, reps = argc > 2 ? strtoul(argv[2], NULL, 10) : 3;
  const char *agent = getenv("CLEANUP_AGENT");
#ifdef AG_BINARY
  if (!agent)
    agent = AG_BINARY;
#endif
  if (!agent || files == 0 || files > 1000 || reps == 0) {
    fprintf(stderr, "usage: bench_container_seq [FILES (1-1000)] [REPS]; agent from $CLEANUP_AGENT\n");
    return 2;
  }
  strcpy(dir, "/tmp/ag-bench-seq-XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  char path[256], state[128], mount[128];
  snprintf(state, sizeof(state), "%s/state", dir);
  snprintf(mount, sizeof(mount), "%s/t:/w:ro", dir);
  snprintf(path, sizeof(path), "%s/t", dir);
  mkdir(path, 0755);
  char **names = calloc(files, sizeof(char *));
  for (size_t i = 0; i < files; i++) {
    if (asprintf(&names[i], "t%03zu.sh", i + 1) < 0)
      return 1;
    snprintf(path, sizeof(path), "%s/t/%s", dir, names[i]);
    FILE *f = fopen(path, "w");
    fputs("true\n", f);
    fclose(f);
  }

  /* The shell loop a suite runner would write, with the same limits and isolation. */
  char loop[128];
  snprintf(loop, sizeof(loop), "%s/loop.sh", dir);
  FILE *f = fopen(loop, "w");
  fprintf(f,
          "#!/bin/sh\ncd %s/t || exit 1\nfor f in t*.sh; do\n"
          "  " DOCKER_CLI " run --rm --network none --memory 64M --memory-swap 64M --cpus 1 --pids-limit 64 "
          "--label " BENCH_LABEL " -v %s/t:/w:ro -w /w " IMAGE " sh \"$f\" || exit 1\n"
          "done\n",
          dir, dir);
  fclose(f);
  chmod(loop, 0755);
  char *loop_argv[] = {loop, NULL};

  char **seq_argv = calloc(files + 32, sizeof(char *));
  size_t n = 0;
  const char *head[] = {agent,       "--state-dir", state,       "container-seq", "--image", IMAGE,     "--memory",
                        "64M",       "--cpus",      "1",         "--pids",        "64",      "--mount", mount,
                        "--workdir", "/w",          "--network", "none"};
  for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++)
    seq_argv[n++] = (char *)head[i];
  for (size_t i = 0; i < files; i++)
    seq_argv[n++] = names[i];
  seq_argv[n++] = (char *)"--";
  seq_argv[n++] = (char *)"sh";
  seq_argv[n++] = (char *)"{}";
  seq_argv[n] = NULL;

  uint64_t *t_loop = calloc(reps, sizeof(uint64_t)), *t_seq = calloc(reps, sizeof(uint64_t));
  int code;
  /* Warm-up: image layers, page cache, the engine's first-create costs. */
  bench_run_quiet((const char *const *)loop_argv, NULL, &code, NULL);
  bench_run_quiet((const char *const *)seq_argv, NULL, &code, NULL);
  for (size_t r = 0; r < reps; r++) {
    t_loop[r] = bench_run_quiet((const char *const *)loop_argv, NULL, &code, NULL);
    if (code != 0) {
      fprintf(stderr, "bench_container_seq: the docker run loop exited %d\n", code);
      return 1;
    }
    t_seq[r] = bench_run_quiet((const char *const *)seq_argv, NULL, &code, NULL);
    if (code != 0) {
      fprintf(stderr, "bench_container_seq: container-seq exited %d\n", code);
      return 1;
    }
  }
  double loop_s = median_s(t_loop, reps), seq_s = median_s(t_seq, reps);
  int left = count_left();

  printf("\n### %zu test files running `true`, one container each (median of %zu runs)\n\n", files, reps);
  printf("| runner | total | per file | speed-up | target |\n|---|---|---|---|---|\n");
  printf("| shell loop of `%s run --rm` | %.2f s | %.0f ms | 1.00x | - |\n", DOCKER_CLI, loop_s,
         loop_s * 1000 / (double)files);
  printf("| `cleanup-agent container-seq` | %.2f s | %.0f ms | %.2fx | >= 1.15x |\n", seq_s,
         seq_s * 1000 / (double)files, loop_s / seq_s);
  printf("\nSame image, limits (--memory 64M, no swap, --cpus 1, --pids 64), network none and read-only bind mount. "
         "Containers left by the loop: %d.\nReproduce: `build/tests/bench/bench_container_seq %zu %zu` (as root, "
         "engine running).\n",
         left, files, reps);

  char cmd[160];
  snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
  if (system(cmd) != 0)
    fprintf(stderr, "bench_container_seq: cannot remove %s\n", dir);
  for (size_t i = 0; i < files; i++)
    free(names[i]);
  free(names);
  free(seq_argv);
  free(t_loop);
  free(t_seq);
  return left == 0 ? 0 : 1;
}
