/* Sessions: ids, the state directory, the lease lock and the registry file. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "session.h"

/* A registry is a few hundred bytes; anything near this is not ours. */
#define REGISTRY_MAX (256 * 1024)
/* What the command may take of a registry, counted as the most its arguments can take as JSON (6 bytes for a byte
 * escaped as \u00XX, 4 for the quotes and the separator): the registry stays under REGISTRY_MAX whatever the command
 * line (the kernel takes megabytes). */
#define REGISTRY_COMMAND_MAX (192 * 1024)

int ag_session_id_new(char ret[static AG_SESSION_ID_LEN + 1], ca_error **err) {
  uint8_t raw[AG_SESSION_ID_LEN / 2];
  size_t got = 0;
  while (got < sizeof(raw)) {
    ssize_t n = getrandom(raw + got, sizeof(raw) - got, 0);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return ca_error_set_errno(err, errno, "session id: getrandom");
    }
    got += (size_t)n;
  }
  for (size_t i = 0; i < sizeof(raw); i++)
    snprintf(ret + 2 * i, 3, "%02x", raw[i]);
  return 0;
}

/* The form of /etc/machine-id (machine-id(5)): 32 lowercase hex digits. */
static bool machine_id_valid(const char *s) {
  return strlen(s) == 32 && strspn(s, "0123456789abcdef") == 32;
}

/* /etc/machine-id into machine (32 hex digits), or "" when it cannot be read or is not one: the agent still works, its
 * resources carry no machine label and only the expiry, --older-than and dead-session rules judge them. */
static void read_machine_id(char machine[static 33]) {
  static bool told;
  _cleanup_free_ char *text = NULL;
  size_t len;
  _cleanup_error_ ca_error *e = NULL;
  machine[0] = '\0';
  if (ca_read_file("/etc/machine-id", 64, &text, &len, &e) == 0) {
    text[strcspn(text, "\n")] = '\0';
    if (machine_id_valid(text))
      memcpy(machine, text, 33);
  }
  if (!machine[0] && !told) {
    told = true;
    ca_log_info("no machine id (%s): resources are labeled without io.cleanup-agent.machine, and gc judges them by "
                "expiry and --older-than only",
                e ? e->msg : "/etc/machine-id is not 32 hex digits");
  }
}

int ag_owner_self(struct ag_owner *ret, ca_error **err) {
  struct ag_owner o = {.pid = getpid()};
  read_machine_id(o.machine);
  struct stat ns;
  if (stat("/proc/self/ns/pid", &ns) == 0)
    o.pidns = (uint64_t)ns.st_ino;
  if (gethostname(o.host, sizeof(o.host) - 1) < 0)
    return ca_error_set_errno(err, errno, "gethostname");
  _cleanup_free_ char *boot = NULL;
  size_t len;
  if (ca_read_file("/proc/sys/kernel/random/boot_id", 128, &boot, &len, err) < 0)
    return ca_error_wrap(err, "boot id");
  boot[strcspn(boot, "\n")] = '\0';
  snprintf(o.boot_id, sizeof(o.boot_id), "%s", boot);
  int r = cg_proc_start_time(NULL, o.pid, &o.start, err);
  if (r < 0)
    return r;
  *ret = o;
  return 0;
}

/* Hands e to the caller's err as ca_error_set would (replacing what was there), or frees it. */
static void pass_error(ca_error **err, ca_error *e) {
  if (!err) {
    ca_error_free(e);
    return;
  }
  ca_error_free(*err);
  *err = e;
}

/* mkdir (when create) that accepts an existing directory, then checks it is a real directory of ours that nobody else
 * can use. */
static int ensure_private_dir(const char *path, bool create, ca_error **err) {
  if (create && mkdir(path, 0700) < 0 && errno != EEXIST)
    return ca_error_set_errno(err, errno, "state dir: create %s (choose another with --state-dir)", path);
  struct stat st;
  if (lstat(path, &st) < 0)
    return ca_error_set_errno(err, errno, "state dir: %s", path);
  if (S_ISLNK(st.st_mode))
    return ca_error_set(err, ELOOP, "state dir: %s is a symbolic link; remove it or choose another with --state-dir",
                        path);
  if (!S_ISDIR(st.st_mode))
    return ca_error_set(err, ENOTDIR, "state dir: %s is not a directory; choose another with --state-dir", path);
  if (st.st_uid != geteuid())
    return ca_error_set(err, EPERM,
                        "state dir: %s belongs to uid %u, not to us (uid %u); choose another with --state-dir", path,
                        (unsigned)st.st_uid, (unsigned)geteuid());
  if (st.st_mode & 0077)
    return ca_error_set(err, EPERM, "state dir: %s is open to other users (mode %04o); run 'chmod 700 %s'", path,
                        (unsigned)(st.st_mode & 07777), path);
  return 0;
}

void ag_state_free(struct ag_state *s) {
  if (!s)
    return;
  ca_close_keep_errno(s->sessions_fd);
  free(s->dir);
  free(s->sessions);
  free(s);
}

