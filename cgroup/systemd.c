/* The systemd cgroup driver: where systemd is PID 1 it owns the cgroup tree ("one writer per subtree", systemd's
 * "Control Group APIs and Delegation"), so the module asks it over D-Bus for a transient scope per session in a
 * slice of ours, with Delegate=yes and the limits as unit properties, and writes only inside that scope's cgroup
 * (cgroup.kill, cgroup.procs through CLONE_INTO_CGROUP, sub-cgroups of a nested session), as runc and crun do.
 *
 * A scope needs a process to exist: a holder, a child that only waits on a pipe (and dies with the agent), is put in
 * it first and then moved to the scope's sub-cgroup "holder", where it keeps the scope until cg_leaf_remove: systemd
 * stops a scope and removes its cgroup as soon as it is empty, and the agent still reads the stats (the OOM report)
 * and kills the rest of the tree after the command ended. A kill through cgroup.kill takes the holder too, so the
 * scope may go while the agent still works on it: the kill takes a gone leaf as empty (kill.c), which it is.
 * CollectMode=inactive-or-failed unloads the scope even after an OOM kill failed it. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <systemd/sd-bus.h>
#include <unistd.h>

#include "cgroup-internal.h"

#define SD_DEST "org.freedesktop.systemd1"
#define SD_PATH "/org/freedesktop/systemd1"
#define SD_MANAGER SD_DEST ".Manager"
/* How long systemd may take to start a scope (a loaded PID 1 takes a few ms). */
#define JOB_TIMEOUT_USEC (20 * 1000000ULL)

static enum cg_driver default_driver = CG_DRIVER_AUTO;

const char *cg_driver_name(enum cg_driver driver) {
  return driver == CG_DRIVER_SYSTEMD ? "systemd" : driver == CG_DRIVER_CGROUPFS ? "cgroupfs" : "auto";
}

int cg_driver_parse(const char *text, enum cg_driver *ret, ca_error **err) {
  static const enum cg_driver all[] = {CG_DRIVER_AUTO, CG_DRIVER_SYSTEMD, CG_DRIVER_CGROUPFS};
  for (size_t i = 0; text && i < ELEMENTSOF(all); i++)
    if (streq(text, cg_driver_name(all[i]))) {
      *ret = all[i];
      return 0;
    }
  return ca_error_set(err, EINVAL, "unknown cgroup driver '%s': use auto, systemd or cgroupfs", text ? text : "");
}

void cg_driver_set_default(enum cg_driver driver) {
  default_driver = driver;
}

enum cg_driver cg_driver_wanted(enum cg_driver driver) {
  return driver == CG_DRIVER_AUTO ? default_driver : driver;
}

