/* Sessions: ids, the state directory, the lease lock and the registry file (DESIGN.md "Sessions and liveness"). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common.h"

#define AG_SESSION_ID_LEN 32
#define AG_LABEL_PREFIX "io.cleanup-agent."
#define AG_LABEL_SESSION AG_LABEL_PREFIX "session"
#define AG_LABEL_MANAGED AG_LABEL_PREFIX "managed"
#define AG_LABEL_HOST AG_LABEL_PREFIX "host"
#define AG_LABEL_MACHINE AG_LABEL_PREFIX "machine"
#define AG_LABEL_BOOT_ID AG_LABEL_PREFIX "boot-id"
#define AG_LABEL_PIDNS AG_LABEL_PREFIX "pidns"
#define AG_LABEL_OWNER_PID AG_LABEL_PREFIX "owner-pid"
#define AG_LABEL_OWNER_START AG_LABEL_PREFIX "owner-start"
#define AG_LABEL_CREATED AG_LABEL_PREFIX "created"
#define AG_LABEL_EXPIRES AG_LABEL_PREFIX "expires"
#define AG_LABEL_MODE AG_LABEL_PREFIX "mode"
#define AG_LABEL_KEEP AG_LABEL_PREFIX "keep"
/* The one label of the agent's on an image built through a session's proxy: the session that built it. */
#define AG_LABEL_BUILT_BY AG_LABEL_PREFIX "built-by"
/* The agent's names in cg_root_options (cgroup/ knows none of its own): the default root's, the option that sets
 * it, and the systemd driver's slice and unit prefix (scopes cleanup-agent-run-<id>.scope). */
#define AG_SYSTEMD_NAMES(opts) ((opts).slice = "cleanup_agent.slice", (opts).unit_prefix = "cleanup-agent-")
#define AG_CGROUP_NAMES(opts)                                                                                          \
  ((opts).name = "cleanup-agent.slice", (opts).root_option = "--cgroup-root", AG_SYSTEMD_NAMES(opts))

/* A fresh session id from getrandom. */
int ag_session_id_new(char ret[static AG_SESSION_ID_LEN + 1], ca_error **err);

/* Who owns a session: this machine, this boot, this PID namespace, this process. The hostname is for people. */
struct ag_owner {
  char host[256];
  char machine[33]; /* /etc/machine-id, 32 hex digits; "" when it cannot be read */
  char boot_id[64];
  uint64_t pidns; /* inode of /proc/self/ns/pid; 0 when unknown */
  pid_t pid;
  uint64_t start; /* field 22 of /proc/<pid>/stat */
};
/* Fills the owner fields for the calling process. */
int ag_owner_self(struct ag_owner *ret, ca_error **err);

/* The state directory, opened once: <dir>/sessions holds <id>.json and <id>.lock. */
struct ag_state {
  char *dir;
  char *sessions;
  int sessions_fd; /* O_DIRECTORY|O_NOFOLLOW|O_CLOEXEC; -1 when a directory opened with AG_STATE_NO_CREATE is absent */
  bool read_only;  /* AG_STATE_READ_ONLY: nothing in the directory is created, renamed or removed through it */
};
/* A state dir that does not exist is not created: it reads as empty (kill). */
#define AG_STATE_NO_CREATE (1u << 0)
/* Nothing is changed through the handle (ps, gc --dry-run): no lock file created, no registry written, removed or set
 * aside (EROFS); a corrupt one is an error that names it and leaves it in place. Implies AG_STATE_NO_CREATE. */
#define AG_STATE_READ_ONLY (1u << 1)
/* Resolves the directory (--state-dir, else /run/cleanup-agent as root, else $XDG_RUNTIME_DIR/cleanup-agent),
 * creates it 0700 and refuses one that is a symlink, not ours, or open to others. */
int ag_state_open(const char *dir_opt, struct ag_state **ret, ca_error **err);
/* The same with AG_STATE_* flags. */
int ag_state_open_flags(const char *dir_opt, unsigned flags, struct ag_state **ret, ca_error **err);
void ag_state_free(struct ag_state *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct ag_state *, ag_state_free)

/* Takes the session's lease lock without waiting: 0 and *ret_fd (close-on-exec) when taken, -EWOULDBLOCK when a live
 * agent holds it, -ENOENT when there is no lock file and !create. */
int ag_session_lock(struct ag_state *s, const char *id, bool create, int *ret_fd, ca_error **err);
/* A new session's lock in two steps, so that a guardian can hold it before anyone sees the session: a locked file
 * with no name (O_TMPFILE; where the file system has none, a temp file .<id>.lock.<pid>, a dead session's leftover
 * that the next start and the session's own collection remove), then its publication as <id>.lock. */
int ag_session_lock_new(struct ag_state *s, const char *id, int *ret_fd, ca_error **err);
int ag_session_lock_publish(struct ag_state *s, int fd, const char *id, ca_error **err);
/* The session ids that have a registry or a lock file in the state dir, NULL-terminated; names that are not valid
 * ids are ignored. */
int ag_state_list_sessions(struct ag_state *s, char ***ret_ids, ca_error **err);