int ag_state_open(const char *dir_opt, struct ag_state **ret, ca_error **err) {
  return ag_state_open_flags(dir_opt, 0, ret, err);
}

int ag_state_open_flags(const char *dir_opt, unsigned flags, struct ag_state **ret, ca_error **err) {
  _cleanup_(ag_state_freep) struct ag_state *s = calloc(1, sizeof(*s));
  if (!s)
    return ca_error_set(err, ENOMEM, "state dir: out of memory");
  s->sessions_fd = -1;
  s->read_only = flags & AG_STATE_READ_ONLY;
  bool create = !(flags & (AG_STATE_NO_CREATE | AG_STATE_READ_ONLY));
  if (dir_opt)
    s->dir = strdup(dir_opt);
  else if (geteuid() == 0)
    s->dir = strdup("/run/cleanup-agent");
  else {
    const char *xdg = getenv("XDG_RUNTIME_DIR");
    if (!xdg || xdg[0] != '/')
      return ca_error_set(err, EINVAL, "state dir: XDG_RUNTIME_DIR is not set; pass --state-dir DIR");
    if (asprintf(&s->dir, "%s/cleanup-agent", xdg) < 0)
      s->dir = NULL;
  }
  if (!s->dir || asprintf(&s->sessions, "%s/sessions", s->dir) < 0)
    return ca_error_set(err, ENOMEM, "state dir: out of memory");
  _cleanup_error_ ca_error *e = NULL;
  int r = ensure_private_dir(s->dir, create, &e);
  if (r == 0)
    r = ensure_private_dir(s->sessions, create, &e);
  if (r == -ENOENT && !create) {
    *ret = TAKE_PTR(s); /* nothing ran here yet: no session to show, nothing to collect */
    return 0;
  }
  if (r < 0) {
    pass_error(err, TAKE_PTR(e));
    return r;
  }
  s->sessions_fd = open(s->sessions, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (s->sessions_fd < 0)
    return ca_error_set_errno(err, errno, "state dir: open %s", s->sessions);
  *ret = TAKE_PTR(s);
  return 0;
}

/* A handle through which nothing may change: EROFS, or ENOENT when the state dir is absent. */
static int refuse_change(const struct ag_state *s, const char *what, ca_error **err) {
  if (s->sessions_fd < 0)
    return ca_error_set(err, ENOENT, "%s: no state dir %s", what, s->sessions);
  if (s->read_only)
    return ca_error_set(err, EROFS, "%s: the state dir %s was opened read-only", what, s->sessions);
  return 0;
}

/* The temp name of a new session's lock where the file system has no O_TMPFILE. */
static void temp_lock_name(const char *id, char *buf, size_t size) {
  snprintf(buf, size, ".%s.lock.%ld", id, (long)getpid());
}

/* Creates <id>.lock's file already locked, before it has its name, so that no collector can ever take the lock of a
 * new session in the instant between creation and flock: an unnamed file (O_TMPFILE), so that an agent killed
 * before the publication leaves nothing at all; where the file system has none, a temp file .<id>.lock.<pid>. */
int ag_session_lock_new(struct ag_state *s, const char *id, int *ret_fd, ca_error **err) {
  if (!ca_session_id_valid(id))
    return ca_error_set(err, EINVAL, "'%s' is not a session id (32 lowercase hex characters)", id);
  if (s->sessions_fd < 0 || s->read_only)
    return refuse_change(s, "session lock", err);
  char tmp[80] = "";
  _cleanup_close_ int fd = openat(s->sessions_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0 && (errno == EOPNOTSUPP || errno == EISDIR || errno == EINVAL)) {
    temp_lock_name(id, tmp, sizeof(tmp));
    (void)unlinkat(s->sessions_fd, tmp, 0); /* a leftover of an earlier process with our pid */
    fd = openat(s->sessions_fd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  }
  if (fd < 0)
    return ca_error_set_errno(err, errno, "session %s: create lock in %s", id, s->sessions);
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    int r = ca_error_set_errno(err, errno, "session %s: lock a new file in %s", id, s->sessions);
    if (tmp[0])
      (void)unlinkat(s->sessions_fd, tmp, 0);
    return r;
  }
  *ret_fd = TAKE_FD(fd);
  return 0;
}

/* Links the unnamed file of fd (its only name /proc/self/fd/<fd>, linkable without privileges) or the temp file. */
static int link_lock(struct ag_state *s, int fd, const char *id, const char *name) {
  struct stat st;
  if (fstat(fd, &st) < 0)
    return -errno;
  if (st.st_nlink == 0) {
    char self[64];
    snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, self, s->sessions_fd, name, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
  }
  char tmp[80];
  temp_lock_name(id, tmp, sizeof(tmp));
  int r = linkat(s->sessions_fd, tmp, s->sessions_fd, name, 0) < 0 ? -errno : 0;
  (void)unlinkat(s->sessions_fd, tmp, 0); /* the link (or the failure) is what counts */
  return r;
}

int ag_session_lock_publish(struct ag_state *s, int fd, const char *id, ca_error **err) {
  char name[64];
  snprintf(name, sizeof(name), "%s.lock", id);
  int r = link_lock(s, fd, id, name);
  if (r < 0)
    return r == -EEXIST && !err ? r
                                : ca_error_set_errno(err, -r, "session %s: create lock %s/%s", id, s->sessions, name);
  return 0;
}

static int lock_create(struct ag_state *s, const char *id, int *ret_fd, ca_error **err) {
  _cleanup_close_ int fd = -1;
  int r = ag_session_lock_new(s, id, &fd, err);
  if (r < 0)
    return r;
  if ((r = ag_session_lock_publish(s, fd, id, NULL)) < 0)
    return r == -EEXIST ? r : ca_error_set_errno(err, -r, "session %s: create lock in %s", id, s->sessions);
  *ret_fd = TAKE_FD(fd);
  return 0;
}

/* Renames state file name to <name>.<why>-<time> (a rename moves a symbolic link itself, never its target), so that
 * nothing is lost and the next start does not trip on it again. The new name goes to ret_aside. */
static int set_aside(const struct ag_state *s, const char *name, const char *why, char *ret_aside, size_t size) {
  snprintf(ret_aside, size, "%s.%s-%lld", name, why, (long long)time(NULL));
  return renameat(s->sessions_fd, name, s->sessions_fd, ret_aside) < 0 ? -errno : 0;
}

/* A lock file that is a symbolic link was planted: nobody can hold it, so a collector sets it aside once (with a
 * warning) and takes a lock of its own. Probes (create false: ps, gc's listing, --dry-run) change nothing. */
static int lock_symlink(struct ag_state *s, const char *id, const char *name, int *ret_fd, ca_error **err) {
  char aside[96];
  int r = set_aside(s, name, "symlink", aside, sizeof(aside));
  if (r < 0)
    return ca_error_set_errno(err, -r, "session %s: lock %s/%s is a symbolic link and could not be set aside", id,
                              s->sessions, name);
  ca_log_warning("session %s: lock %s/%s was a symbolic link; set aside as %s, not followed", id, s->sessions, name,
                 aside);
  r = lock_create(s, id, ret_fd, err);
  return r == -EEXIST ? ca_error_set(err, EEXIST, "session %s: lock %s/%s came back", id, s->sessions, name) : r;
}

int ag_session_lock(struct ag_state *s, const char *id, bool create, int *ret_fd, ca_error **err) {
  if (!ca_session_id_valid(id))
    return ca_error_set(err, EINVAL, "'%s' is not a session id (32 lowercase hex characters)", id);
  if (s->sessions_fd < 0 || (create && s->read_only))
    return refuse_change(s, "session lock", err);
  char name[64];
  snprintf(name, sizeof(name), "%s.lock", id);
  if (create) {
    int r = lock_create(s, id, ret_fd, err);
    if (r != -EEXIST)
      return r;
  }
  _cleanup_close_ int fd = openat(s->sessions_fd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == ELOOP && create)
    return lock_symlink(s, id, name, ret_fd, err);
  if (fd < 0)
    return ca_error_set_errno(err, errno, "session %s: open lock %s/%s", id, s->sessions, name);
  if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
    if (errno == EWOULDBLOCK)
      return ca_error_set(err, EWOULDBLOCK, "session %s is alive (its lock is held)", id);
    return ca_error_set_errno(err, errno, "session %s: lock %s/%s", id, s->sessions, name);
  }
  *ret_fd = TAKE_FD(fd);
  return 0;
}