bool cg_systemd_booted(const char *systemd_dir) {
  struct stat st;
  return lstat(systemd_dir ? systemd_dir : "/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode);
}

enum cg_driver cg_driver_resolve(enum cg_driver wanted, bool systemd_booted, bool unified, bool root_given,
                                 bool in_delegated) {
  wanted = cg_driver_wanted(wanted);
  if (root_given)
    return CG_DRIVER_CGROUPFS;
  if (wanted != CG_DRIVER_AUTO)
    return wanted;
  return systemd_booted && unified && !in_delegated ? CG_DRIVER_SYSTEMD : CG_DRIVER_CGROUPFS;
}

bool cg_dir_delegated(const char *dir) {
  char v[8];
  ssize_t n = getxattr(dir, "trusted.delegate", v, sizeof(v));
  if (n <= 0)
    n = getxattr(dir, "user.delegate", v, sizeof(v));
  if (n == 1 && v[0] == '1')
    return true;
  /* trusted.* cannot be read without CAP_SYS_ADMIN: for an unprivileged caller, a cgroup it owns (directory and
   * cgroup.procs, as systemd chowns a delegated one) is its to manage. For root ownership says nothing, and neither
   * does it inside the caller's own user manager, which owns (and writes) every cgroup of its subtree. */
  uid_t uid = geteuid();
  char procs[PATH_MAX], manager[64];
  struct stat d, p;
  snprintf(procs, sizeof(procs), "%s/cgroup.procs", dir);
  snprintf(manager, sizeof(manager), "/user@%u.service/", (unsigned)uid);
  return uid != 0 && !strstr(dir, manager) && stat(dir, &d) == 0 && stat(procs, &p) == 0 && d.st_uid == uid &&
         p.st_uid == uid;
}

/* The limits as unit properties into ret; how many. TasksMax counts the holder of the scope below. */
static size_t limit_properties(const cg_limits *limits, cg_unit_prop *ret) {
  size_t n = 0;
  if (limits && limits->memory_max) {
    ret[n++] = (cg_unit_prop){.name = "MemoryMax", .type = 't', .u = limits->memory_max};
    ret[n++] = (cg_unit_prop){.name = "MemorySwapMax", .type = 't', .u = 0}; /* swap off, as cgroupfs does */
  }
  if (limits && limits->pids_max) /* and one for the holder */
    ret[n++] = (cg_unit_prop){.name = "TasksMax", .type = 't', .u = limits->pids_max + 1};
  if (limits && limits->cpus > 0) {
    /* CPUQuota= as the bus carries it: CPU time per second of wall time. At least 1 ms, as cgroupfs. */
    uint64_t usec = (uint64_t)llround(limits->cpus * 1000000.0);
    ret[n++] = (cg_unit_prop){.name = "CPUQuotaPerSecUSec", .type = 't', .u = CA_MAX(usec, (uint64_t)10000)};
  }
  return n;
}

/* Accounting on: the controllers the stats read (memory.events for the OOM report, pids.events, cpu.stat). */
static size_t accounting_properties(cg_unit_prop *ret) {
  ret[0] = (cg_unit_prop){.name = "MemoryAccounting", .type = 'b', .u = 1};
  ret[1] = (cg_unit_prop){.name = "TasksAccounting", .type = 'b', .u = 1};
  ret[2] = (cg_unit_prop){.name = "CPUAccounting", .type = 'b', .u = 1};
  return 3;
}

size_t cg_scope_properties(const char *slice, const char *description, const cg_limits *limits, pid_t holder,
                           cg_unit_prop ret[static CG_SCOPE_PROPS_MAX]) {
  size_t n = 0;
  ret[n++] = (cg_unit_prop){.name = "Description", .type = 's', .s = description};
  ret[n++] = (cg_unit_prop){.name = "Slice", .type = 's', .s = slice};
  ret[n++] = (cg_unit_prop){.name = "Delegate", .type = 'b', .u = 1};
  ret[n++] = (cg_unit_prop){.name = "CollectMode", .type = 's', .s = "inactive-or-failed"};
  n += accounting_properties(ret + n);
  n += limit_properties(limits, ret + n);
  ret[n++] = (cg_unit_prop){.name = "PIDs", .type = 'u', .u = (uint64_t)holder};
  return n;
}

size_t cg_slice_properties(const char *description, const cg_limits *limits,
                           cg_unit_prop ret[static CG_SCOPE_PROPS_MAX]) {
  size_t n = 0;
  ret[n++] = (cg_unit_prop){.name = "Description", .type = 's', .s = description};
  ret[n++] = (cg_unit_prop){.name = "CollectMode", .type = 's', .s = "inactive-or-failed"};
  n += accounting_properties(ret + n);
  return n + limit_properties(limits, ret + n);
}

int cg_session_slice_name(const char *parent, const char *id, char *ret, size_t size) {
  size_t len = parent ? strlen(parent) : 0;
  if (len <= 6 || !streq(parent + len - 6, ".slice") || parent[0] == '-')
    return -EINVAL;
  int n = snprintf(ret, size, "%.*s-%s.slice", (int)(len - 6), parent, id);
  return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* "<what>: <bus error or errno>", one line. */
static int bus_error(ca_error **err, int r, const sd_bus_error *e, const char *what) {
  if (e && sd_bus_error_is_set(e))
    return ca_error_set(err, -r, "%s: %s", what, e->message ? e->message : e->name);
  return ca_error_set(err, -r, "%s: %s", what, strerror(-r));
}

/* The user manager's bus ($DBUS_SESSION_BUS_ADDRESS, else <runtime dir>/bus) and its private socket (<runtime
 * dir>/systemd/private, there without dbus-user-session); the runtime dir is $XDG_RUNTIME_DIR, else /run/user/<uid>
 * (a runner service has no XDG_RUNTIME_DIR). */
static void user_bus_addresses(char *bus, char *private, size_t size) {
  const char *env = getenv("DBUS_SESSION_BUS_ADDRESS");
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  char dir[PATH_MAX / 2];
  if (xdg && *xdg)
    snprintf(dir, sizeof(dir), "%s", xdg);
  else
    snprintf(dir, sizeof(dir), "/run/user/%u", (unsigned)geteuid());
  if (env && *env)
    snprintf(bus, size, "%s", env);
  else
    snprintf(bus, size, "unix:path=%s/bus", dir);
  snprintf(private, size, "unix:path=%s/systemd/private", dir);
}

static int bus_connect(const char *address, bool client, sd_bus **ret) {
  sd_bus *bus = NULL;
  int r = sd_bus_new(&bus);
  if (r >= 0 && (r = sd_bus_set_address(bus, address)) >= 0 && (r = sd_bus_set_bus_client(bus, client)) >= 0 &&
      (r = sd_bus_start(bus)) >= 0) {
    *ret = bus;
    return 0;
  }
  sd_bus_unref(bus);
  return r;
}

/* The system bus as root, the user manager's otherwise; else the manager's private socket (a direct connection:
 * a host without dbus-daemon, a user without dbus-user-session). */
static int open_bus(const cg_root_options *opts, sd_bus **ret, ca_error **err) {
  char address[PATH_MAX], private[PATH_MAX] = "";
  if (opts->bus_address)
    snprintf(address, sizeof(address), "%s", opts->bus_address);
  else if (geteuid() == 0) {
    snprintf(address, sizeof(address), "unix:path=/run/dbus/system_bus_socket");
    snprintf(private, sizeof(private), "unix:path=/run/systemd/private");
  } else
    user_bus_addresses(address, private, sizeof(address));
  int r = bus_connect(address, true, ret);
  if (r < 0 && private[0] && bus_connect(private, false, ret) == 0)
    return 0;
  if (r < 0)
    return ca_error_set(err, -r, "no systemd %s manager bus at %s%s%s (%s)", geteuid() == 0 ? "system" : "user",
                        address, private[0] ? " or " : "", private + (private[0] ? 10 : 0), strerror(-r));
  return 0;
}

/* A user manager can take only processes of its own tree into a scope (the kernel asks for write access to the
 * common ancestor's cgroup.procs): 1 with *err saying so when the caller runs outside manager (a login session's
 * scope, a system service with User=), else 0. */
static int check_inside_manager(const cg_root *root, const char *manager, ca_error **err) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/self/cgroup", root->proc);
  _cleanup_free_ char *text = NULL;
  _cleanup_(cg_proc_cgroup_done) cg_proc_cgroup own = {0};
  if (geteuid() == 0 || ca_read_file(path, CG_SMALL_FILE_MAX * 4, &text, NULL, NULL) < 0 ||
      cg_parse_proc_cgroup(text, &own, NULL) < 0 || !own.unified || cg_rel_is_inside(own.unified, manager))
    return 0;
  ca_error_set(err, EPERM,
               "the agent runs in %s, outside the tree of its systemd user manager (%s), which cannot "
               "take its processes",
               own.unified, manager);
  return 1;
}

int cg_systemd_open(cg_root *root, const cg_root_options *opts, ca_error **err) {
  if (!opts->slice || !opts->unit_prefix)
    return ca_error_set(err, EINVAL, "cgroup: the systemd driver needs a slice and a unit prefix");
  if (!(root->slice = strdup(opts->slice)) || !(root->unit_prefix = strdup(opts->unit_prefix)))
    return ca_error_set(err, ENOMEM, "out of memory");
  root->session_slices = opts->one_path; /* the engine's systemd driver takes a slice as a containers' parent */
  if (open_bus(opts, &root->bus, err) < 0)
    return 1;
  if (root->mode != CG_MODE_UNIFIED) {
    ca_error_set(err, ENOTSUP, "the systemd cgroup driver needs a pure cgroup v2 host, and this one is %s",
                 cg_mode_name(root->mode));
    return 1;
  }
  /* The manager's own cgroup: "" for the system manager, user@<uid>.service's for a user manager. */
  sd_bus_error e = SD_BUS_ERROR_NULL;
  _cleanup_free_ char *mgr = NULL;
  int r = sd_bus_get_property_string(root->bus, SD_DEST, SD_PATH, SD_MANAGER, "ControlGroup", &e, &mgr);
  if (r < 0) {
    bus_error(err, r, &e, "cannot ask systemd for its control group");
    sd_bus_error_free(&e);
    return 1;
  }
  if (check_inside_manager(root, mgr, err))
    return 1;
  if (!(root->track_mount = strdup(root->mounts.unified)) ||
      asprintf(&root->path, "%s%s/%s", root->mounts.unified, streq(mgr, "/") ? "" : mgr, opts->slice) < 0) {
    root->path = NULL;
    return ca_error_set(err, ENOMEM, "out of memory");
  }
  root->track_is_v2 = true;
  /* What systemd can enable for the scopes: the controllers of its own cgroup. */
  char avail[256] = "", dir[PATH_MAX];
  snprintf(dir, sizeof(dir), "%s%s", root->mounts.unified, mgr);
  _cleanup_close_ int dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0)
    (void)ca_read_file_buf(dfd, "cgroup.controllers", avail, sizeof(avail), NULL); /* none readable: no limits */
  root->v2_memory = cg_has_word(avail, "memory");
  root->v2_pids = cg_has_word(avail, "pids");
  root->v2_cpu = cg_has_word(avail, "cpu");
  return 0;
}