/* The registry's "version": what this agent writes and the newest it reads. A registry of a newer version is not
 * parsed as if it were of this one: it is kept as it is, for the agent that wrote it (EPROTONOSUPPORT). */
#define AG_REGISTRY_VERSION 1

/* The registry file sessions/<id>.json. */
struct ag_registry {
  char id[AG_SESSION_ID_LEN + 1];
  char mode[16]; /* run, container-seq */
  struct ag_owner owner;
  int64_t created; /* unix seconds */
  int64_t expires; /* unix seconds, 0 without --ttl */
  pid_t guardian_pid;
  char *cgroup_root; /* where the run-<id> leaf lives; NULL without cgroups */
  char *docker_host; /* the engine the session used; NULL without one */
  char **command;    /* NULL-terminated */
  /* Under process tracking, the command's main process and the process group it leads, with their start times (field
   * 22 of /proc/<pid>/stat): what a collector without the agent kills. 0 when none is recorded (a cgroup session, a
   * registry written before them, or the command not started yet); main_pid and pgrp are set together. */
  pid_t main_pid;
  uint64_t main_start;
  pid_t pgrp;
  uint64_t pgrp_start;
  /* Why the last collection kept the session registered, and when (unix seconds); NULL and 0 when none did. */
  char *collect_error;
  int64_t collect_error_at;
  /* run --images=remove: the images the session built go with it ("images": "remove"; absent: keep). */
  bool images_remove;
};
void ag_registry_done(struct ag_registry *r);
/* Serialises r as JSON (caller frees). */
char *ag_registry_format(const struct ag_registry *r);
/* Parses a registry file's text; every field is type-checked and the id validated. EPROTONOSUPPORT when its version
 * is newer than AG_REGISTRY_VERSION (the message names it), EBADMSG or EINVAL when it is not a registry. */
int ag_registry_parse(const char *text, size_t len, struct ag_registry *ret, ca_error **err);
/* Writes sessions/<id>.json atomically, mode 0600. */
int ag_registry_write(struct ag_state *s, const struct ag_registry *r, ca_error **err);
/* Loads sessions/<id>.json: ENOENT when there is no file; a read that fails (EACCES, EMFILE, ENOMEM, ...) is that
 * error, the file left alone; a registry of a newer agent is EPROTONOSUPPORT, left alone. Content that is not a
 * registry (or a symbolic link) is EINVAL: moved aside to <id>.json.corrupt-<time> (.symlink-<time>) and the error says
 * where, or, through a read-only state, left in place and named. */
int ag_registry_load(struct ag_state *s, const char *id, struct ag_registry *ret, ca_error **err);
/* -EPROTONOSUPPORT, with the line to print, when sessions/<id>.json was written by a newer agent: such a session is
 * left to that agent (not collected, its files kept). 0 otherwise, whatever else is wrong with the file. */
int ag_registry_check_version(struct ag_state *s, const char *id, ca_error **err);

/* A state file set aside (a corrupt registry, a symbolic link planted for a registry or a lock): kept for people to
 * look at, and removed by gc once AG_ASIDE_KEEP_SECONDS old (or older than gc's --older-than). */
#define AG_ASIDE_KEEP_SECONDS (7 * 24 * 3600)
struct ag_aside {
  char name[96]; /* <id>.json.corrupt-<time>, <id>.json.symlink-<time> or <id>.lock.symlink-<time> */
  char id[AG_SESSION_ID_LEN + 1];
  char why[8];   /* corrupt, symlink */
  int64_t since; /* unix seconds, from the name */
};
/* The files set aside in the state dir (*ret_n of them; caller frees *ret); other names are ignored. */
int ag_state_list_aside(struct ag_state *s, struct ag_aside **ret, size_t *ret_n, ca_error **err);
/* Removes a file set aside, by its name as listed (never anything else: a name of another form is EINVAL). */
int ag_state_remove_aside(struct ag_state *s, const char *name, ca_error **err);
/* The labels the agent puts on everything of the session: session, managed, owner (host, boot id, and machine and
 * pidns when known), created, mode, expires (with a
 * TTL), then extra ("key=value", may be NULL). NULL-terminated, caller frees with ca_strv_free; NULL when out of
 * memory. */
char **ag_session_labels(const struct ag_registry *r, const char *const *extra);
/* <sessions dir>/<id>.sock, the session's Docker proxy socket (caller frees); NULL when out of memory. */
char *ag_session_socket_path(const struct ag_state *s, const char *id);
/* Where a session whose state dir is too deep for a Unix socket path has its proxy socket: the short runtime dir
 * (/run/cleanup-agent.sockets as root, else $XDG_RUNTIME_DIR/cleanup-agent.sockets) and <it>/<id>.sock (caller
 * frees; NULL without such a dir, or out of memory). ag_registry_remove removes that socket too. */
char *ag_session_short_socket_dir(void);
char *ag_session_short_socket_path(const char *id);
/* Deletes the Docker proxy socket, the registry and then the lock file of a session whose lock the caller holds. */
int ag_registry_remove(struct ag_state *s, const char *id, ca_error **err);
