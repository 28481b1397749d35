/* Creates in flight: how a guardian knows, once its agent died, whether a create the session sent to the engine may
 * still land there after the guardian's collection (guardian.c watches for such late creates only then). The agent
 * maps one page shared before it forks the guardian, so that the guardian reads what the agent counted until it died;
 * the proxy and container-seq count each create from the moment it is sent until its answer was read. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>

struct ag_creates {
  atomic_uint in_flight;   /* creates sent to the engine whose answer was not read yet */
  atomic_bool all_counted; /* every way to the engine the session gave its command counts its creates (the proxy) */
};

/* This agent's session's page; NULL without a guardian (the proxy's own tests, its fuzz target). A weak definition in
 * every file that includes this header, which the linker makes one: the proxy needs nothing else linked in. */
__attribute__((weak)) struct ag_creates *ag_creates_current = NULL;

/* A create is sent to the engine. */
static inline void ag_creates_begin(void) {
  if (ag_creates_current)
    atomic_fetch_add(&ag_creates_current->in_flight, 1);
}

/* A create's answer was read; never below 0. A create whose answer never comes (its connection went, a timeout) stays
 * counted: the engine may still make it. */
static inline void ag_creates_end(void) {
  unsigned n = ag_creates_current ? atomic_load(&ag_creates_current->in_flight) : 0;
  while (n > 0 && !atomic_compare_exchange_weak(&ag_creates_current->in_flight, &n, n - 1))
    ;
}