static int strv_push_unique(char ***v, size_t *n, const char *s) {
  for (size_t i = 0; i < *n; i++)
    if (streq((*v)[i], s))
      return 0;
  char **nv = realloc(*v, (*n + 2) * sizeof(char *));
  if (!nv)
    return -ENOMEM;
  *v = nv;
  if (!(nv[*n] = strdup(s)))
    return -ENOMEM;
  nv[++*n] = NULL;
  return 0;
}

/* A temp lock file exists before its lock does: it names a session to collect only once its creator is gone (a
 * collector that took the lock of a session being created would stop that session from starting). A reused pid
 * only delays its collection. */
static bool temp_lock_of_dead_process(const char *name) {
  const char *pid = strrchr(name, '.');
  char path[64];
  snprintf(path, sizeof(path), "/proc/%s", pid + 1);
  return access(path, F_OK) < 0 && errno == ENOENT;
}

/* The session id a state file belongs to: <id>.json, <id>.lock, and the temp files of an agent killed while it
 * wrote them: <id>.json.tmp.<pid> (ca_write_file_atomic) and .<id>.lock.<pid> (lock_create). Those are a dead
 * session's too, and must go with it: nothing else would ever remove them. */
static bool session_file_id(const char *name, char ret[static AG_SESSION_ID_LEN + 1]) {
  bool temp_lock = name[0] == '.';
  const char *start = name + temp_lock;
  const char *dot = strchr(start, '.');
  if (!dot || (size_t)(dot - start) != AG_SESSION_ID_LEN)
    return false;
  if (temp_lock ? strncmp(dot, ".lock.", 6) != 0
                : !streq(dot, ".json") && !streq(dot, ".lock") && strncmp(dot, ".json.tmp.", 10) != 0)
    return false;
  memcpy(ret, start, AG_SESSION_ID_LEN);
  ret[AG_SESSION_ID_LEN] = '\0';
  return ca_session_id_valid(ret);
}

