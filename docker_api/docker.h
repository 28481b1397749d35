/* docker_api: a Docker Engine API client over libcurl and cJSON.
 *
 * One dk_client per thread (dk_client_clone is cheap and does no I/O). Every call that can fail returns a negative
 * errno-like value and fills *err; the HTTP status, when there was one, is in (*err)->detail and the daemon's own
 * message is part of (*err)->msg. dk_error_kind() classifies an error for retry and cleanup decisions.
 * Short calls are bounded by timeouts; wait, logs and events are unbounded but take a struct dk_cancel.
 * The library never prints and never exits. libcurl is initialised (curl_global_init) by the first client that
 * connects, or by dk_global_init(). Every connection it opens is close-on-exec. */
#pragma once

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common.h"

/* The highest API version this client speaks; the engine's own version is used when it is lower. */
#define DK_API_VERSION_MAX "1.44"
/* Engines below this version are refused (wait conditions and label filters need it). */
#define DK_API_VERSION_MIN "1.30"

struct dk_client;

/* ---- errors ------------------------------------------------------------------------------------------------ */

enum dk_error_kind {
  DK_ERR_FINAL = 0,   /* retrying will not help: bad request, forbidden, malformed answer, cancelled, ... */
  DK_ERR_NOT_FOUND,   /* 404 "No such ..." (an unknown route is FINAL, not NOT_FOUND) */
  DK_ERR_CONFLICT,    /* 409: name already in use, volume in use, ... */
  DK_ERR_IN_PROGRESS, /* 409: removal or prune already in progress: poll until gone */
  DK_ERR_NOT_RUNNING, /* 409: container is not running */
  DK_ERR_TRANSIENT,   /* engine unreachable, connection dropped, timeout, 5xx */
};

/* Classifies an error returned by any dk_ function (NULL is FINAL). */
enum dk_error_kind dk_error_kind(const ca_error *e);
/* True when a (transient) error is worth retrying for this request; with idempotent false, only when nothing reached
 * the engine (its socket refused the connection or does not exist). */
bool dk_error_retryable(const ca_error *e, bool idempotent);
/* The detail of an error that says the engine's TLS setup is wrong (a certificate refused either way, a missing
 * file): the user's to fix, never an engine that is merely down, so no command goes on without the engine then. */
#define DK_ERROR_DETAIL_TLS 1
bool dk_error_is_tls(const ca_error *e);

/* ---- client ------------------------------------------------------------------------------------------------ */

/* Initialises libcurl for the process now (else the first client that connects does); thread-safe, idempotent.
 * libcurl stays initialised until exit: a lazy client may connect from another thread at any time. */
int dk_global_init(ca_error **err);

/* An engine's address and how it was found. */
struct dk_host {
  char *url;     /* unix:///path or tcp://host:port, as found */
  char *origin;  /* how: given_origin, "DOCKER_HOST", "docker context 'NAME'", "rootless socket"; NULL: default */
  char *tls_dir; /* a context's TLS files (ca.pem, cert.pem, key.pem); NULL without */
  bool tls_skip_verify; /* the context's SkipTLSVerify */
};

/* Finds the engine the way the docker CLI does: given (e.g. a --docker-host, named given_origin in messages), else
 * DOCKER_HOST, else the active context (DOCKER_CONTEXT, else currentContext in $DOCKER_CONFIG/config.json or
 * ~/.docker/config.json; "default" is none), else $XDG_RUNTIME_DIR/docker.sock when it is a socket, else
 * unix:///var/run/docker.sock. A context that does not exist is an ENOENT error naming it. */
int dk_host_find(const char *given, const char *given_origin, struct dk_host *ret, ca_error **err);
void dk_host_done(struct dk_host *h);

struct dk_client_options {
  const char *host;           /* unix:///path or tcp://host:port; NULL: the one dk_host_find finds */
  unsigned timeout_ms;        /* short calls (inspect, list, create, start); 0: 30 s */
  unsigned remove_timeout_ms; /* kill, delete, and stop on top of its grace period; 0: 60 s */
  int retries;                /* transient failures of idempotent calls are retried this often; <0: never; 0: 4 */
  size_t max_body;            /* cap on one response body or log/event line; 0: 64 MiB */
  bool lazy; /* dk_client_new only checks a unix socket exists and is accessible (and a TLS setup's files are there);
              * initialising libcurl and negotiating wait for the first call, dk_client_connect or
              * dk_client_connect_start. A TLS engine that refuses the client's certificates then says so only at that
              * first call: a caller that must say it before anything runs connects at once. */
};

