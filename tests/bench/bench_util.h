/* Timing helpers shared by the benchmark programs (not a library: static inline, header only). */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static inline uint64_t bench_now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int bench_cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Median of n samples (sorts v). */
static inline double bench_median(uint64_t *v, size_t n) {
  qsort(v, n, sizeof(*v), bench_cmp_u64);
  return n % 2 ? (double)v[n / 2] : (double)(v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/* The number of lines a shell command prints (docker ps -q ... counts), -1 when it cannot be run. */
static inline int bench_count_lines(const char *cmd) {
  FILE *p = popen(cmd, "r");
  if (!p)
    return -1;
  int n = 0, c;
  while ((c = fgetc(p)) != EOF)
    n += c == '\n';
  return pclose(p) == 0 ? n : -1;
}
