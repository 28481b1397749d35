#include <time.h>

#include "common.h"

static uint64_t now_usec(clockid_t clock) {
  struct timespec ts;
  (void)clock_gettime(clock, &ts); /* cannot fail for these clocks */
  return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t ca_now_monotonic_usec(void) {
  return now_usec(CLOCK_MONOTONIC);
}

uint64_t ca_now_realtime_usec(void) {
  return now_usec(CLOCK_REALTIME);
}