void cg_systemd_close(cg_root *root) {
  root->bus = sd_bus_flush_close_unref(root->bus); /* in a forked child it only frees our copy */
  free(TAKE_PTR(root->slice));
  free(TAKE_PTR(root->unit_prefix));
}

static int append_prop(sd_bus_message *m, const cg_unit_prop *p) {
  switch (p->type) {
    case 's':
      return sd_bus_message_append(m, "(sv)", p->name, "s", p->s);
    case 'b':
      return sd_bus_message_append(m, "(sv)", p->name, "b", (int)p->u);
    case 't':
      return sd_bus_message_append(m, "(sv)", p->name, "t", p->u);
    default:
      return sd_bus_message_append(m, "(sv)", p->name, "au", 1, (uint32_t)p->u);
  }
}

struct job_wait {
  const char *job;
  char result[32];
  bool done;
};

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *error) {
  (void)error;
  struct job_wait *w = userdata;
  uint32_t id;
  const char *path, *unit, *result;
  if (!w->job || sd_bus_message_read(m, "uoss", &id, &path, &unit, &result) < 0 || !streq(path, w->job))
    return 0;
  snprintf(w->result, sizeof(w->result), "%s", result);
  w->done = true;
  return 0;
}

/* Dispatches bus messages until w is done or the timeout passed. */
static int wait_job(sd_bus *bus, struct job_wait *w, const char *unit, ca_error **err) {
  uint64_t deadline = cg_now_usec() + JOB_TIMEOUT_USEC;
  while (!w->done) {
    int r = sd_bus_process(bus, NULL);
    if (r < 0)
      return bus_error(err, r, NULL, "systemd bus");
    if (r > 0)
      continue;
    uint64_t now = cg_now_usec();
    if (now >= deadline)
      return ca_error_set(err, ETIMEDOUT, "systemd did not start %s within %llu s", unit,
                          (unsigned long long)(JOB_TIMEOUT_USEC / 1000000));
    if ((r = sd_bus_wait(bus, deadline - now)) < 0 && r != -EINTR)
      return bus_error(err, r, NULL, "systemd bus");
  }
  if (!streq(w->result, "done"))
    return ca_error_set(err, EIO, "systemd could not start %s: job %s", unit, w->result);
  return 0;
}

