/* The collection rules of DESIGN.md ("Sessions and liveness"), as a pure function over a resource's labels, so that
 * every decision gc takes can be tested with literal input. Labels are untrusted: a value that does not parse proves
 * nothing, and a resource is collected only when a rule proves it dead or expired. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Why a resource goes (> 0) or stays (<= 0). */
enum ag_rule {
  AG_SPARE_NOT_OURS = -6,    /* no valid io.cleanup-agent.session label */
  AG_SPARE_KEEP = -5,        /* io.cleanup-agent.keep=true */
  AG_SPARE_LIVE = -4,        /* its session's lock is held on this host */
  AG_SPARE_NEW = -3,         /* created after the scan began: left for the next run */
  AG_SPARE_UNPROVEN = -2,    /* nothing proves its session dead (another machine, boot or PID namespace, or labels
                              * missing) */
  AG_SPARE_OWNER_ALIVE = -1, /* this machine, boot and PID namespace, and its owner process still runs */
  AG_RULE_NONE = 0,
  AG_RULE_DEAD_SESSION = 1, /* its session's registry is here and its lock is free */
  AG_RULE_OWNER_GONE,       /* owner labels name this machine, boot and PID namespace; the owner process is gone */
  AG_RULE_REBOOTED,         /* owner labels name this machine with another boot id */
  AG_RULE_EXPIRED,          /* io.cleanup-agent.expires is in the past (any host) */
  AG_RULE_OLDER_THAN,       /* gc --older-than, for a session of this machine (or, unlabeled, of this hostname) */
  AG_RULE_SET_ASIDE, /* a state file set aside as corrupt longer ago than AG_ASIDE_KEEP_SECONDS or --older-than */
};

/* "dead-session", "owner-gone", ..., "keep", "live", ... for output. */
const char *ag_rule_name(enum ag_rule r);

/* What this host knows of a session from its state dir. */
enum ag_session_state {
  AG_SESSION_UNKNOWN = 0, /* no registry or lock file here */
  AG_SESSION_ALIVE,       /* its lock is held */
  AG_SESSION_DEAD,        /* its files are here and its lock is free */
};

/* Who gc is: the owner rules judge only what names the same machine (/etc/machine-id), boot and PID namespace. */
struct ag_rule_ctx {
  const char *host;    /* the hostname: only --older-than of resources labeled without a machine uses it */
  const char *machine; /* NULL when /etc/machine-id could not be read: no owner rule applies then */
  const char *boot_id;
  uint64_t pidns;       /* inode of /proc/self/ns/pid, 0 when unknown */
  int64_t now;          /* unix seconds */
  int64_t scan_started; /* unix seconds: anything created later is spared */
  uint64_t older_than;  /* seconds, 0 without --older-than */
  enum ag_session_state (*session_state)(void *userdata, const char *id);
  /* 1 when pid runs and started at start (field 22 of /proc/<pid>/stat), -1 when it is gone, 0 when that cannot be
   * told (cg_proc_alive). */
  int (*process_alive)(void *userdata, pid_t pid, uint64_t start);
  void *userdata;
};

/* A resource as gc sees it: its label values (NULL when absent) and its times. */
struct ag_rule_input {
  const char *session, *keep, *host, *machine, *boot_id, *pidns, *owner_pid, *owner_start, *expires;
  int64_t created;  /* unix seconds, 0 when unknown */
  int64_t finished; /* unix seconds an exited container stopped, 0 when unknown or not exited */
};

/* The rule that collects the resource, or the reason it is spared. */
enum ag_rule ag_rule_match(const struct ag_rule_ctx *ctx, const struct ag_rule_input *in);
