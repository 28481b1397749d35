/* A private Docker engine for a scenario (tests/docker_api/private_engine.h). The suites that run gc use it: gc sees
 * every session-labeled resource of its engine, and on the shared one that includes a developer's real leftovers and
 * what other suites stage, which no test may collect. */
#pragma once

#include "scenario.h"

/* Starts a dockerd of its own under <dir>/engine, copies the test image into it from the shared engine, and points
 * s->dk and every later scenario_start (--docker-host) at it. */
void scenario_private_engine_start(struct scenario *s);
/* The same with more dockerd arguments (NULL-terminated): another cgroup driver, say. */
void scenario_private_engine_start_with(struct scenario *s, const char *const *extra);
/* Removes every container of the private engine, stops it and removes its files; nothing when there is none. Call it
 * before scenario_teardown. */
void scenario_private_engine_stop(struct scenario *s);