/* StartTransientUnit(unit, props), then waits for its job (JobRemoved) before anyone relies on the cgroup. */
static int start_unit(sd_bus *bus, const char *unit, const cg_unit_prop *props, size_t n, ca_error **err) {
  _cleanup_(sd_bus_slot_unrefp) sd_bus_slot *slot = NULL;
  _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
  sd_bus_error e = SD_BUS_ERROR_NULL;
  struct job_wait w = {0};
  /* systemd's private socket is a direct connection: its messages carry no sender to match. */
  const char *sender = sd_bus_is_bus_client(bus) ? SD_DEST : NULL;
  int r = sd_bus_match_signal(bus, &slot, sender, SD_PATH, SD_MANAGER, "JobRemoved", on_job_removed, &w);
  if (r >= 0)
    r = sd_bus_message_new_method_call(bus, &m, SD_DEST, SD_PATH, SD_MANAGER, "StartTransientUnit");
  if (r >= 0)
    r = sd_bus_message_append(m, "ss", unit, "fail");
  if (r >= 0)
    r = sd_bus_message_open_container(m, 'a', "(sv)");
  for (size_t i = 0; r >= 0 && i < n; i++)
    r = append_prop(m, &props[i]);
  if (r >= 0 && (r = sd_bus_message_close_container(m)) >= 0)
    r = sd_bus_message_append(m, "a(sa(sv))", 0);
  if (r < 0)
    return bus_error(err, r, NULL, "cannot build the request for a systemd unit");
  if ((r = sd_bus_call(bus, m, JOB_TIMEOUT_USEC, &e, &reply)) < 0 ||
      (r = sd_bus_message_read(reply, "o", &w.job)) < 0) {
    char what[256];
    snprintf(what, sizeof(what), "systemd refused %s", unit);
    r = bus_error(err, r, &e, what);
    sd_bus_error_free(&e);
    return r;
  }
  return wait_job(bus, &w, unit, err);
}

