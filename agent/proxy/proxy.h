/* The Docker labeling proxy (issue 8): a per-session Unix socket that forwards every request to the engine and merges
 * the session's labels into container, network and volume create bodies, so that what a wrapped suite creates with
 * any client (docker CLI, compose, Testcontainers) is collected with the session. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "common.h"

/* Create bodies are buffered to be rewritten; larger ones are refused with 413. */
#define AG_PROXY_BODY_MAX (16u * 1024 * 1024)

/* ---- the request direction as a pure function over buffers (unit tests and the fuzzer feed it literal text) ---- */

struct ag_proxy_req;

/* A request-direction parser for one client connection. session_id is the session's id, labels its "key=value"
 * labels (NULL-terminated, session label included); both must outlive the parser. */
struct ag_proxy_req *ag_proxy_req_new(const char *session_id, const char *const *labels);
void ag_proxy_req_free(struct ag_proxy_req *r);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct ag_proxy_req *, ag_proxy_req_free)

/* Feeds bytes the client sent. What goes to the engine is appended to to_engine (create bodies rewritten, everything
 * else byte for byte), answers the proxy gives itself (400 refusal, 413 too large) to to_client. Returns 0, or 1 when
 * the connection is to be closed once the buffers are written (a create body that is not valid HTTP framing: nothing
 * more is forwarded); fails only when out of memory. */
int ag_proxy_req_feed(struct ag_proxy_req *r, const char *data, size_t len, ca_buf *to_engine, ca_buf *to_client,
                      ca_error **err);
/* True once the connection is a raw byte stream (after an upgrade or hijack, or bytes that are not HTTP). */
bool ag_proxy_req_is_raw(const struct ag_proxy_req *r);

/* The create body rewrite alone: 0 with *ret_body (caller frees) holding the body with labels merged; 1 when body is
 * not a JSON object with an object (or no) Labels, to be forwarded as it is; -EPERM with err saying why when the
 * client's io.cleanup-agent.session names another session; -ENOMEM. */
int ag_proxy_rewrite_body(const char *session_id, const char *const *labels, const char *body, size_t len,
                          char **ret_body, size_t *ret_len, ca_error **err);

/* True for POST [/vX.Y]/{containers,networks,volumes}/create[?query]. */
bool ag_proxy_is_create(const char *method, const char *url, size_t url_len);

/* ---- the proxy server ---- */

struct ag_proxy;

struct ag_proxy_config {
  const char *socket_path;   /* where to listen; created 0600, must not exist */
  const char *engine_socket; /* the engine's Unix socket */
  const char *session_id;    /* copied */
  const char *const *labels; /* copied; NULL-terminated "key=value" */
  unsigned max_connections;  /* 0: default */
};

/* Binds the socket and starts serving in a thread of the calling process. */
int ag_proxy_start(const struct ag_proxy_config *cfg, struct ag_proxy **ret, ca_error **err);
/* Stops accepting, lets requests in flight finish for at most drain_usec, closes every connection, unlinks the socket
 * and frees. NULL is fine. */
void ag_proxy_stop(struct ag_proxy *p, uint64_t drain_usec);

struct ag_state;
struct ag_registry;
/* Starts the proxy of session reg->id on <sessions dir>/<id>.sock, with the session's labels (ag_session_labels of
 * reg and extra), in front of docker_host's engine. -EPROTONOSUPPORT when docker_host is not a Unix socket (not
 * proxied), -ECONNREFUSED when nothing answers there; err says which. */
int ag_proxy_start_session(struct ag_state *st, const struct ag_registry *reg, const char *docker_host,
                           const char *const *extra_labels, struct ag_proxy **ret, ca_error **err);
/* The socket the proxy listens on. */
const char *ag_proxy_socket_path(const struct ag_proxy *p);

/* True when something accepts connections on the Unix socket at path (one connect, microseconds). */
bool ag_proxy_engine_answers(const char *path);

/* The engine's Unix socket path of a docker host URL, or NULL for tcp:// and other transports (not proxied). */
const char *ag_proxy_engine_socket(const char *docker_host);