/* A DIR of the sessions dir from its start (closedir closes it); NULL with errno set. */
static DIR *open_sessions_dir(const struct ag_state *s) {
  int dfd = fcntl(s->sessions_fd, F_DUPFD_CLOEXEC, 3);
  DIR *d = dfd < 0 ? NULL : fdopendir(dfd);
  if (!d) {
    ca_close_keep_errno(dfd);
    return NULL;
  }
  rewinddir(d);
  return d;
}

int ag_state_list_sessions(struct ag_state *s, char ***ret_ids, ca_error **err) {
  if (s->sessions_fd < 0) {
    if (!(*ret_ids = calloc(1, sizeof(char *))))
      return ca_error_set(err, ENOMEM, "list %s: out of memory", s->sessions);
    return 0;
  }
  DIR *d = open_sessions_dir(s);
  if (!d)
    return ca_error_set_errno(err, errno, "list %s", s->sessions);
  _cleanup_strv_free_ char **ids = calloc(1, sizeof(char *));
  size_t n = 0;
  struct dirent *de;
  int r = ids ? 0 : -ENOMEM;
  while (r == 0 && (de = readdir(d))) {
    char id[AG_SESSION_ID_LEN + 1];
    if (session_file_id(de->d_name, id) && (de->d_name[0] != '.' || temp_lock_of_dead_process(de->d_name)))
      r = strv_push_unique(&ids, &n, id);
  }
  closedir(d);
  if (r < 0)
    return ca_error_set(err, -r, "list %s: out of memory", s->sessions);
  *ret_ids = TAKE_PTR(ids);
  return 0;
}

void ag_registry_done(struct ag_registry *r) {
  if (!r)
    return;
  free(r->cgroup_root);
  free(r->docker_host);
  free(r->collect_error);
  ca_strv_free(r->command);
  r->cgroup_root = r->docker_host = r->collect_error = NULL;
  r->command = NULL;
}

/* The command, as much of it as REGISTRY_COMMAND_MAX allows; then one last element that says how many arguments are
 * left out. */
static void add_command(cJSON *o, char *const *command) {
  cJSON *cmd = cJSON_AddArrayToObject(o, "command");
  size_t used = 0, n = 0;
  for (; cmd && command && command[n]; n++) {
    used += 6 * strlen(command[n]) + 4;
    if (used > REGISTRY_COMMAND_MAX)
      break;
    cJSON_AddItemToArray(cmd, cJSON_CreateString(command[n]));
  }
  size_t left = 0;
  while (cmd && command && command[n + left])
    left++;
  if (left) {
    char more[64];
    snprintf(more, sizeof(more), "...(%zu more arguments, not recorded)", left);
    cJSON_AddItemToArray(cmd, cJSON_CreateString(more));
  }
}

char *ag_registry_format(const struct ag_registry *r) {
  _cleanup_json_ cJSON *o = cJSON_CreateObject();
  if (!o)
    return NULL;
  cJSON_AddNumberToObject(o, "version", 1);
  cJSON_AddStringToObject(o, "session", r->id);
  cJSON_AddStringToObject(o, "mode", r->mode);
  cJSON_AddStringToObject(o, "host", r->owner.host);
  cJSON_AddStringToObject(o, "boot_id", r->owner.boot_id);
  if (r->owner.machine[0])
    cJSON_AddStringToObject(o, "machine", r->owner.machine);
  /* Whole numbers digit for digit (ca_json_add_int), up to 2^53 as the parser accepts them: a double holds each
   * exactly, so they read back as written. */
  ca_json_add_int(o, "owner_pid", r->owner.pid);
  ca_json_add_int(o, "owner_start", (int64_t)r->owner.start);
  if (r->owner.pidns)
    ca_json_add_int(o, "pidns", (int64_t)r->owner.pidns);
  ca_json_add_int(o, "created", r->created);
  ca_json_add_int(o, "expires", r->expires);
  ca_json_add_int(o, "guardian_pid", r->guardian_pid);
  if (r->cgroup_root)
    cJSON_AddStringToObject(o, "cgroup_root", r->cgroup_root);
  if (r->docker_host)
    cJSON_AddStringToObject(o, "docker_host", r->docker_host);
  add_command(o, r->command);
  if (r->main_pid > 0 && r->pgrp > 0) {
    ca_json_add_int(o, "main_pid", r->main_pid);
    ca_json_add_int(o, "main_start", (int64_t)r->main_start);
    ca_json_add_int(o, "pgrp", r->pgrp);
    ca_json_add_int(o, "pgrp_start", (int64_t)r->pgrp_start);
  }
  if (r->collect_error) {
    cJSON_AddStringToObject(o, "collect_error", r->collect_error);
    ca_json_add_int(o, "collect_error_at", r->collect_error_at);
  }
  if (r->images_remove)
    cJSON_AddStringToObject(o, "images", "remove");
  return cJSON_Print(o);
}

