#include "fake_systemd.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <systemd/sd-id128.h>
#include <unistd.h>

#include "macro.h"

/* The units StartTransientUnit loaded (the fake serves one test at a time). */
static char loaded[8][256];

static bool is_loaded(const char *unit) {
  for (size_t i = 0; i < ELEMENTSOF(loaded); i++)
    if (streq(loaded[i], unit))
      return true;
  return false;
}

static int fake_manager_call(sd_bus_message *m, void *userdata, sd_bus_error *error) {
  (void)error;
  const char *member = sd_bus_message_get_member(m), *unit = "";
  (void)sd_bus_message_read(m, "s", &unit);
  fprintf(userdata, "%s %s\n", member, unit);
  fflush(userdata);
  const char *job = "/org/freedesktop/systemd1/job/1";
  /* As systemd 252 does: a loaded unit's kill and stop are done; for a unit it has not loaded, KillUnit refuses it
   * and StopUnit loads it (a slice needs no unit file) and queues a stop, which leaves a directory it never made. */
  if (streq(member, "StopUnit") || (streq(member, "KillUnit") && is_loaded(unit)))
    return sd_bus_reply_method_return(m, "o", job);
  if (!streq(member, "StartTransientUnit"))
    return sd_bus_reply_method_errorf(m, "org.freedesktop.systemd1.NoSuchUnit", "Unit %s not loaded.", unit);
  for (size_t i = 0; i < ELEMENTSOF(loaded); i++)
    if (!loaded[i][0]) {
      snprintf(loaded[i], sizeof(loaded[i]), "%s", unit);
      break;
    }
  sd_bus_reply_method_return(m, "o", job);
  return sd_bus_emit_signal(sd_bus_message_get_bus(m), "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager",
                            "JobRemoved", "uoss", 1u, job, unit, "timeout");
}

static _Noreturn void fake_manager(int fd, const char *log_path) {
  FILE *log = fopen(log_path, "w");
  sd_bus *bus = NULL;
  sd_id128_t id;
  if (!log || sd_id128_randomize(&id) < 0 || sd_bus_new(&bus) < 0 || sd_bus_set_fd(bus, fd, fd) < 0 ||
      sd_bus_set_server(bus, 1, id) < 0 || sd_bus_start(bus) < 0 ||
      sd_bus_add_object(bus, NULL, "/org/freedesktop/systemd1", fake_manager_call, log) < 0)
    _exit(1);
  for (int r = 0; r >= 0;)
    if ((r = sd_bus_process(bus, NULL)) == 0)
      r = sd_bus_wait(bus, UINT64_MAX);
  _exit(0);
}

pid_t fake_systemd_start(const char *log_path, sd_bus **ret_bus) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  pid_t server = fork();
  cr_assert_geq(server, 0);
  if (server == 0) {
    close(sv[0]);
    fake_manager(sv[1], log_path);
  }
  close(sv[1]);
  sd_bus *bus = NULL;
  cr_assert(sd_bus_new(&bus) == 0 && sd_bus_set_fd(bus, sv[0], sv[0]) == 0 && sd_bus_start(bus) == 0);
  *ret_bus = bus;
  return server;
}

bool fake_systemd_wait(pid_t pid) {
  int status;
  return waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