/* A child that waits for end of file on a pipe, and dies with us. */
static int holder_start(cg_leaf *leaf, ca_error **err) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0)
    return ca_error_set_errno(err, errno, "pipe");
  pid_t parent = getpid(), pid = fork();
  if (pid == 0) {
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(0);
    (void)close_range(3, (unsigned)p[0] - 1, 0); /* nothing of ours stays open in it, the lock file least */
    (void)close_range((unsigned)p[0] + 1, ~0U, 0);
    char c;
    while (read(p[0], &c, 1) < 0 && errno == EINTR)
      ;
    _exit(0);
  }
  int e = errno;
  close(p[0]);
  if (pid < 0) {
    close(p[1]);
    return ca_error_set_errno(err, e, "cannot fork the scope's holder");
  }
  leaf->holder_pid = pid;
  leaf->holder_fd = p[1];
  return 0;
}

void cg_systemd_release_holder(cg_leaf *leaf) {
  if (leaf->holder_pid <= 0)
    return;
  ca_close_keep_errno(leaf->holder_fd);
  leaf->holder_fd = -1;
  while (waitpid(leaf->holder_pid, NULL, 0) < 0 && errno == EINTR)
    ;
  leaf->holder_pid = 0;
}

/* leaf->path and rel from where systemd put the holder: the scope's cgroup. */
static int read_scope_cgroup(cg_leaf *leaf, ca_error **err) {
  char path[PATH_MAX], buf[CG_SMALL_FILE_MAX];
  snprintf(path, sizeof(path), "%s/%d/cgroup", leaf->root->proc, (int)leaf->holder_pid);
  _cleanup_(cg_proc_cgroup_done) cg_proc_cgroup pc = {0};
  if (ca_read_file_buf(AT_FDCWD, path, buf, sizeof(buf), err) < 0 || cg_parse_proc_cgroup(buf, &pc, err) < 0)
    return ca_error_wrap(err, "cannot read the cgroup of scope %s", leaf->unit);
  const char *slash = pc.unified ? strrchr(pc.unified, '/') : NULL;
  if (!slash || !streq(slash + 1, leaf->unit))
    return ca_error_set(err, EIO, "scope %s: its holder is in %s, not in the scope", leaf->unit,
                        pc.unified ? pc.unified : "no v2 cgroup");
  free(leaf->path);
  free(leaf->rel);
  leaf->rel = TAKE_PTR(pc.unified);
  if (asprintf(&leaf->path, "%s%s", leaf->root->track_mount, leaf->rel) < 0) {
    leaf->path = NULL;
    return ca_error_set(err, ENOMEM, "out of memory");
  }
  return 0;
}