/* A string field copied into buf of size bytes; EBADMSG when it does not fit. */
static int string_into(const cJSON *o, const char *key, char *buf, size_t size, ca_error **err) {
  const char *v = NULL;
  int r = ca_json_string(o, key, &v, err);
  if (r < 0 || !v)
    return r;
  if (strlen(v) >= size)
    return ca_error_set(err, EBADMSG, "field %s is too long", key);
  strcpy(buf, v);
  return 0;
}

/* The fields of the owner and the times; all of them are required. */
static int parse_fixed_fields(const cJSON *o, struct ag_registry *r, ca_error **err) {
  static const char *const required[] = {"session",     "mode",    "host",    "boot_id",      "owner_pid",
                                         "owner_start", "created", "expires", "guardian_pid", NULL};
  int64_t pid = 0, start = 0, gpid = 0;
  int rc;
  if ((rc = ca_json_require(o, required, err)) < 0 || (rc = string_into(o, "session", r->id, sizeof(r->id), err)) < 0 ||
      (rc = string_into(o, "mode", r->mode, sizeof(r->mode), err)) < 0 ||
      (rc = string_into(o, "host", r->owner.host, sizeof(r->owner.host), err)) < 0 ||
      (rc = string_into(o, "boot_id", r->owner.boot_id, sizeof(r->owner.boot_id), err)) < 0 ||
      (rc = ca_json_int(o, "owner_pid", 1, INT_MAX, &pid, err)) < 0 ||
      (rc = ca_json_int(o, "owner_start", 0, INT64_C(1) << 53, &start, err)) < 0 ||
      (rc = ca_json_int(o, "created", 0, INT64_C(1) << 53, &r->created, err)) < 0 ||
      (rc = ca_json_int(o, "expires", 0, INT64_C(1) << 53, &r->expires, err)) < 0 ||
      (rc = ca_json_int(o, "guardian_pid", 0, INT_MAX, &gpid, err)) < 0)
    return rc;
  if (!ca_session_id_valid(r->id))
    return ca_error_set(err, EBADMSG, "field session is not a session id");
  r->owner.pid = (pid_t)pid;
  r->owner.start = (uint64_t)start;
  r->guardian_pid = (pid_t)gpid;
  return 0;
}

/* machine and pidns, absent from registries written before them; when present, of the form the agent writes. */
static int parse_identity(const cJSON *o, struct ag_owner *owner, ca_error **err) {
  int64_t pidns = 0;
  int rc;
  if ((rc = string_into(o, "machine", owner->machine, sizeof(owner->machine), err)) < 0)
    return rc;
  if (ca_json_field(o, "machine") && !machine_id_valid(owner->machine))
    return ca_error_set(err, EBADMSG, "field machine is not a machine id");
  if ((rc = ca_json_int(o, "pidns", 1, INT64_C(1) << 53, &pidns, err)) < 0)
    return rc;
  owner->pidns = (uint64_t)pidns;
  return 0;
}

/* The process group of a session under process tracking: optional (registries before them, sessions with a cgroup),
 * but all four fields or none. */
static int parse_group(const cJSON *o, struct ag_registry *r, ca_error **err) {
  static const char *const keys[] = {"main_pid", "main_start", "pgrp", "pgrp_start", NULL};
  size_t present = 0;
  for (size_t i = 0; keys[i]; i++)
    present += ca_json_field(o, keys[i]) != NULL;
  if (present == 0)
    return 0;
  if (present < 4)
    return ca_error_set(err, EBADMSG, "fields main_pid, main_start, pgrp and pgrp_start go together");
  int64_t pid = 0, start = 0, pgrp = 0, pgrp_start = 0;
  int rc;
  if ((rc = ca_json_int(o, "main_pid", 1, INT_MAX, &pid, err)) < 0 ||
      (rc = ca_json_int(o, "main_start", 0, INT64_C(1) << 53, &start, err)) < 0 ||
      (rc = ca_json_int(o, "pgrp", 1, INT_MAX, &pgrp, err)) < 0 ||
      (rc = ca_json_int(o, "pgrp_start", 0, INT64_C(1) << 53, &pgrp_start, err)) < 0)
    return rc;
  r->main_pid = (pid_t)pid;
  r->main_start = (uint64_t)start;
  r->pgrp = (pid_t)pgrp;
  r->pgrp_start = (uint64_t)pgrp_start;
  return 0;
}

