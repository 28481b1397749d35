/* A second dockerd that a test starts and stops itself (own data root, exec root, pid file and socket under a temp
 * dir), for faults such as an engine restart; the shared engine is never touched. */
#pragma once

#include <sys/types.h>

/* Starts dockerd with its files under dir and its socket at host ("unix://<dir>/docker.sock"); returns its pid once
 * it answers (fails the test after 30 s; its log is <dir>/dockerd.log). */
pid_t private_engine_start(const char *dir, const char *host);
/* The same with more dockerd arguments (NULL-terminated): another listener (-H tcp://...) with TLS, say. */
pid_t private_engine_start_with(const char *dir, const char *host, const char *const *extra);
/* Moves the calling process into a network namespace of its own with its loopback up: a test that makes network
 * devices, or that reaches a private engine over TCP (which then shares the caller's namespace), never touches the
 * host's. */
void private_engine_own_network(void);
/* Stops it (SIGTERM, then SIGKILL after 30 s) and sets *pid to -1; nothing when *pid <= 0. */
void private_engine_stop(pid_t *pid);