/* Moves the holder out of the way of the session: into the scope's sub-cgroup CG_HOLDER_CGROUP (ours to make, the
 * scope being delegated), which the leaf's listing, signalling and waiting leave out. */
static int park_holder(cg_leaf *leaf, ca_error **err) {
  char dir[PATH_MAX], pid[16];
  snprintf(dir, sizeof(dir), "%s/" CG_HOLDER_CGROUP, leaf->path);
  if (mkdir(dir, 0755) < 0)
    return ca_error_set_errno(err, errno, "cannot create %s", dir);
  strcat(dir, "/cgroup.procs");
  snprintf(pid, sizeof(pid), "%d", (int)leaf->holder_pid);
  return cg_write_path(dir, pid, err);
}

/* run --contain-containers: the session's own slice, with the limits, for the scope and the engine's containers.
 * leaf->slice_unit is set before systemd is asked: a start whose job wait failed may have started it all the same,
 * and the slice's stop takes a unit systemd does not have for done. */
static int start_session_slice(cg_leaf *leaf, const cg_limits *limits, ca_error **err) {
  char name[NAME_MAX + 1], description[96];
  if (cg_session_slice_name(leaf->root->slice, leaf->id, name, sizeof(name)) < 0)
    return ca_error_set(err, EINVAL, "cannot name a slice of session %s inside %s", leaf->id, leaf->root->slice);
  if (!(leaf->slice_unit = strdup(name)))
    return ca_error_set(err, ENOMEM, "out of memory");
  snprintf(description, sizeof(description), "cleanup session %s and its containers", leaf->id);
  cg_unit_prop props[CG_SCOPE_PROPS_MAX];
  size_t n = cg_slice_properties(description, limits, props);
  return start_unit(leaf->root->bus, name, props, n, err) < 0 ? -EIO : 0;
}

