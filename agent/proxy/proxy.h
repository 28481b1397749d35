/* The Docker labeling proxy (issue 8): a per-session Unix socket that forwards every request to the engine and merges
 * the session's labels into container, network and volume create bodies, so that what a wrapped suite creates with
 * any client (docker CLI, compose, Testcontainers) is collected with the session. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common.h"

/* Create bodies are buffered to be rewritten; larger ones are refused with 413. Real ones are a few KiB. */
#define AG_PROXY_BODY_MAX (1024u * 1024)
/* What all connections together may buffer of create bodies; a create beyond it is refused with 503. */
#define AG_PROXY_BODY_BUDGET (16u * 1024 * 1024)

/* ---- the request direction as a pure function over buffers (unit tests and the fuzzer feed it literal text) ---- */

struct ag_proxy_req;

/* A request-direction parser for one client connection. session_id is the session's id, labels its "key=value"
 * labels (NULL-terminated, session label included); both must outlive the parser. */
struct ag_proxy_req *ag_proxy_req_new(const char *session_id, const char *const *labels);
void ag_proxy_req_free(struct ag_proxy_req *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct ag_proxy_req *, ag_proxy_req_free)

/* What the connection does once the buffers are written. */
enum {
  AG_PROXY_GO = 0,    /* read on */
  AG_PROXY_CLOSE = 1, /* nothing more is forwarded: close, once the proxy's answer, if pending, went out */
  AG_PROXY_WAIT = 2,  /* a request that may take the connection over (attach, exec start, Upgrade) was sent: feed
                         nothing more until ag_proxy_req_waiting is false (the engine's answer decides whether the
                         connection turns into a byte stream), then feed again (len 0 is fine) */
};

/* Feeds bytes the client sent. What goes to the engine is appended to to_engine (create bodies rewritten, everything
 * else byte for byte), the proxy's own answers (400 for a request it cannot read or refuses, 413) to to_client, or
 * later to the engine direction's output when an engine answer is in flight. Returns an AG_PROXY_* action, or
 * -ENOMEM. A connection becomes a byte stream only after the engine answered 101, or 200 without framing to attach or
 * exec start. */
int ag_proxy_req_feed(struct ag_proxy_req *r, const char *data, size_t len, ca_buf *to_engine, ca_buf *to_client,
                      ca_error **err);
/* Feeds bytes the engine sent (len 0: the engine closed): appended to to_client as they are, followed by the proxy's
 * own answer once every answer before it is complete. Returns AG_PROXY_GO, AG_PROXY_CLOSE (close once to_client is
 * written), or -ENOMEM. */
int ag_proxy_resp_feed(struct ag_proxy_req *r, const char *data, size_t len, ca_buf *to_client, ca_error **err);
/* True once the connection is a raw byte stream (after the engine accepted an upgrade or hijack). */
bool ag_proxy_req_is_raw(const struct ag_proxy_req *r);
/* True while what the client sends waits for the engine's answer to a request that may take the connection over. */
bool ag_proxy_req_waiting(const struct ag_proxy_req *r);
/* True between requests: none is in flight and the connection is no byte stream (the server's idle timeout applies). */
bool ag_proxy_req_idle(const struct ag_proxy_req *r);
/* True while the proxy's answer waits for the engine's answers in flight. */
bool ag_proxy_req_answer_pending(const struct ag_proxy_req *r);
/* True once the proxy answers a request itself (a refusal), whether its answer went out or waits. */
bool ag_proxy_req_answers(const struct ag_proxy_req *r);

/* The create body rewrite alone: 0 with *ret_body (caller frees) holding the body with the session's labels spliced
 * in, every other byte as it was; -EINVAL when body is not one JSON object cJSON reads with an object (or null)
 * Labels, -EPERM when a label of the io.cleanup-agent. namespace other than keep=true (or the session's own) is set,
 * err saying why; -ENOMEM. */
int ag_proxy_rewrite_body(const char *session_id, const char *const *labels, const char *body, size_t len,
                          char **ret_body, size_t *ret_len, ca_error **err);

/* As ag_proxy_rewrite_body for a container create, and with cgroup_parent (not NULL or empty: --contain-containers)
 * every HostConfig.CgroupParent set to it (HostConfig added when absent), so that the container's cgroup is inside the
 * session's: one the client set inside it stays, a non-empty one outside is refused with -EPERM and err saying why. */
int ag_proxy_rewrite_container_body(const char *session_id, const char *const *labels, const char *cgroup_parent,
                                    const char *body, size_t len, char **ret_body, size_t *ret_len, ca_error **err);

/* The named volumes of a container create body's HostConfig.Binds ("name:/path[:mode]"), each once, as a
 * NULL-terminated list (caller frees); an empty list when there are none or the body does not parse. */
int ag_proxy_bind_volumes(const char *body, size_t len, char ***ret, ca_error **err);

/* Makes sure the named volume exists before a container create that binds it is forwarded: a missing one is created
 * with the session's labels, an existing one is not ours and stays as it is. 0, or negative with err saying why (the
 * create is then refused: 503 for -ESHUTDOWN, the session's end began, else 502). */