/* Connects to the engine named by opts (NULL: defaults), negotiates the API version through /_ping and refuses
 * engines below DK_API_VERSION_MIN. Errors name what the user can fix (engine not running, permissions, TLS files). */
int dk_client_new(const struct dk_client_options *opts, struct dk_client **ret, ca_error **err);
/* A first call on a lazy client, made by its background thread once the connection succeeded. */
typedef void (*dk_first_call_fn)(struct dk_client *c, void *userdata);
/* Lazy clients: starts connecting in a background thread (all signals blocked) and returns at once; once connected,
 * that thread makes first(c, userdata) (NULL: none), so that the caller's first request overlaps its own work too.
 * The client must not be used, nor what first writes read, until dk_client_connect returned. A no-op for connected
 * clients, and first is not called when the thread does not start or the connection fails: a caller that needs its
 * answer makes the call itself then. */
void dk_client_connect_start(struct dk_client *c, dk_first_call_fn first, void *userdata);
/* Lazy clients: waits for or performs the connection (and the first call of dk_client_connect_start) and returns the
 * connection's outcome, the same every time; any call on the client does this first. 0 at once for clients that are
 * connected. */
int dk_client_connect(struct dk_client *c, ca_error **err);
/* A new client for the same engine and negotiated version, for another thread; no I/O. The source must be connected. */
int dk_client_clone(const struct dk_client *c, struct dk_client **ret, ca_error **err);
/* Sets c's timeouts, retries and body cap to o's (with dk_client_new's defaults; o's host and lazy are not read). */
void dk_client_set_limits(struct dk_client *c, const struct dk_client_options *o);
void dk_client_free(struct dk_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dk_client *, dk_client_free)
/* A new connection to c's engine as a raw byte stream (the caller speaks HTTP on it), in *ret_fd (close-on-exec, the
 * caller's to close): the Unix socket itself, or for tcp:// one end of a socketpair that a thread of its own relays to
 * a connection made with the client's TLS files and checks. Reads only what dk_client_clone copies: any thread may
 * call it on a client no other thread frees. A TLS setup that is wrong has dk_error_is_tls. */
int dk_client_stream(const struct dk_client *c, int *ret_fd, ca_error **err);
/* The negotiated API version, e.g. "1.41". */
const char *dk_client_api_version(const struct dk_client *c);

/* Engine version ("20.10.24") and OS ("linux") from /version; the caller frees both strings. */
int dk_engine_version(struct dk_client *c, char **ret_version, char **ret_os, ca_error **err);
/* The engine's cgroup driver ("cgroupfs", "systemd") and cgroup version ("1", "2") from /info; the caller frees both.
 */
int dk_engine_cgroup(struct dk_client *c, char **ret_driver, char **ret_version, ca_error **err);

/* ---- cancellation of long calls ---------------------------------------------------------------------------- */

/* Stops a wait, logs or events call: from any thread with dk_cancel_request (the call fails with ECANCELED within
 * about 50 ms), or when CLOCK_MONOTONIC passes deadline_usec (ETIMEDOUT; 0 means no deadline). */
struct dk_cancel {
  atomic_bool requested;
  uint64_t deadline_usec;
};
static inline void dk_cancel_request(struct dk_cancel *c) {
  atomic_store(&c->requested, true);
}

/* ---- labels, filters, listing ------------------------------------------------------------------------------ */

struct dk_label {
  char *key;
  char *value;
};
struct dk_labels {
  size_t n;
  struct dk_label *v;
};
/* The value of key, or NULL when absent. */
const char *dk_labels_get(const struct dk_labels *l, const char *key);

/* Checks a "key=value" label: non-empty printable key without '=' or spaces, value valid UTF-8 without control
 * characters, bounded lengths. Create calls run it on every label. */
int dk_label_validate(const char *kv, ca_error **err);

/* A list filter, e.g. {"label", "io.cleanup-agent.session=..."}, {"status", "dead"}; arrays end with {NULL, NULL}.
 * Repeated label filters are ANDed, repeated status values ORed. */