/* leaf->slice_path and slice_dirfd: the parent of the scope's cgroup, which systemd names after the slice. */
static int open_slice_cgroup(cg_leaf *leaf, ca_error **err) {
  const char *slash = strrchr(leaf->path, '/');
  _cleanup_free_ char *parent = strndup(leaf->path, (size_t)(slash - leaf->path));
  if (!parent)
    return ca_error_set(err, ENOMEM, "out of memory");
  const char *base = strrchr(parent, '/');
  if (!base || !streq(base + 1, leaf->slice_unit))
    return ca_error_set(err, EIO, "scope %s is in %s, not in slice %s", leaf->unit, parent, leaf->slice_unit);
  leaf->slice_path = TAKE_PTR(parent);
  leaf->slice_dirfd = open(leaf->slice_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  return leaf->slice_dirfd < 0 ? ca_error_set_errno(err, errno, "cannot open %s", leaf->slice_path) : 0;
}

int cg_systemd_start_scope(cg_leaf *leaf, const cg_limits *limits, ca_error **err) {
  cg_root *root = leaf->root;
  if (limits->cpus > 0 && !(limits->cpus <= 100000))
    return ca_error_set(err, EINVAL, "a cpu limit of %g CPUs is out of range", limits->cpus);
  if (root->session_slices && start_session_slice(leaf, limits, err) < 0) {
    (void)cg_systemd_stop_slice(leaf, NULL); /* it may have started: the first error is the one to tell */
    return -EIO;
  }
  int r = holder_start(leaf, err);
  char description[96];
  snprintf(description, sizeof(description), "cleanup session %s", leaf->id);
  cg_unit_prop props[CG_SCOPE_PROPS_MAX];
  /* In a slice of its own the scope gets no limits: the slice's bound it and the containers together. */
  size_t n = cg_scope_properties(leaf->slice_unit ? leaf->slice_unit : root->slice, description,
                                 leaf->slice_unit ? NULL : limits, leaf->holder_pid, props);
  if (r == 0)
    r = start_unit(root->bus, leaf->unit, props, n, err);
  if (r == 0)
    r = read_scope_cgroup(leaf, err);
  if (r == 0 && leaf->slice_unit)
    r = open_slice_cgroup(leaf, err);
  if (r == 0)
    r = park_holder(leaf, err);
  if (r < 0) {
    cg_systemd_release_holder(leaf);         /* the scope, if it started, goes with its last process */
    (void)cg_systemd_stop_slice(leaf, NULL); /* already failing: the first error is the one to tell */
  }
  return r;
}

/* Waits up to timeout_usec for systemd to remove dir (it does once the unit is stopped and empty). */
static bool wait_gone(const char *dir, uint64_t timeout_usec) {
  for (uint64_t deadline = cg_now_usec() + timeout_usec; cg_now_usec() < deadline; usleep(5000))
    if (access(dir, F_OK) < 0 && errno == ENOENT)
      return true;
  return false;
}

/* The answer to Manager.<method>(unit, ...): a unit systemd no longer has is no error. */
/* 0 done, 1 the manager has no such unit (nothing of it to stop or kill), or a negative errno. */
static int unit_call_result(int r, sd_bus_error *e, const char *method, const char *unit, ca_error **err) {
  if (r >= 0)
    r = 0;
  else if (sd_bus_error_has_name(e, "org.freedesktop.systemd1.NoSuchUnit"))
    r = 1;
  else {
    bus_error(err, r, e, method);
    r = ca_error_wrap(err, "%s", unit);
  }
  sd_bus_error_free(e);
  return r;
}

static int stop_unit(sd_bus *bus, const char *unit, ca_error **err) {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  int r = sd_bus_call_method(bus, SD_DEST, SD_PATH, SD_MANAGER, "StopUnit", &e, NULL, "ss", unit, "replace");
  return unit_call_result(r, &e, "cannot stop the unit", unit, err);
}

/* SIGKILL to every process of the unit's cgroup and below ("all"). */
static int kill_unit(sd_bus *bus, const char *unit, ca_error **err) {
  sd_bus_error e = SD_BUS_ERROR_NULL;
  int r =
      sd_bus_call_method(bus, SD_DEST, SD_PATH, SD_MANAGER, "KillUnit", &e, NULL, "ssi", unit, "all", (int32_t)SIGKILL);
  return unit_call_result(r, &e, "cannot kill the unit's processes", unit, err);
}

void cg_manager_addresses(const char *path, char *bus, char *private, size_t size) {
  const char *user = path ? strstr(path, "/user@") : NULL;
  unsigned uid;
  int end = 0;
  if (!user || sscanf(user, "/user@%u.service%n", &uid, &end) != 1 || !end || (user[end] && user[end] != '/')) {
    snprintf(bus, size, "unix:path=/run/dbus/system_bus_socket");
    snprintf(private, size, "unix:path=/run/systemd/private");
  } else if (uid == (unsigned)geteuid()) {
    user_bus_addresses(bus, private, size);
  } else {
    snprintf(bus, size, "unix:path=/run/user/%u/bus", uid);
    snprintf(private, size, "unix:path=/run/user/%u/systemd/private", uid);
  }
}

/* The bus of the manager that owns the root's cgroups, for the stops of a removal: the root's own (the systemd
 * driver), else one opened once for the root (a collector that opened the recorded root as a plain directory), of
 * the manager its path names (cg_manager_addresses). NULL without systemd or a bus: then the cgroups are removed as
 * systemd would. */
static sd_bus *removal_bus(cg_root *root) {
  if (root->bus || root->removal_bus_tried)
    return root->bus;
  root->removal_bus_tried = true;
  char bus[PATH_MAX], private[PATH_MAX];
  cg_manager_addresses(root->path, bus, private, sizeof(bus));
  if (cg_systemd_booted(NULL) && bus_connect(bus, true, &root->bus) < 0 && bus_connect(private, false, &root->bus) < 0)
    root->bus = NULL;
  return root->bus;
}

int cg_systemd_stop_scope(cg_leaf *leaf, ca_error **err) {
  sd_bus *bus = removal_bus(leaf->root);
  if (bus && stop_unit(bus, leaf->unit, err) < 0)
    return -EIO;
  if (wait_gone(leaf->path, 2000000))
    return 0;
  /* Without a bus, or a manager that left the cgroup: removing an empty cgroup is what systemd would do. */
  if (rmdir(leaf->path) == 0 || errno == ENOENT)
    return 0;
  return ca_error_set(err, errno, "cannot remove %s: %s", leaf->path, strerror(errno));
}

int cg_systemd_stop_slice(cg_leaf *leaf, ca_error **err) {
  if (!leaf->slice_unit)
    return 0;
  /* The slice's one writer is the manager, asked through the bus its scope's stop used; without any, what systemd
   * would do: its processes killed (the containers) and its cgroups removed bottom-up. */
  sd_bus *bus = removal_bus(leaf->root);
  if (!bus)
    return leaf->slice_path ? cg_slice_kill_remove(leaf, 5000000, err) : 0;
  /* KillUnit first: a slice's stop would send the containers SIGTERM and wait for each scope's TimeoutStopSec (90 s),
   * and a container's PID 1 ignores SIGTERM. systemd kills a slice's whole cgroup (unit_kill_common, KILL_ALL). */
  int killed = kill_unit(bus, leaf->slice_unit, err);
  if (killed < 0)
    return -EIO;
  /* A slice's cgroup that the manager has no unit for (a manager restarted without it, a directory made by hand):
   * nobody else writes it, so what the manager would have done is ours to do. Not StopUnit: systemd loads a slice it
   * does not have to stop it, and the stop leaves a directory it never made. */
  if (killed > 0)
    return leaf->slice_path ? cg_slice_kill_remove(leaf, 5000000, err) : 0;
  if (stop_unit(bus, leaf->slice_unit, err) < 0)
    return -EIO;
  if (!leaf->slice_path || wait_gone(leaf->slice_path, 10000000))
    return 0;
  return ca_error_set(err, EBUSY, "slice %s: systemd did not remove %s within 10 s", leaf->slice_unit,
                      leaf->slice_path);
}

int cg_root_adopt_helper(cg_root *root, const char *what, const char *session_id, pid_t pid, ca_error **err) {
  if (root->driver != CG_DRIVER_SYSTEMD || root->tracking != CG_TRACK_CGROUP || !root->bus)
    return 0;
  char unit[256], description[96];
  snprintf(unit, sizeof(unit), "%s%s-%s.scope", root->unit_prefix, what, session_id);
  snprintf(description, sizeof(description), "cleanup %s of session %s", what, session_id);
  cg_unit_prop props[] = {
      {.name = "Description", .type = 's', .s = description},
      {.name = "Slice", .type = 's', .s = root->slice},
      {.name = "CollectMode", .type = 's', .s = "inactive-or-failed"},
      {.name = "PIDs", .type = 'u', .u = (uint64_t)pid},
  };
  return start_unit(root->bus, unit, props, ELEMENTSOF(props), err) < 0 ? ca_error_wrap(err, "cgroup") : 0;
}