typedef int (*ag_proxy_volume_fn)(void *ctx, const char *name, ca_error **err);
void ag_proxy_req_set_volume_fn(struct ag_proxy_req *r, ag_proxy_volume_fn fn, void *ctx);
/* --contain-containers: container creates get HostConfig.CgroupParent = parent (ag_proxy_rewrite_container_body);
 * parent must outlive r. NULL: as the client sent it. */
void ag_proxy_req_set_cgroup_parent(struct ag_proxy_req *r, const char *parent);

/* What the server learns from a connection: created is called with the kind ('c'ontainer, 'n'etwork, 'v'olume) and
 * the id (a volume's name) of every create the engine answered with success, and of every step container of a build
 * that keeps them (ag_proxy_build_keeps_steps), also when the client is gone; ending
 * says whether the session is ending, when creates are answered 503. Either may be NULL. */
/* The client of a connection, read once at accept (SO_PEERCRED, then /proc/<pid>/exe and cmdline, bounded): who
 * made what the receipt lists. pid 0 when unknown; cmdline holds the arguments NUL-separated. */
struct ag_proxy_peer {
  pid_t pid;
  char exe[512];
  char cmdline[2048];
  size_t cmdline_len;
};

/* What the receipt learns of a create the engine answered with success: the resource and who asked for it. The
 * strings are NULL when the request did not carry them and live only for the call. */
struct ag_proxy_create_info {
  char kind; /* 'c'ontainer, 'n'etwork, 'v'olume */
  const char *id, *name, *image;
  const char *user_agent, *tc_session; /* the User-Agent and x-tc-sid headers */
  const char *compose_project;         /* the com.docker.compose.project label of the body */
  bool keep, auto_remove;              /* keep=true; a container's HostConfig.AutoRemove */
  const struct ag_proxy_peer *peer;
};

/* Who watches the proxy for the receipt: created for each create answered with success (kept ones too), removed for
 * each DELETE of /containers/X, /networks/X or /volumes/X the engine answered 2xx (target as the client named it: an
 * id, a prefix of one, or a name). Both are called from the connections' threads. */
struct ag_proxy_observer {
  void (*created)(void *ctx, const struct ag_proxy_create_info *info);
  void (*removed)(void *ctx, char kind, const char *target);
  void *ctx;
};

struct ag_proxy_hooks {
  void (*created)(void *ctx, char kind, const char *id);
  /* The receipt's view (may be NULL): as ag_proxy_observer's, with the server's ctx. */
  void (*created_info)(void *ctx, const struct ag_proxy_create_info *info);
  void (*removed)(void *ctx, char kind, const char *target);
  bool (*ending)(void *ctx);
  /* The server's budget for create bodies buffered across its connections: reserve takes n more bytes of it (false:
   * over budget, the create is answered 503), release gives n back. Both or neither. */
  bool (*reserve)(void *ctx, size_t n);
  void (*release)(void *ctx, size_t n);
  void *ctx;
};
void ag_proxy_req_set_hooks(struct ag_proxy_req *r, const struct ag_proxy_hooks *hooks);
/* The connection's client, for created_info (copied). */
void ag_proxy_req_set_peer(struct ag_proxy_req *r, const struct ag_proxy_peer *peer);
/* Fills peer from a connected Unix socket's SO_PEERCRED and /proc; false when the kernel did not say who it is. */
bool ag_proxy_peer_read(int fd, struct ag_proxy_peer *peer);
/* True while a create sent to the engine waits for its answer (the server keeps reading the engine for its id). */
bool ag_proxy_req_create_in_flight(const struct ag_proxy_req *r);

/* True when a create body sets io.cleanup-agent.keep=true: what it makes is not removed by id at the end. */
bool ag_proxy_body_keeps(const char *body, size_t len);

/* The target of a POST /build with io.cleanup-agent.built-by=<session_id> merged into its labels parameter (added when
 * absent), the one label of the agent's on an image: labels is the session's, for its outer label (a nested session)
 * and nothing else; the client may set keep=true, any other label of the namespace is refused. A classic build (not
 * version=2) gets forcerm=1 when the client set neither forcerm nor rm false, and in place of the client's when it
 * keeps all its step containers (rm false) but is quiet (q): its output names none of them when it succeeds. 0 with
 * *ret_url (caller frees), -EINVAL (labels that are not a JSON object, or a parameter the engine would skip: a ';'
 * or a bad escape) or -EPERM with err saying why, -ENOMEM. */
int ag_proxy_rewrite_build_url(const char *session_id, const char *const *labels, const char *url, size_t len,
                               char **ret_url, ca_error **err);

/* True when a POST /build target (as the proxy forwards it) asks a classic build to keep step containers: forcerm set
 * to a false value ("0", "false", ...: docker-py sends forcerm=False), or absent with rm false (the docker CLI's
 * --rm=false). Their ids come from the build's "Running in <id>" lines and are recorded as the containers a create
 * made. */
bool ag_proxy_build_keeps_steps(const char *url, size_t len);