struct dk_filter {
  const char *key;
  const char *value;
};

enum dk_kind { DK_CONTAINER, DK_NETWORK, DK_VOLUME };

/* One listed object. For volumes id is the name. */
struct dk_item {
  char *id;
  char **names;       /* NULL-terminated; containers without the leading '/' */
  char *state;        /* containers: created, running, exited, dead, ...; NULL otherwise */
  char *image;        /* containers only */
  int64_t created_us; /* unix microseconds; 0 when the engine did not say */
  struct dk_labels labels;
};
struct dk_list {
  size_t n;
  struct dk_item *items;
};
void dk_list_free(struct dk_list *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dk_list *, dk_list_free)
/* The value of label key on item, or NULL. */
const char *dk_item_label(const struct dk_item *item, const char *key);

/* Lists objects of a kind matching filters (may be NULL). Containers of every state are listed. */
int dk_list(struct dk_client *c, enum dk_kind kind, const struct dk_filter *filters, struct dk_list **ret,
            ca_error **err);
/* Receives one listed object; negative (with err set) stops the listing with that error. */
typedef int (*dk_item_fn)(void *userdata, const struct dk_item *item, ca_error **err);
/* Lists like dk_list, but hands each object to fn as the answer arrives and frees it when fn returns: memory holds one
 * object, never the whole answer, whatever the engine's population (the engine does not page). A transient failure
 * is retried only while fn has seen nothing. */
int dk_list_each(struct dk_client *c, enum dk_kind kind, const struct dk_filter *filters, dk_item_fn fn, void *userdata,
                 ca_error **err);
/* One listing of dk_list_many: a kind and its filters. */
struct dk_list_query {
  enum dk_kind kind;
  const struct dk_filter *filters;
};
#define DK_LIST_MANY_MAX 6
/* Makes n (at most DK_LIST_MANY_MAX) listings at once, each on its own connection (one round trip instead of n);
 * ret[i] for q[i]. No retries: on any failure nothing is returned and the error names the first listing that failed
 * (callers fall back to dk_list). */
int dk_list_many(struct dk_client *c, const struct dk_list_query *q, size_t n, struct dk_list **ret, ca_error **err);

/* ---- removal (cleanup semantics) --------------------------------------------------------------------------- */

/* Makes the object gone: containers are removed with force and their anonymous volumes. Returns 0 when removed,
 * 1 when it was already gone (404); "removal in progress" is polled until gone; transient failures are retried. */
int dk_remove(struct dk_client *c, enum dk_kind kind, const char *id, ca_error **err);

/* dk_remove for n objects with at most parallel (0: 8) requests in flight. ret_errors (n slots, zeroed by the
 * caller) receives one error per failed item, NULL for removed or already gone; the caller frees them. Returns 0
 * when every item is gone, else -code of the first failure with *err summarising how many failed. */
int dk_remove_many(struct dk_client *c, enum dk_kind kind, const char *const *ids, size_t n, unsigned parallel,
                   ca_error **ret_errors, ca_error **err);
/* dk_remove_many where no request starts at or after not_after_usec (CLOCK_MONOTONIC, 0: none): a slot that comes
 * free takes the next item at once, and the items not tried by then fail with ETIMEDOUT. ret_gone (n slots, or
 * NULL) says which were already gone (404 to the first try: nothing was removed). */
int dk_remove_many_until(struct dk_client *c, enum dk_kind kind, const char *const *ids, size_t n, unsigned parallel,
                         uint64_t not_after_usec, ca_error **ret_errors, bool *ret_gone, ca_error **err);

/* ---- containers -------------------------------------------------------------------------------------------- */

enum dk_mount_type { DK_MOUNT_BIND, DK_MOUNT_VOLUME, DK_MOUNT_TMPFS };
struct dk_mount {
  enum dk_mount_type type;
  const char *source; /* host path (bind) or volume name; NULL for tmpfs */
  const char *target; /* absolute path in the container */
  bool read_only;
};