/* "images": the session's image policy, "keep" (also when absent) or "remove". */
static int parse_images(const cJSON *o, struct ag_registry *r, ca_error **err) {
  const char *v = NULL;
  int rc = ca_json_string(o, "images", &v, err);
  if (rc < 0 || !v)
    return rc;
  if (!streq(v, "keep") && !streq(v, "remove"))
    return ca_error_set(err, EBADMSG, "field images is neither keep nor remove");
  r->images_remove = streq(v, "remove");
  return 0;
}

/* The "version" field: required; newer than AG_REGISTRY_VERSION is EPROTONOSUPPORT, whatever the rest says. */
static int check_version(const cJSON *o, ca_error **err) {
  if (!cJSON_IsObject(o))
    return ca_error_set(err, EBADMSG, "registry: expected an object, got %s", ca_json_type_name(o));
  int64_t v = 0;
  int rc = ca_json_int(o, "version", 1, INT64_C(1) << 53, &v, err);
  if (rc < 0)
    return rc;
  if (!ca_json_field(o, "version"))
    return ca_error_set(err, EBADMSG, "field version is missing");
  if (v > AG_REGISTRY_VERSION)
    return ca_error_set(err, EPROTONOSUPPORT,
                        "version %" PRId64 ", written by a newer cleanup-agent (this one reads version %d)", v,
                        AG_REGISTRY_VERSION);
  return 0;
}

int ag_registry_parse(const char *text, size_t len, struct ag_registry *ret, ca_error **err) {
  _cleanup_json_ cJSON *o = NULL;
  int rc = ca_json_parse(text, len, "registry", &o, err);
  if (rc < 0 || (rc = check_version(o, err)) < 0)
    return rc;
  struct ag_registry r = {0};
  if ((rc = parse_fixed_fields(o, &r, err)) < 0 || (rc = parse_identity(o, &r.owner, err)) < 0 ||
      (rc = parse_group(o, &r, err)) < 0 || (rc = ca_json_strdup(o, "cgroup_root", &r.cgroup_root, err)) < 0 ||
      (rc = ca_json_strdup(o, "docker_host", &r.docker_host, err)) < 0 ||
      (rc = ca_json_strv(o, "command", &r.command, err)) < 0 ||
      (rc = ca_json_strdup(o, "collect_error", &r.collect_error, err)) < 0 ||
      (rc = ca_json_int(o, "collect_error_at", 0, INT64_C(1) << 53, &r.collect_error_at, err)) < 0 ||
      (rc = parse_images(o, &r, err)) < 0) {
    ag_registry_done(&r);
    return rc;
  }
  *ret = r;
  return 0;
}

int ag_registry_write(struct ag_state *s, const struct ag_registry *r, ca_error **err) {
  int rc = refuse_change(s, "write registry", err);
  if (rc < 0)
    return rc;
  _cleanup_free_ char *text = ag_registry_format(r);
  if (!text)
    return ca_error_set(err, ENOMEM, "registry: out of memory");
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/%s.json", s->sessions, r->id);
  /* Temp file, fsync, rename (DESIGN.md), without the fsync of the directory on every run (0.3 to 5 ms on a disk):
   * the registry only speaks of this boot, and after a crash of the machine the boot-id rule collects without it. */
  return ca_write_file_atomic_flags(path, text, strlen(text), 0600, CA_WRITE_NO_DIR_SYNC, err);
}

/* A registry that is not one (corrupt, or a symbolic link planted in its place): set aside so that nothing is lost
 * and the next start does not trip on it again, or, through a read-only state, named and left where it is. EINVAL. */
static int registry_not_ours(struct ag_state *s, const char *id, const char *path, bool link, const ca_error *why,
                             ca_error **err) {
  const char *what = link ? "is a symbolic link" : "is corrupt";
  if (s->read_only)
    return ca_error_set(err, EINVAL, "registry %s %s (%s); left in place", path, what, why ? why->msg : "?");
  char name[AG_SESSION_ID_LEN + 8], aside[96];
  snprintf(name, sizeof(name), "%s.json", id);
  int e = set_aside(s, name, link ? "symlink" : "corrupt", aside, sizeof(aside));
  if (e < 0)
    return ca_error_set(err, EINVAL, "registry %s %s and could not be moved aside: %s", path, what, strerror(-e));
  /* The session must stay listed, or nothing would ever collect what it left (kill may be the first to read the
   * file): its lock file does that. */
  char lock[AG_SESSION_ID_LEN + 8];
  snprintf(lock, sizeof(lock), "%s.lock", id);
  int fd = openat(s->sessions_fd, lock, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd >= 0)
    close(fd); /* best effort: without it the error below still says where the file went */
  if (link)
    return ca_error_set(err, EINVAL, "registry %s was a symbolic link; set aside as %s/%s, not followed", path,
                        s->sessions, aside);
  return ca_error_set(err, EINVAL, "registry %s is corrupt (%s); moved aside to %s/%s", path, why ? why->msg : "?",
                      s->sessions, aside);
}