/* The target of a POST /commit with changes appended, the last: LABEL with every label of the agent's that names a
 * session or its owner set empty (the engine copies a container's labels into the image it commits, and an image's
 * into every container made from it, and can set a label but not remove one), then built-by=<session_id>, as on an
 * image the session builds; one label in each, after one that a client's change ending in an escape may swallow. 0
 * with *ret_url (caller frees), or -ENOMEM. */
int ag_proxy_rewrite_commit_url(const char *session_id, const char *url, size_t len, char **ret_url, ca_error **err);

/* True for POST [/vX.Y]/{containers,networks,volumes}/create[?query]. */
bool ag_proxy_is_create(const char *method, const char *url, size_t url_len);

/* ---- the proxy server ---- */

struct ag_proxy;

struct ag_proxy_config {
  const char *socket_path;   /* where to listen; created 0600 (see share), must not exist */
  const char *engine_socket; /* the engine's Unix socket; with connect_engine, the engine's name in messages */
  /* A TCP or TLS engine: each connection (and each request of the proxy's own) gets a new stream to the engine from
   * connect_engine (a descriptor, or negative with err saying why). The proxy owns engine_ctx from ag_proxy_start on,
   * also when that fails, and gives it to engine_ctx_free (may be NULL) when it is freed. */
  int (*connect_engine)(void *ctx, ca_error **err);
  void *engine_ctx;
  void (*engine_ctx_free)(void *ctx);
  /* Called once, in the thread of the first connection that reached the engine, before anything of it goes there;
   * the connections that reach it meanwhile wait. On failure (err says why) that connection is refused and the next
   * one calls again; once the proxy is stopping, none is called (the connection is refused). NULL: nothing to call.
   * A session whose engine did not answer at its start records the engine here (lifecycle.c). */
  int (*engine_reached)(void *ctx, ca_error **err);
  void *engine_reached_ctx;
  /* Whoever may use the engine's socket may use this one: with share, the socket gets the engine socket's owner, group
   * and mode (as far as the agent may give them; else 0600) and the peer check admits the users they admit, besides
   * the agent's user and root, who are always admitted. */
  bool share;
  uid_t uid;
  gid_t gid;
  mode_t mode;
  const char *session_id;    /* copied */
  const char *const *labels; /* copied; NULL-terminated "key=value" */
  unsigned max_connections;  /* 0: default (256) */
  size_t body_budget;        /* create bytes buffered across all connections; 0: default (AG_PROXY_BODY_BUDGET) */
  uint64_t idle_usec;        /* a connection idle this long between requests is closed; 0: default (2 min) */
  const struct ag_proxy_observer *observer; /* copied; NULL: nobody keeps a receipt */
};

/* Binds the socket and starts serving in a thread of the calling process. */
int ag_proxy_start(const struct ag_proxy_config *cfg, struct ag_proxy **ret, ca_error **err);
/* Stops accepting, answers creates 503 (the session is ending), lets requests in flight finish for at most
 * drain_usec, closes every connection, unlinks the socket and frees. NULL is fine. */
void ag_proxy_stop(struct ag_proxy *p, uint64_t drain_usec);
/* As ag_proxy_stop, handing out what the engine created through the proxy: "c:<id>", "n:<id>", "v:<name>" (NULL-
 * terminated, caller frees; NULL when out of memory), so that the end removes them even when a listing by label
 * missed them. */
void ag_proxy_stop_recorded(struct ag_proxy *p, uint64_t drain_usec, char ***ret_created);

struct ag_state;
struct ag_registry;
struct dk_client;
/* Starts the proxy of session reg->id on <sessions dir>/<id>.sock, or on <short runtime dir>/<id>.sock when that path
 * is too long for a Unix socket, with the session's labels (ag_session_labels of reg and extra), in front of
 * docker_host's engine. A Unix socket need not answer yet (it is connected per request); a tcp:// engine is reached
 * through dk (connected: its TLS files and checks, dk_client_stream), which the proxy clones. reached (may be NULL)
 * becomes the config's engine_reached, with ctx. -EPROTONOSUPPORT for a tcp:// engine without dk, another error when
 * the socket cannot be bound; err says which. */
int ag_proxy_start_session(struct ag_state *st, const struct ag_registry *reg, const char *docker_host,
                           const struct dk_client *dk, const char *const *extra_labels,
                           int (*reached)(void *ctx, ca_error **err), void *ctx, struct ag_proxy **ret, ca_error **err);
/* --contain-containers: the connections accepted from now on give every container they create the cgroup parent
 * parent (copied); set it before the command that uses the proxy starts. */
int ag_proxy_set_cgroup_parent(struct ag_proxy *p, const char *parent, ca_error **err);
/* The socket the proxy listens on. */
const char *ag_proxy_socket_path(const struct ag_proxy *p);

/* True when something accepts connections on the Unix socket at path (one connect, microseconds). */
bool ag_proxy_engine_answers(const char *path);

/* The engine's Unix socket path of a docker host URL, or NULL for tcp:// and other transports (not proxied). */
const char *ag_proxy_engine_socket(const char *docker_host);