/* What to create. Arrays are NULL-terminated; zero/NULL fields keep the engine's default. */
struct dk_container_spec {
  const char *image; /* required */
  const char *name;
  const char *const *cmd;
  const char *const *env;    /* "K=V" */
  const char *const *labels; /* "key=value", checked by dk_label_validate */
  const char *working_dir;
  const char *user;
  const struct dk_mount *mounts;
  size_t n_mounts;
  const char *network_mode; /* "none", "host", a network name */
  int64_t memory_bytes;     /* swap is set equal: no swap on top */
  double cpus;              /* NanoCpus = cpus * 1e9 */
  int64_t pids_limit;
  const char *stop_signal;
  int stop_timeout_s; /* 0: engine default */
  bool auto_remove;
  bool init;
};

/* Creates a container and returns its id (caller frees). A name conflict fails with DK_ERR_CONFLICT, except when the
 * existing container carries every label of the spec (a request libcurl re-sent): then its id is returned. */
int dk_container_create(struct dk_client *c, const struct dk_container_spec *spec, char **ret_id, ca_error **err);
/* Starts a container; already running counts as success. */
int dk_container_start(struct dk_client *c, const char *id, ca_error **err);
/* Sends a signal (NULL: SIGKILL). Returns 0 when sent, 1 when the container was not running. */
int dk_container_kill(struct dk_client *c, const char *id, const char *signal, ca_error **err);
/* Stops with a grace period of timeout_s (<0: the container's own). Returns 0 when stopped, 1 when not running. */
int dk_container_stop(struct dk_client *c, const char *id, int timeout_s, ca_error **err);

struct dk_container_info {
  char *id;
  char *name;     /* without the leading '/' */
  char *image;    /* as given at create (Config.Image) */
  char *image_id; /* sha256:... */
  char *status;   /* created, running, paused, restarting, removing, exited, dead */
  bool running;
  bool oom_killed; /* 20.10 on cgroup v1 may set it some ms after the exit, and loses it now and then (see tests) */
  int exit_code;
  int pid;
  char *error;                                 /* State.Error, NULL when empty */
  int64_t created_us, started_us, finished_us; /* unix microseconds, 0 when never */
  struct dk_labels labels;
};
void dk_container_info_free(struct dk_container_info *i);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dk_container_info *, dk_container_info_free)
/* Inspects a container by id or name. */
int dk_container_inspect(struct dk_client *c, const char *id, struct dk_container_info **ret, ca_error **err);

/* A wait set up on the engine before the container is started, so a fast exit cannot be missed. */
struct dk_wait;
enum dk_wait_condition { DK_WAIT_NEXT_EXIT, DK_WAIT_NOT_RUNNING, DK_WAIT_REMOVED };
/* Sends the wait request and returns once the engine acknowledged it (headers received). */
int dk_wait_begin(struct dk_client *c, const char *id, enum dk_wait_condition cond, struct dk_wait **ret,
                  ca_error **err);
/* Blocks until the condition is met and returns the exit status. On ECANCELED or ETIMEDOUT the wait stays armed and
 * dk_wait_end may be called again (e.g. after killing the container). */
int dk_wait_end(struct dk_wait *w, const struct dk_cancel *cancel, int *ret_exit_code, ca_error **err);
void dk_wait_free(struct dk_wait *w);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dk_wait *, dk_wait_free)

enum dk_stream { DK_STDOUT = 1, DK_STDERR = 2 };
/* Receives demultiplexed output; return 0 to continue, non-zero to stop the call (it then returns 0). */
typedef int (*dk_log_fn)(void *userdata, enum dk_stream stream, const char *data, size_t len);
struct dk_logs_options {
  bool follow; /* stream until the container stops */
  bool no_stdout, no_stderr;
  dk_log_fn on_output;
  void *userdata;
};
/* Streams the logs of a container created without a TTY. An in-band error frame from the engine fails the call
 * with its message. Unbounded when following: pass cancel to bound it. */
int dk_container_logs(struct dk_client *c, const char *id, const struct dk_logs_options *o,
                      const struct dk_cancel *cancel, ca_error **err);

/* ---- networks and volumes ---------------------------------------------------------------------------------- */

/* Creates a bridge-less network ("internal" keeps it off the host) with labels; returns its id (caller frees). */
int dk_network_create(struct dk_client *c, const char *name, const char *const *labels, bool internal, char **ret_id,
                      ca_error **err);