int ag_registry_load(struct ag_state *s, const char *id, struct ag_registry *ret, ca_error **err) {
  if (!ca_session_id_valid(id))
    return ca_error_set(err, EINVAL, "'%s' is not a session id", id);
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/%s.json", s->sessions, id);
  _cleanup_free_ char *text = NULL;
  size_t len;
  _cleanup_error_ ca_error *why = NULL;
  int r = ca_read_file(path, REGISTRY_MAX, &text, &len, &why);
  if (r == -ENOENT) {
    pass_error(err, TAKE_PTR(why));
    return r;
  }
  /* A read that fails says nothing of the contents (EACCES, EMFILE, ENOMEM, EIO, ...): an error, the file kept. Too
   * large or a symbolic link does. */
  if (r < 0 && r != -EFBIG && r != -ELOOP)
    return ca_error_set(err, -r, "cannot %s; the registry is left as it is", why->msg);
  if (r == 0) {
    struct ag_registry reg;
    r = ag_registry_parse(text, len, &reg, &why);
    if (r == -EPROTONOSUPPORT)
      return ca_error_set(err, EPROTONOSUPPORT, "registry %s is %s; kept as it is, for that agent", path, why->msg);
    if (r == 0 && !streq(reg.id, id)) {
      ag_registry_done(&reg);
      r = ca_error_set(&why, EINVAL, "it names session %s", reg.id);
    }
    if (r == 0) {
      *ret = reg;
      return 0;
    }
  }
  return registry_not_ours(s, id, path, r == -ELOOP, why, err);
}

int ag_registry_check_version(struct ag_state *s, const char *id, ca_error **err) {
  char path[PATH_MAX];
  snprintf(path, sizeof(path), "%s/%s.json", s->sessions, id);
  _cleanup_free_ char *text = NULL;
  size_t len;
  _cleanup_json_ cJSON *o = NULL;
  _cleanup_error_ ca_error *why = NULL;
  if (!ca_session_id_valid(id) || ca_read_file(path, REGISTRY_MAX, &text, &len, NULL) < 0 ||
      ca_json_parse(text, len, "registry", &o, NULL) < 0 || check_version(o, &why) != -EPROTONOSUPPORT)
    return 0;
  return ca_error_set(err, EPROTONOSUPPORT, "session %s: registry %s is %s; kept as it is, for that agent", id, path,
                      why->msg);
}

/* The parts of a name set_aside gave: <id>.json.corrupt-<time>, <id>.json.symlink-<time>, <id>.lock.symlink-<time>. */
static bool parse_aside_name(const char *name, struct ag_aside *ret) {
  struct ag_aside a = {0};
  size_t n = strlen(name);
  if (n <= AG_SESSION_ID_LEN + 14 || n >= sizeof(a.name))
    return false;
  memcpy(a.id, name, AG_SESSION_ID_LEN);
  const char *rest = name + AG_SESSION_ID_LEN;
  if (strncmp(rest, ".json.corrupt-", 14) == 0)
    strcpy(a.why, "corrupt");
  else if (strncmp(rest, ".json.symlink-", 14) == 0 || strncmp(rest, ".lock.symlink-", 14) == 0)
    strcpy(a.why, "symlink");
  else
    return false;
  uint64_t since;
  if (!ca_session_id_valid(a.id) || ca_parse_uint(rest + 14, "time", 0, INT64_MAX, &since, NULL) < 0)
    return false;
  a.since = (int64_t)since;
  strcpy(a.name, name);
  *ret = a;
  return true;
}

int ag_state_list_aside(struct ag_state *s, struct ag_aside **ret, size_t *ret_n, ca_error **err) {
  _cleanup_free_ struct ag_aside *v = NULL;
  size_t n = 0, cap = 0;
  DIR *d = s->sessions_fd < 0 ? NULL : open_sessions_dir(s);
  if (!d && s->sessions_fd >= 0)
    return ca_error_set_errno(err, errno, "list %s", s->sessions);
  struct dirent *de;
  struct ag_aside a;
  while (d && (de = readdir(d)))
    if (parse_aside_name(de->d_name, &a)) {
      if (n == cap) {
        struct ag_aside *grown = realloc(v, (cap = cap ? cap * 2 : 8) * sizeof(*v));
        if (!grown) {
          closedir(d);
          return ca_error_set(err, ENOMEM, "list %s: out of memory", s->sessions);
        }
        v = grown;
      }
      v[n++] = a;
    }
  if (d)
    closedir(d);
  *ret = TAKE_PTR(v);
  *ret_n = n;
  return 0;
}

int ag_state_remove_aside(struct ag_state *s, const char *name, ca_error **err) {
  struct ag_aside a;
  if (!parse_aside_name(name, &a))
    return ca_error_set(err, EINVAL, "'%s' is not the name of a file set aside", name);
  int r = refuse_change(s, "remove a file set aside", err);
  if (r < 0)
    return r;
  if (unlinkat(s->sessions_fd, name, 0) < 0 && errno != ENOENT)
    return ca_error_set_errno(err, errno, "remove %s/%s", s->sessions, name);
  return 0;
}

