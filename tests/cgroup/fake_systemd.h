/* A fake systemd manager for the cgroup tests, on the other end of a direct connection (as systemd's private socket):
 * it logs each call's method and first argument, one line each, answers StartTransientUnit with a job whose JobRemoved
 * says "timeout" (a start whose job wait failed: the unit may be up all the same), and anything else with NoSuchUnit
 * (a unit it does not have). */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

/* Forks the manager, logging to log_path; *ret_bus is the caller's end. Returns the manager's pid. */
pid_t fake_systemd_start(const char *log_path, sd_bus **ret_bus);
/* Waits for the manager, which exits once the caller's end is closed; true when it exited 0. */
bool fake_systemd_wait(pid_t pid);