/* Creates a local volume (name NULL: the engine picks one) with labels; returns its name (caller frees). */
int dk_volume_create(struct dk_client *c, const char *name, const char *const *labels, char **ret_name, ca_error **err);

/* ---- events ------------------------------------------------------------------------------------------------ */

struct dk_event {
  const char *type;   /* container, network, volume, ... */
  const char *action; /* create, start, die, destroy, ... */
  const char *id;     /* Actor.ID */
  int64_t time_ns;
  struct dk_labels attributes; /* Actor.Attributes: the labels plus name, image, exitCode, ... */
};
/* Receives one event; valid only during the call. Return 0 to continue, > 0 to stop (the subscription returns 0),
 * a negative errno to stop with an error (the subscription returns that value). */
typedef int (*dk_event_fn)(void *userdata, const struct dk_event *ev);
struct dk_events_options {
  const struct dk_filter *filters; /* e.g. {"type","container"}, {"label","k=v"} */
  int64_t since_us;                /* replay from this unix time (the engine keeps only 256 events); 0: now */
  dk_event_fn on_event;
  void *userdata;
};
/* Subscribes to events and calls on_event for each until it asks to stop, cancel fires, or the stream fails. */
int dk_events(struct dk_client *c, const struct dk_events_options *o, const struct dk_cancel *cancel, ca_error **err);

/* ---- images, disk usage, build cache (images.c, system.c) --------------------------------------------------- */

/* One image as /images/json and /system/df list it. */
struct dk_image {
  char *id;            /* sha256:... */
  char **tags;         /* RepoTags, NULL-terminated (empty: untagged) */
  int64_t created;     /* unix seconds */
  int64_t size;        /* bytes, its parents' layers included */
  int64_t shared_size; /* bytes it shares with other images; -1 when the engine did not say */
  int64_t containers;  /* containers that use it (/system/df); -1 when the engine did not say */
  struct dk_labels labels;
};
struct dk_images {
  size_t n;
  struct dk_image *v;
};
void dk_images_free(struct dk_images *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dk_images *, dk_images_free)
/* Lists the images matching filters (may be NULL), intermediate ones left out. */
int dk_image_list(struct dk_client *c, const struct dk_filter *filters, struct dk_images **ret, ca_error **err);
/* Removes an image by id without force: an image a container uses, or one with several tags, is refused by the engine
 * (DK_ERR_CONFLICT, its message kept). 0 when removed, 1 when it was already gone. */
int dk_image_remove(struct dk_client *c, const char *id, ca_error **err);
/* When the image was last tagged (Metadata.LastTagTime), else created: unix seconds, the image's "last used". */
int dk_image_last_used(struct dk_client *c, const char *id, int64_t *ret, ca_error **err);

/* The engine's data root (DockerRootDir) and storage driver from GET /info; the caller frees both. */
int dk_system_info(struct dk_client *c, char **ret_root, char **ret_driver, ca_error **err);
/* One container of /system/df: what its writable layer takes, and which image it uses. */
struct dk_df_container {
  char *id;
  char *image_id;
  char *state;
  int64_t size_rw; /* -1 when the engine did not say */
  struct dk_labels labels;
};
/* GET /system/df: images (with sizes and users), containers and the build cache's total. */
struct dk_df {
  struct dk_images *images; /* never NULL once parsed */
  struct dk_df_container *containers;
  size_t n_containers;
  int64_t layers_size;
  /* The build cache as a prune's keep-storage counts it: its records that no image shares (an image's layers are
   * records too, Shared, which a prune leaves). Of those, reclaimable: not in use, not the builder's own. */
  int64_t build_cache_size, build_cache_reclaimable;
};
int dk_system_df(struct dk_client *c, struct dk_df **ret, ca_error **err);
void dk_df_free(struct dk_df *df);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct dk_df *, dk_df_free)
/* POST /build/prune?keep-storage=keep: reclaimable records go, whole and the least used first, until the build
 * cache (build_cache_size) is at most keep bytes (0: all of them); *ret_reclaimed bytes were freed. */
int dk_build_prune(struct dk_client *c, uint64_t keep, uint64_t *ret_reclaimed, ca_error **err);
/* How many networks hold an address pool (an IPAM config: a subnet), the predefined bridge included. */
int dk_network_pools_used(struct dk_client *c, unsigned *ret, ca_error **err);