int ag_registry_remove(struct ag_state *s, const char *id, ca_error **err) {
  if (!ca_session_id_valid(id))
    return ca_error_set(err, EINVAL, "'%s' is not a session id", id);
  int r = refuse_change(s, "remove registry", err);
  if (r < 0)
    return r;
  char name[64];
  /* The socket first: a dead session's socket must not stay behind once its registry is gone. */
  snprintf(name, sizeof(name), "%s.sock", id);
  if (unlinkat(s->sessions_fd, name, 0) < 0 && errno != ENOENT)
    return ca_error_set_errno(err, errno, "remove %s/%s", s->sessions, name);
  _cleanup_free_ char *sock = ag_session_short_socket_path(id); /* where a state dir too deep put it */
  if (sock)
    (void)unlink(sock);
  snprintf(name, sizeof(name), "%s.json", id);
  if (unlinkat(s->sessions_fd, name, 0) < 0 && errno != ENOENT)
    return ca_error_set_errno(err, errno, "remove %s/%s", s->sessions, name);
  /* Temp files of a write or a lock creation the agent died in, before the lock: while we hold it, nobody else
   * can be writing them. */
  DIR *d = open_sessions_dir(s);
  if (!d)
    return ca_error_set_errno(err, errno, "list %s", s->sessions);
  struct dirent *de;
  char of[AG_SESSION_ID_LEN + 1];
  while ((de = readdir(d)))
    if (session_file_id(de->d_name, of) && streq(of, id) && (de->d_name[0] == '.' || strstr(de->d_name, ".json.tmp.")))
      (void)unlinkat(s->sessions_fd, de->d_name, 0); /* best effort: a leftover temp file is harmless */
  closedir(d);
  snprintf(name, sizeof(name), "%s.lock", id);
  if (unlinkat(s->sessions_fd, name, 0) < 0 && errno != ENOENT)
    return ca_error_set_errno(err, errno, "remove %s/%s", s->sessions, name);
  return 0;
}

char **ag_session_labels(const struct ag_registry *r, const char *const *extra) {
  size_t n_extra = 0;
  while (extra && extra[n_extra])
    n_extra++;
  char **v = calloc(12 + n_extra, sizeof(char *));
  if (!v)
    return NULL;
  size_t k = 0;
  bool ok = asprintf(&v[k++], AG_LABEL_SESSION "=%s", r->id) >= 0 && (v[k++] = strdup(AG_LABEL_MANAGED "=true")) &&
            asprintf(&v[k++], AG_LABEL_HOST "=%s", r->owner.host) >= 0 &&
            asprintf(&v[k++], AG_LABEL_BOOT_ID "=%s", r->owner.boot_id) >= 0 &&
            (!r->owner.machine[0] || asprintf(&v[k++], AG_LABEL_MACHINE "=%s", r->owner.machine) >= 0) &&
            (!r->owner.pidns || asprintf(&v[k++], AG_LABEL_PIDNS "=%" PRIu64, r->owner.pidns) >= 0) &&
            asprintf(&v[k++], AG_LABEL_OWNER_PID "=%d", (int)r->owner.pid) >= 0 &&
            asprintf(&v[k++], AG_LABEL_OWNER_START "=%" PRIu64, r->owner.start) >= 0 &&
            asprintf(&v[k++], AG_LABEL_CREATED "=%" PRId64, r->created) >= 0 &&
            asprintf(&v[k++], AG_LABEL_MODE "=%s", r->mode) >= 0 &&
            (!r->expires || asprintf(&v[k++], AG_LABEL_EXPIRES "=%" PRId64, r->expires) >= 0);
  for (size_t i = 0; ok && i < n_extra; i++)
    ok = (v[k++] = strdup(extra[i])) != NULL;
  if (!ok) {
    v[k - 1] = NULL; /* asprintf leaves it undefined on failure */
    ca_strv_free(v);
    return NULL;
  }
  return v;
}

char *ag_session_socket_path(const struct ag_state *s, const char *id) {
  char *p = NULL;
  if (asprintf(&p, "%s/%s.sock", s->sessions, id) < 0)
    return NULL;
  return p;
}

char *ag_session_short_socket_dir(void) {
  char *d = NULL;
  const char *xdg = getenv("XDG_RUNTIME_DIR");
  if (geteuid() == 0)
    d = strdup("/run/cleanup-agent.sockets");
  else if (xdg && xdg[0] == '/' && asprintf(&d, "%s/cleanup-agent.sockets", xdg) < 0)
    d = NULL;
  return d;
}

char *ag_session_short_socket_path(const char *id) {
  _cleanup_free_ char *dir = ag_session_short_socket_dir();
  char *p = NULL;
  if (!dir || asprintf(&p, "%s/%s.sock", dir, id) < 0)
    return NULL;
  return p;
}
