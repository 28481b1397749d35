/* The Docker labeling proxy (issue 8).
 *
 * Threading: one accept thread, and per client connection two threads, one per direction, each a plain blocking
 * read/write loop, so a hijacked stream (attach, exec), a streaming answer (logs -f, events, stats, wait) and a
 * keep-alive connection need no special case. The directions share the connection's parser state under one lock, which
 * also covers every write to the client, so the proxy's own answers and the engine's never interleave. The client
 * direction waits for the other only after a request that may take the connection over (attach, exec start, Upgrade),
 * until the engine answered it. With a few dozen connections per CI session, threads (small stacks, a hard cap on
 * connections) are the simpler correct choice. Every thread runs with all signals blocked, so the agent's signalfd
 * keeps getting SIGINT/SIGTERM/SIGHUP/SIGCHLD.
 *
 * The client-to-engine direction goes through http_parser (libhttp-parser): request heads are held until they are
 * complete; a create request (POST [/vX.Y]/{containers,networks,volumes}/create) has its body buffered (de-chunked,
 * capped), the session's labels spliced in (proxy_body.c) and is sent with a fresh Content-Length; every other request
 * is forwarded byte for byte as it arrives. Fail closed: a request the proxy cannot read (bad framing, Content-Length
 * with chunked, a head over 80 KiB, a create body that is not one JSON object, a create with Upgrade) is answered 400
 * in the engine's format and the connection closes; it never turns into a byte copy that would carry unlabeled creates.
 * A POST that makes what the session does not remove (a swarm service, secret or config, a swarm, a plugin) is
 * answered 400 too, and a create while the session ends 503, both once the body was read (at once to a client that
 * waits with Expect: 100-continue).
 * The engine-to-client direction is copied byte for byte and parsed only to know where each answer ends: the
 * connection becomes a raw copy only once the engine answered 101, or 200 without framing to attach or exec start
 * (a detached exec start's 200 has a Content-Length and keeps the connection HTTP), and the proxy's own answer to a
 * pipelined request goes out only after the engine's answers to the requests before it. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <fcntl.h>
#include <http_parser.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"
#include "creates.h" /* the guardian's count of creates in flight */
#include "nesting.h" /* label names only: this file links without the session code (the fuzz target) */
#include "session.h"

#define HEAD_MAX (HTTP_MAX_HEADER_SIZE + 16 * 1024) /* the parser refuses larger heads before this is reached */
#define IO_CHUNK (64 * 1024)
#define DEFAULT_MAX_CONNECTIONS 256
#define THREAD_STACK (256 * 1024)
#define FORCE_CLOSE_WAIT_USEC (5 * 1000000ULL)
#define LINGER_IDLE_MSEC 5000             /* after a refusal, how long a client may send nothing before it is closed */
#define LINGER_MAX_USEC (30 * 1000000ULL) /* and how long its rest is read in all (nginx's lingering close) */
#define DEFAULT_IDLE_USEC (120 * 1000000ULL)
#define ACCEPT_BACKOFF_MIN_MS 10
#define ACCEPT_BACKOFF_MAX_MS 1000

/* ---- the request direction ------------------------------------------------------------------------------------ */

enum phase { PH_HEAD, PH_BODY_PASS, PH_BODY_CREATE, PH_BODY_DROP /* read to its end, then refused */ };

#define INFLIGHT_MAX 64 /* requests sent whose answers are not complete yet (real clients send one at a time) */
#define HOLD_MAX (1024 * 1024)
/* A request's decoded path, without its query: one longer is refused (request_unreadable), so that every reading of
 * the path below sees all of it. */
#define PATH_SIZE 4096

struct ag_proxy_req {
  http_parser p;
  const char *session_id;
  const char *const *labels;
  bool raw;
  bool closed;   /* the proxy answered (or will): nothing more is forwarded */
  bool answered; /* the proxy's answer went to the client: whatever the engine sends after it is dropped */
  bool waiting;  /* a request that may take the connection over was sent: what follows waits for its answer */
  enum phase phase, next_phase;
  bool message_done; /* set by on_message_complete, handled after the pause */
  bool oom, too_large;
  bool over_budget; /* the server's budget for buffered bodies refused this create's next bytes */
  size_t reserved;  /* bytes of body held against that budget */
  bool in_value;
  bool upgrade_header;   /* the request has Upgrade, or Connection: upgrade */
  bool form_body;        /* Content-Type: application/x-www-form-urlencoded: parameters the engine reads first */
  bool expects_continue; /* Expect: 100-continue: the client sends no body before an answer */
  bool hijack;           /* the request is one the engine may answer by taking the connection over */
  ca_buf pending;        /* raw bytes of the head being parsed */
  ca_buf url;
  ca_buf headers; /* "Field: value\r\n" of a create head, without the framing headers */
  ca_buf field, value;
  ca_buf body;                  /* a create request's decoded body */
  ca_buf hold;                  /* client bytes that came while waiting */
  ca_buf deferred;              /* the proxy's own answer, until the engine answered everything sent before it */
  ag_proxy_volume_fn volume_fn; /* named volumes of a container create's Binds are made sure of through it */
  const char *cgroup_parent;    /* --contain-containers: every container's cgroup parent; NULL: as sent */
  void *volume_ctx;
  struct ag_proxy_hooks hooks;
  char create;              /* the kind of the create being read (create_kind), 'b' for a build that keeps its step
                               containers, 0 for other requests */
  char kinds[INFLIGHT_MAX]; /* per request in flight, its create kind (or 0), at the same ring index */
  ca_buf resp_body;         /* the answer to a create, read for its id; a build's current line */
  bool line_lost;           /* the build's current line is longer than resp_body holds: skipped */
  bool resp_create;         /* the answer being parsed is a create's success */
  unsigned answer_after;    /* deferred goes out once no more than this many requests are in flight */
  /* The requests in flight, oldest first: a ring of INFLIGHT_MAX bits each, whether it is a HEAD (an answer without
   * a body) and whether it may take the connection over. */
  unsigned inflight, first;
  uint64_t head_bits, hijack_bits;
  /* The engine direction. */
  http_parser rp;
  bool resp_in_message, resp_informational, resp_lost;
  /* The receipt's view (hooks.created_info, hooks.removed): who the client is, the headers of the request being read,
   * and per request in flight what its create made or which object its DELETE names. */
  struct ag_proxy_peer peer;
  char user_agent[256], tc_session[128];
  uint64_t keep_bits; /* creates with keep=true: not recorded for removal */
  struct request_meta *meta[INFLIGHT_MAX];
};

/* What the receipt needs of one request in flight: a create's name, image and labels, or a DELETE's target. */
struct request_meta {
  char *name, *image, *compose_project, *user_agent, *tc_session;
  bool keep, auto_remove;
  char deletes; /* the kind a DELETE names, or 0 */
  char *target;
};

static void request_meta_free(struct request_meta *m) {
  if (!m)
    return;
  char *strings[] = {m->name, m->image, m->compose_project, m->user_agent, m->tc_session, m->target};
  for (size_t i = 0; i < ELEMENTSOF(strings); i++)
    free(strings[i]);
  free(m);
}

static struct ag_proxy_req *req_of(http_parser *p) {
  return p->data;
}

static int track(struct ag_proxy_req *r, ca_buf *b, const char *at, size_t len) {
  _cleanup_error_ ca_error *e = NULL;
  if (ca_buf_append(b, at, len, &e) < 0) {
    if (e->code == ENOMEM)
      r->oom = true;
    return -1; /* over its cap: the parser stops with an error, and the request is refused */
  }
  return 0;
}

/* The body's bytes go back to the server's budget for buffered bodies. */
static void body_release(struct ag_proxy_req *r) {
  if (r->reserved && r->hooks.release)
    r->hooks.release(r->hooks.ctx, r->reserved);
  r->reserved = 0;
}

static int on_message_begin(http_parser *p) {
  struct ag_proxy_req *r = req_of(p);
  ca_buf_reset(&r->url);
  ca_buf_reset(&r->headers);
  ca_buf_reset(&r->field);
  ca_buf_reset(&r->value);
  ca_buf_reset(&r->body);
  body_release(r);
  r->in_value = false;
  r->too_large = false;
  r->over_budget = false;
  r->upgrade_header = r->form_body = r->expects_continue = false;
  r->user_agent[0] = r->tc_session[0] = '\0';
  return 0;
}

static int on_url(http_parser *p, const char *at, size_t len) {
  return track(req_of(p), &req_of(p)->url, at, len);
}

/* The framing headers are recomputed for a rewritten body; Expect would wait for a 100 that the buffering makes moot.
 */
static bool framing_header(const char *name) {
  return strcasecmp(name, "content-length") == 0 || strcasecmp(name, "transfer-encoding") == 0 ||
         strcasecmp(name, "expect") == 0;
}

static int commit_header(struct ag_proxy_req *r) {
  int k = 0;
  const char *name = ca_buf_str(&r->field);
  if (strcasecmp(name, "upgrade") == 0 ||
      (strcasecmp(name, "connection") == 0 && strcasestr(ca_buf_str(&r->value), "upgrade")))
    r->upgrade_header = true;
  if (strcasecmp(name, "content-type") == 0)
    r->form_body = strncasecmp(ca_buf_str(&r->value), "application/x-www-form-urlencoded", 33) == 0;
  if (strcasecmp(name, "expect") == 0)
    r->expects_continue = strcasestr(ca_buf_str(&r->value), "100-continue") != NULL;
  if (strcasecmp(name, "user-agent") == 0)
    snprintf(r->user_agent, sizeof(r->user_agent), "%s", ca_buf_str(&r->value));
  else if (strcasecmp(name, "x-tc-sid") == 0)
    snprintf(r->tc_session, sizeof(r->tc_session), "%s", ca_buf_str(&r->value));
  if (r->field.len && !framing_header(name))
    k = ca_buf_appendf(&r->headers, NULL, "%s: %s\r\n", name, ca_buf_str(&r->value));
  if (k < 0)
    r->oom = true;
  ca_buf_reset(&r->field);
  ca_buf_reset(&r->value);
  r->in_value = false;
  return k;
}
static int on_header_field(http_parser *p, const char *at, size_t len) {
  struct ag_proxy_req *r = req_of(p);
  if (r->in_value && commit_header(r) < 0)
    return -1;
  return track(r, &r->field, at, len);
}

static int on_header_value(http_parser *p, const char *at, size_t len) {
  struct ag_proxy_req *r = req_of(p);
  r->in_value = true;
  return track(r, &r->value, at, len);
}

static int on_headers_complete(http_parser *p) {
  struct ag_proxy_req *r = req_of(p);
  if (r->in_value && commit_header(r) < 0)
    return -1;
  bool create =
      ag_proxy_is_create(http_method_str((enum http_method)p->method), r->url.data ? r->url.data : "", r->url.len);
  r->next_phase = create ? PH_BODY_CREATE : PH_BODY_PASS;
  http_parser_pause(p, 1);
  return 0;
}

static int on_body(http_parser *p, const char *at, size_t len) {
  struct ag_proxy_req *r = req_of(p);
  if (r->phase != PH_BODY_CREATE || r->too_large || r->over_budget)
    return 0;
  bool too_large = r->body.len + len > AG_PROXY_BODY_MAX;
  if (too_large || (r->hooks.reserve && !r->hooks.reserve(r->hooks.ctx, len))) {
    r->too_large = too_large; /* answered at once, not after the client sent all of it */
    r->over_budget = !too_large;
    ca_buf_free(&r->body);
    ca_buf_init(&r->body, AG_PROXY_BODY_MAX);
    body_release(r);
    http_parser_pause(p, 1);
    return 0;
  }
  r->reserved += r->hooks.reserve ? len : 0;
  return track(r, &r->body, at, len);
}

static int on_message_complete(http_parser *p) {
  struct ag_proxy_req *r = req_of(p);
  r->message_done = true;
  http_parser_pause(p, 1);
  return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

struct ag_proxy_req *ag_proxy_req_new(const char *session_id, const char *const *labels) {
  struct ag_proxy_req *r = calloc(1, sizeof(*r));
  if (!r)
    return NULL;
  http_parser_init(&r->p, HTTP_REQUEST);
  r->p.data = r;
  r->session_id = session_id;
  r->labels = labels;
  ca_buf_init(&r->pending, HEAD_MAX);
  ca_buf_init(&r->url, HEAD_MAX);
  ca_buf_init(&r->headers, 2 * HEAD_MAX);
  ca_buf_init(&r->field, HEAD_MAX);
  ca_buf_init(&r->value, HEAD_MAX);
  ca_buf_init(&r->body, AG_PROXY_BODY_MAX);
  ca_buf_init(&r->hold, HOLD_MAX);
  ca_buf_init(&r->deferred, 64 * 1024);
  ca_buf_init(&r->resp_body, 64 * 1024);
  http_parser_init(&r->rp, HTTP_RESPONSE);
  r->rp.data = r;
  return r;
}

void ag_proxy_req_free(struct ag_proxy_req *r) {
  if (!r)
    return;
  ca_buf_free(&r->pending);
  ca_buf_free(&r->url);
  ca_buf_free(&r->headers);
  ca_buf_free(&r->field);
  ca_buf_free(&r->value);
  ca_buf_free(&r->body);
  body_release(r);
  ca_buf_free(&r->hold);
  ca_buf_free(&r->deferred);
  ca_buf_free(&r->resp_body);
  for (size_t i = 0; i < INFLIGHT_MAX; i++)
    request_meta_free(r->meta[i]);
  free(r);
}

void ag_proxy_req_set_volume_fn(struct ag_proxy_req *r, ag_proxy_volume_fn fn, void *ctx) {
  r->volume_fn = fn;
  r->volume_ctx = ctx;
}

void ag_proxy_req_set_cgroup_parent(struct ag_proxy_req *r, const char *parent) {
  r->cgroup_parent = parent;
}

void ag_proxy_req_set_hooks(struct ag_proxy_req *r, const struct ag_proxy_hooks *hooks) {
  r->hooks = *hooks;
}

void ag_proxy_req_set_peer(struct ag_proxy_req *r, const struct ag_proxy_peer *peer) {
  r->peer = *peer;
}

bool ag_proxy_req_create_in_flight(const struct ag_proxy_req *r) {
  for (unsigned i = 0; i < r->inflight && !r->raw; i++)
    if (r->kinds[(r->first + i) % INFLIGHT_MAX])
      return true;
  return false;
}

bool ag_proxy_req_is_raw(const struct ag_proxy_req *r) {
  return r->raw;
}

bool ag_proxy_req_waiting(const struct ag_proxy_req *r) {
  return r->waiting && !r->raw && !r->closed;
}

bool ag_proxy_req_idle(const struct ag_proxy_req *r) {
  return !r->raw && r->inflight == 0;
}

bool ag_proxy_req_answer_pending(const struct ag_proxy_req *r) {
  return r->deferred.len > 0 && !r->answered;
}

bool ag_proxy_req_answers(const struct ag_proxy_req *r) {
  return r->deferred.len > 0;
}

/* Percent-decodes s[0, len) up to the first of the characters stop into out; false when it does not fit. */
static bool decode_until(const char *s, size_t len, const char *stop, char *out, size_t size) {
  size_t n = 0;
  for (size_t i = 0; i < len && !memchr(stop, s[i], strlen(stop)); i++) {
    char c = s[i];
    if (c == '%' && i + 2 < len && isxdigit((unsigned char)s[i + 1]) && isxdigit((unsigned char)s[i + 2])) {
      char hex[3] = {s[i + 1], s[i + 2], 0};
      c = (char)strtol(hex, NULL, 16);
      i += 2;
    }
    if (n + 1 >= size)
      return false;
    out[n++] = c;
  }
  out[n] = '\0';
  return true;
}

/* Strips "scheme://host" of an absolute-form target and percent-decodes the path (the engine's router matches the
 * decoded path) into out; false when it does not fit. */
static bool request_path(const char *url, size_t len, char *out, size_t size) {
  size_t i = 0;
  const char *sep = memchr(url, ':', len);
  if (len && url[0] != '/' && sep && (size_t)(sep - url) + 2 < len && sep[1] == '/' && sep[2] == '/') {
    i = (size_t)(sep - url) + 3;
    while (i < len && url[i] != '/')
      i++;
  }
  return decode_until(url + i, len - i, "?#", out, size);
}

/* The path without a "/v1.41" API version prefix. */
static const char *unversioned(const char *path) {
  if (path[0] == '/' && path[1] == 'v' && (isdigit((unsigned char)path[2]) || path[2] == '.')) {
    const char *q = path + 2;
    while (isdigit((unsigned char)*q) || *q == '.')
      q++;
    if (*q == '/')
      return q;
  }
  return path;
}

/* What a POST creates: 'c'ontainer, 'n'etwork, 'v'olume, or 0 when it is not a create. */
static char create_kind(const char *url, size_t url_len) {
  char path[PATH_SIZE];
  if (!request_path(url, url_len, path, sizeof(path)))
    return 0;
  const char *p = unversioned(path);
  return streq(p, "/containers/create") ? 'c'
         : streq(p, "/networks/create") ? 'n'
         : streq(p, "/volumes/create")  ? 'v'
                                        : 0;
}

/* What a POST makes that the session does not remove, so that it would outlive the session (a swarm object, a swarm,
 * a plugin), or NULL. */
static const char *outliving_create(const char *url, size_t url_len) {
  static const struct {
    const char *path, *what;
  } table[] = {{"/services/create", "a swarm service"},   {"/secrets/create", "a swarm secret"},
               {"/configs/create", "a swarm config"},     {"/swarm/init", "a swarm"},
               {"/swarm/join", "a swarm membership"},     {"/plugins/pull", "an installed plugin"},
               {"/plugins/create", "an installed plugin"}};
  char path[PATH_SIZE];
  if (!request_path(url, url_len, path, sizeof(path)))
    return NULL;
  const char *p = unversioned(path);
  for (size_t i = 0; i < ELEMENTSOF(table); i++)
    if (streq(p, table[i].path))
      return table[i].what;
  return NULL;
}

bool ag_proxy_is_create(const char *method, const char *url, size_t url_len) {
  return streq(method, "POST") && create_kind(url, url_len);
}

/* Attach and exec start take over the connection even without an Upgrade header (older clients). */
static bool is_hijack(const char *url, size_t url_len) {
  char path[PATH_SIZE];
  if (!request_path(url, url_len, path, sizeof(path)))
    return false;
  const char *p = unversioned(path);
  size_t n = strlen(p);
  return (strncmp(p, "/containers/", 12) == 0 && n > 19 && streq(p + n - 7, "/attach")) ||
         (strncmp(p, "/exec/", 6) == 0 && n > 12 && streq(p + n - 6, "/start"));
}

/* An answer of the proxy itself, in the engine's error format ({"message": ...}) so that clients print it. The
 * connection closes after it. */
static int answer(ca_buf *to_client, int status, const char *reason, const char *message, ca_error **err) {
  _cleanup_json_ cJSON *j = cJSON_CreateObject();
  _cleanup_free_ char *text = NULL;
  if (!j || !cJSON_AddStringToObject(j, "message", message) || !(text = cJSON_PrintUnformatted(j)))
    return ca_error_set(err, ENOMEM, "out of memory");
  return ca_buf_appendf(to_client, err,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                        "Connection: close\r\n\r\n%s",
                        status, reason, strlen(text), text);
}

/* The proxy's answer goes out when every answer of the engine before it is complete, never in the middle of one. */
static void flush_answer(struct ag_proxy_req *r, ca_buf *to_client, bool engine_ended) {
  if (!r->deferred.len || r->answered)
    return;
  if (!engine_ended && (r->inflight > r->answer_after || r->resp_in_message))
    return;
  if (ca_buf_append(to_client, r->deferred.data, r->deferred.len, NULL) == 0)
    r->answered = true;
}

/* The proxy answers the request itself and nothing more of the connection is forwarded. */
static int refuse(struct ag_proxy_req *r, int status, const char *reason, const char *message, ca_buf *to_client,
                  ca_error **err) {
  r->closed = true;
  /* A request whose head went to the engine already is in flight: the answer waits only for those before it. */
  r->answer_after = r->phase == PH_BODY_PASS ? 1 : 0;
  ca_buf_reset(&r->deferred);
  if (answer(&r->deferred, status, reason, message, err) < 0)
    return -ENOMEM;
  flush_answer(r, to_client, false);
  return 0;
}

static int refuse_unreadable(struct ag_proxy_req *r, enum http_errno e, ca_buf *to_client, ca_error **err) {
  char msg[512];
  if (e == HPE_HEADER_OVERFLOW || e == HPE_CB_url || e == HPE_CB_header_field || e == HPE_CB_header_value)
    snprintf(msg, sizeof(msg),
             "cleanup-agent: the request head is larger than %d KiB, more than the session's Docker proxy reads: the "
             "request is refused and the connection closed",
             HTTP_MAX_HEADER_SIZE / 1024);
  else
    snprintf(msg, sizeof(msg),
             "cleanup-agent: the session's Docker proxy cannot read this HTTP request (%s: %s): it is refused and the "
             "connection closed",
             http_errno_name(e), http_errno_description(e));
  return refuse(r, 400, "Bad Request", msg, to_client, err);
}

/* Records a request sent to the engine; false when too many are in flight already. */
static bool push_inflight(struct ag_proxy_req *r, bool head, bool hijack) {
  if (r->inflight >= INFLIGHT_MAX)
    return false;
  unsigned i = (r->first + r->inflight++) % INFLIGHT_MAX;
  r->kinds[i] = head || hijack ? 0 : r->create;
  if (r->kinds[i])
    ag_creates_begin();
  uint64_t bit = 1ULL << i;
  r->head_bits = head ? r->head_bits | bit : r->head_bits & ~bit;
  r->hijack_bits = hijack ? r->hijack_bits | bit : r->hijack_bits & ~bit;
  r->keep_bits &= ~bit;
  request_meta_free(TAKE_PTR(r->meta[i]));
  return true;
}

/* The ring index of the request pushed last. */
static unsigned last_slot(const struct ag_proxy_req *r) {
  return (r->first + r->inflight - 1) % INFLIGHT_MAX;
}

/* The value of query parameter key in a request target, percent-decoded into out; false when absent or too long. */
static bool query_param(const char *url, const char *key, char *out, size_t size) {
  const char *q = strchr(url, '?');
  size_t klen = strlen(key);
  for (const char *p = q; p && *p; p = strchr(p, '&')) {
    p++;
    if (strncmp(p, key, klen) == 0 && p[klen] == '=')
      return decode_until(p + klen + 1, strlen(p + klen + 1), "&#", out, size);
  }
  return false;
}

static char *json_string_dup(const cJSON *j) {
  return cJSON_IsString(j) && j->valuestring[0] ? strdup(j->valuestring) : NULL;
}

/* What the receipt keeps of a create: its name (the ?name= of a container, the Name of a network or volume), image,
 * compose project and AutoRemove, and the request's headers. NULL when out of memory (the receipt then misses it). */
static struct request_meta *create_meta(const struct ag_proxy_req *r, bool keep) {
  struct request_meta *m = calloc(1, sizeof(*m));
  if (!m)
    return NULL;
  _cleanup_json_ cJSON *j = cJSON_ParseWithLength(r->body.data ? r->body.data : "", r->body.len);
  char name[256];
  if (r->create == 'c' && query_param(ca_buf_str(&r->url), "name", name, sizeof(name)))
    m->name = strdup(name);
  else if (r->create != 'c')
    m->name = json_string_dup(cJSON_GetObjectItemCaseSensitive(j, "Name"));
  m->image = json_string_dup(cJSON_GetObjectItemCaseSensitive(j, "Image"));
  m->compose_project = json_string_dup(
      cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "Labels"), "com.docker.compose.project"));
  m->auto_remove =
      cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "HostConfig"), "AutoRemove"));
  m->user_agent = r->user_agent[0] ? strdup(r->user_agent) : NULL;
  m->tc_session = r->tc_session[0] ? strdup(r->tc_session) : NULL;
  m->keep = keep;
  return m;
}

/* A DELETE of /containers/X, /networks/X or /volumes/X: what the receipt marks removed by its creator once the engine
 * answered 2xx. NULL for any other request. */
static struct request_meta *delete_meta(const struct ag_proxy_req *r) {
  char path[PATH_SIZE];
  if (r->p.method != HTTP_DELETE || !request_path(ca_buf_str(&r->url), r->url.len, path, sizeof(path)))
    return NULL;
  static const struct {
    const char *prefix;
    char kind;
  } kinds[] = {{"/containers/", 'c'}, {"/networks/", 'n'}, {"/volumes/", 'v'}};
  const char *p = unversioned(path);
  for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
    size_t n = strlen(kinds[i].prefix);
    if (strncmp(p, kinds[i].prefix, n) != 0 || !p[n] || strchr(p + n, '/'))
      continue;
    struct request_meta *m = calloc(1, sizeof(*m));
    if (m && !(m->target = strdup(p + n)))
      m = (free(m), NULL);
    if (m)
      m->deletes = kinds[i].kind;
    return m;
  }
  return NULL;
}

static int refuse_pipelined(struct ag_proxy_req *r, ca_buf *to_client, ca_error **err) {
  return refuse(r, 400, "Bad Request",
                "cleanup-agent: more than 64 requests sent without waiting for their answers, more than the session's "
                "Docker proxy tracks: the request is refused and the connection closed",
                to_client, err);
}

static int refuse_over_budget(struct ag_proxy_req *r, ca_buf *to_client, ca_error **err) {
  return refuse(r, 503, "Service Unavailable",
                "cleanup-agent: the create bodies that the session's Docker proxy holds across all its connections "
                "are at their limit: this one is refused; try again once the others were sent",
                to_client, err);
}

static int refuse_too_large(struct ag_proxy_req *r, ca_buf *to_client, ca_error **err) {
  return refuse(r, 413, "Request Entity Too Large",
                "cleanup-agent: the create request's body is larger than 1 MiB, the most the session's Docker proxy "
                "buffers to add the session labels (real create bodies are a few KiB)",
                to_client, err);
}

static bool session_ending_now(struct ag_proxy_req *r) {
  return r->hooks.ending && r->hooks.ending(r->hooks.ctx);
}

/* A create while the session ends. */
static int refuse_ending(struct ag_proxy_req *r, ca_buf *to_client, ca_error **err) {
  return refuse(r, 503, "Service Unavailable",
                "cleanup-agent: the session is ending: its Docker proxy creates nothing more, so that what the "
                "session's end removes is all it made",
                to_client, err);
}

/* Named volumes that a container create binds exist before it is forwarded: one the proxy creates carries the
 * session's labels (the engine would create it without any). */
static int ensure_bind_volumes(struct ag_proxy_req *r, ca_buf *to_client, ca_error **err) {
  if (!r->volume_fn || create_kind(ca_buf_str(&r->url), r->url.len) != 'c')
    return 0;
  _cleanup_strv_free_ char **names = NULL;
  if (ag_proxy_bind_volumes(r->body.data ? r->body.data : "", r->body.len, &names, err) < 0)
    return -ENOMEM;
  for (char **n = names; *n; n++) {
    _cleanup_error_ ca_error *e = NULL;
    int k = r->volume_fn(r->volume_ctx, *n, &e);
    if (k == -ESHUTDOWN)
      return refuse_ending(r, to_client, err) < 0 ? -ENOMEM : 1;
    if (k < 0) {
      char msg[1024];
      snprintf(msg, sizeof(msg),
               "cleanup-agent: the session's Docker proxy could not create volume %s with the "
               "session labels before the container that binds it: %s",
               *n, e ? e->msg : "unknown error");
      return refuse(r, 502, "Bad Gateway", msg, to_client, err) < 0 ? -ENOMEM : 1;
    }
  }
  return 0;
}

static int emit_create(struct ag_proxy_req *r, ca_buf *to_engine, ca_buf *to_client, ca_error **err) {
  _cleanup_free_ char *rewritten = NULL;
  size_t len = 0;
  _cleanup_error_ ca_error *refusal = NULL;
  const char *body = r->body.data ? r->body.data : "";
  int k = r->cgroup_parent && create_kind(ca_buf_str(&r->url), r->url.len) == 'c'
              ? ag_proxy_rewrite_container_body(r->session_id, r->labels, r->cgroup_parent, body, r->body.len,
                                                &rewritten, &len, &refusal)
              : ag_proxy_rewrite_body(r->session_id, r->labels, body, r->body.len, &rewritten, &len, &refusal);
  if (k == -EPERM || k == -EINVAL)
    return refuse(r, 400, "Bad Request", refusal->msg, to_client, err);
  if (k < 0)
    return ca_error_set(err, ENOMEM, "out of memory");
  if ((k = ensure_bind_volumes(r, to_client, err)) != 0)
    return k < 0 ? k : 0;
  if (session_ending_now(r)) /* it began while the volumes were made: those are counted, the create is not sent */
    return refuse_ending(r, to_client, err);
  bool keep = ag_proxy_body_keeps(r->body.data ? r->body.data : "", r->body.len);
  if (keep && !r->hooks.created_info)
    r->create = 0; /* kept by its creator's wish: not recorded for removal */
  if (!push_inflight(r, false, false))
    return refuse_pipelined(r, to_client, err);
  if (keep)
    r->keep_bits |= 1ULL << last_slot(r); /* the receipt lists it, the end does not remove it */
  if (r->hooks.created_info && r->create)
    r->meta[last_slot(r)] = create_meta(r, keep);
  if (ca_buf_appendf(to_engine, err, "%s %s HTTP/%u.%u\r\n%sContent-Length: %zu\r\n\r\n",
                     http_method_str((enum http_method)r->p.method), ca_buf_str(&r->url), r->p.http_major,
                     r->p.http_minor, ca_buf_str(&r->headers), len) < 0)
    return -ENOMEM;
  return ca_buf_append(to_engine, rewritten, len, err);
}

/* A POST that would make what outlives the session (outliving_create): refused with the way out. */
static int refuse_outliving(struct ag_proxy_req *r, ca_buf *to_client, ca_error **err) {
  const char *what = outliving_create(ca_buf_str(&r->url), r->url.len);
  char msg[512];
  snprintf(msg, sizeof(msg),
           "cleanup-agent: the session's Docker proxy refuses to make %s: it would outlive the run, as the session "
           "does not remove it; make it outside the session, or run with --no-docker-proxy to give the command the "
           "engine itself",
           what ? what : "it");
  r->phase = PH_HEAD; /* nothing of it went to the engine: the answer waits only for those before it */
  return refuse(r, 400, "Bad Request", msg, to_client, err);
}

/* Replaces the request line of the head in r->pending by a POST of target url, HTTP version as sent. */
static int set_target(struct ag_proxy_req *r, const char *url, ca_error **err) {
  const char *line_end = memchr(r->pending.data, '\n', r->pending.len);
  if (!line_end)
    return ca_error_set(err, ENOMEM, "out of memory"); /* the parser read the request line: it is there */
  ca_buf head = CA_BUF_INIT(r->pending.max + strlen(url));
  size_t rest = (size_t)(line_end + 1 - r->pending.data);
  int k = ca_buf_appendf(&head, err, "POST %s HTTP/%u.%u\r\n", url, r->p.http_major, r->p.http_minor);
  if (k >= 0)
    k = ca_buf_append(&head, r->pending.data + rest, r->pending.len - rest, err);
  if (k < 0) {
    ca_buf_free(&head);
    return -ENOMEM;
  }
  ca_buf_free(&r->pending);
  r->pending = head;
  return 0;
}

/* POST /build: the image gets built-by=<session> and a classic build forcerm=1 unless it keeps its step containers and
 * its output names them (ag_proxy_rewrite_build_url); the request line is rewritten, the rest of the head and the body
 * go as they are. 1 when refused. */
static int rewrite_build(struct ag_proxy_req *r, ca_buf *to_client, ca_error **err) {
  if (r->form_body) {
    r->phase = PH_HEAD; /* nothing of it went to the engine: the answer waits only for those before it */
    return refuse(r, 400, "Bad Request",
                  "cleanup-agent: a build whose parameters come in a form body (Content-Type "
                  "application/x-www-form-urlencoded), which the engine reads before the query and the session's "
                  "Docker proxy does not rewrite: send them in the query",
                  to_client, err) < 0
               ? -ENOMEM
               : 1;
  }
  _cleanup_free_ char *url = NULL;
  _cleanup_error_ ca_error *refusal = NULL;
  int k = ag_proxy_rewrite_build_url(r->session_id, r->labels, ca_buf_str(&r->url), r->url.len, &url, &refusal);
  if (k == -EPERM || k == -EINVAL) {
    r->phase = PH_HEAD; /* nothing of it went to the engine: the answer waits only for those before it */
    const char *why = refusal ? refusal->msg : "cleanup-agent: the session's Docker proxy cannot read this build";
    return refuse(r, 400, "Bad Request", why, to_client, err) < 0 ? -ENOMEM : 1;
  }
  if (k < 0 || set_target(r, url, err) < 0)
    return -ENOMEM;
  r->create = ag_proxy_build_keeps_steps(url, strlen(url)) ? 'b' : 0;
  return 0;
}

/* POST /commit: the image names the session by built-by alone (ag_proxy_rewrite_commit_url); the request line is
 * rewritten, the rest of the head and the body go as they are. */
static int rewrite_commit(struct ag_proxy_req *r, ca_error **err) {
  _cleanup_free_ char *url = NULL;
  if (ag_proxy_rewrite_commit_url(r->session_id, ca_buf_str(&r->url), r->url.len, &url, err) < 0)
    return -ENOMEM;
  return set_target(r, url, err);
}

/* What makes an image, rewritten so that the image names the session by built-by alone: a build or a commit. 1 when
 * refused. */
static int rewrite_image(struct ag_proxy_req *r, ca_buf *to_client, ca_error **err) {
  char path[PATH_SIZE];
  if (r->p.method != HTTP_POST || !request_path(ca_buf_str(&r->url), r->url.len, path, sizeof(path)))
    return 0;
  const char *p = unversioned(path);
  return streq(p, "/build") ? rewrite_build(r, to_client, err) : streq(p, "/commit") ? rewrite_commit(r, err) : 0;
}

/* Why the engine could read a complete head otherwise than the proxy does, or NULL. */
static const char *request_unreadable(const struct ag_proxy_req *r) {
  char path[PATH_SIZE];
  if (!request_path(ca_buf_str(&r->url), r->url.len, path, sizeof(path)))
    return "cleanup-agent: the request's path is longer than the session's Docker proxy reads (4 KiB): it is refused "
           "and the connection closed";
  /* The engine ignores it in HTTP/1.0 (an empty body) where the parser reads chunks, which the engine would read as
   * requests the proxy never saw. */
  if (r->p.uses_transfer_encoding && r->p.http_major == 1 && r->p.http_minor == 0)
    return "cleanup-agent: an HTTP/1.0 request with Transfer-Encoding, whose body the engine and the session's Docker "
           "proxy would read differently: it is refused and the connection closed (send HTTP/1.1, or Content-Length)";
  return NULL;
}

/* A request head is complete: a create waits for its body, anything else goes to the engine as it is. */
static int head_done(struct ag_proxy_req *r, ca_buf *to_engine, ca_buf *to_client, ca_error **err) {
  const char *unreadable = request_unreadable(r);
  if (unreadable)
    return refuse(r, 400, "Bad Request", unreadable, to_client, err);
  r->phase = r->next_phase;
  r->create = r->phase == PH_BODY_CREATE ? create_kind(ca_buf_str(&r->url), r->url.len) : 0;
  if (r->phase == PH_BODY_CREATE) {
    ca_buf_reset(&r->pending);
    if (r->expects_continue && session_ending_now(r))
      return refuse_ending(r, to_client, err); /* at once: it waits for an answer before its body */
    if (r->upgrade_header || r->p.upgrade)
      return refuse(r, 400, "Bad Request",
                    "cleanup-agent: a create request with Upgrade or Connection: upgrade headers: a create never "
                    "takes the connection over, and the session's Docker proxy does not forward one that asks to",
                    to_client, err);
    if (r->p.content_length != ULLONG_MAX && r->p.content_length > AG_PROXY_BODY_MAX)
      return refuse_too_large(r, to_client, err);
    return 0;
  }
  if (r->p.method == HTTP_POST && outliving_create(ca_buf_str(&r->url), r->url.len)) {
    if (r->expects_continue)
      return refuse_outliving(r, to_client, err); /* at once: it waits for an answer before its body */
    /* Refused once its body was read: a client still writing it would not read the answer. */
    r->phase = PH_BODY_DROP;
    ca_buf_reset(&r->pending);
    return 0;
  }
  int b = rewrite_image(r, to_client, err);
  if (b != 0)
    return b < 0 ? -ENOMEM : 0;
  r->hijack = r->upgrade_header || r->p.upgrade || is_hijack(ca_buf_str(&r->url), r->url.len);
  if (!push_inflight(r, r->p.method == HTTP_HEAD, r->hijack)) {
    r->phase = PH_HEAD; /* nothing of it went to the engine: the answer waits for all those before it */
    return refuse_pipelined(r, to_client, err);
  }
  if (r->hooks.removed)
    r->meta[last_slot(r)] = delete_meta(r);
  int k = ca_buf_append(to_engine, r->pending.data, r->pending.len, err);
  ca_buf_reset(&r->pending);
  if (r->pending.max != HEAD_MAX) { /* a rewritten head's: back to the cap of the heads a client sends */
    ca_buf_free(&r->pending);
    ca_buf_init(&r->pending, HEAD_MAX);
  }
  return k < 0 ? -ENOMEM : 0;
}

static int message_done(struct ag_proxy_req *r, ca_buf *to_engine, ca_buf *to_client, ca_error **err) {
  r->message_done = false;
  if (r->phase == PH_BODY_DROP)
    return refuse_outliving(r, to_client, err);
  bool create = r->phase == PH_BODY_CREATE;
  int k = 0;
  /* The session's end refuses a create once its body was read: a client still writing it would miss the answer. */
  if (create && session_ending_now(r))
    k = refuse_ending(r, to_client, err);
  else if (create)
    k = emit_create(r, to_engine, to_client, err);
  if (k < 0)
    return -ENOMEM;
  r->phase = PH_HEAD;
  ca_buf_reset(&r->body);
  body_release(r);
  /* Only the engine's answer says whether the connection stays HTTP: what follows waits for it. */
  if (!create && r->hijack)
    r->waiting = true;
  return 0;
}

static int hold(struct ag_proxy_req *r, const char *data, size_t len, ca_error **err) {
  if (ca_buf_append(&r->hold, data, len, NULL) < 0) {
    if (r->hold.len + len <= HOLD_MAX)
      return ca_error_set(err, ENOMEM, "out of memory");
    r->closed = true; /* a client streaming a megabyte before the engine answered: no answer can be given */
    return AG_PROXY_CLOSE;
  }
  return AG_PROXY_WAIT;
}

static int feed_bytes(struct ag_proxy_req *r, const char *data, size_t len, ca_buf *to_engine, ca_buf *to_client,
                      ca_error **err) {
  while (len > 0 && !r->closed) {
    if (r->raw)
      return ca_buf_append(to_engine, data, len, err) < 0 ? -ENOMEM : AG_PROXY_GO;
    if (r->waiting)
      return hold(r, data, len, err);
    size_t n = http_parser_execute(&r->p, &settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&r->p);
    if (r->oom)
      return ca_error_set(err, ENOMEM, "out of memory");
    if (n > len)
      n = len;
    if (e != HPE_OK && e != HPE_PAUSED)
      return refuse_unreadable(r, e, to_client, err) < 0 ? -ENOMEM : AG_PROXY_CLOSE;
    /* data[0, n) was consumed in the phase that was current when the parser started. */
    int k = 0;
    if (r->phase == PH_HEAD && ca_buf_append(&r->pending, data, n, NULL) < 0)
      k = refuse_unreadable(r, HPE_HEADER_OVERFLOW, to_client, err);
    else if (r->phase == PH_BODY_PASS)
      k = ca_buf_append(to_engine, data, n, err);
    if (k < 0)
      return -ENOMEM;
    data += n;
    len -= n;
    if (e != HPE_PAUSED) {
      if (n == 0 && refuse_unreadable(r, HPE_UNKNOWN, to_client, err) < 0) /* no progress: do not spin */
        return -ENOMEM;
      continue;
    }
    http_parser_pause(&r->p, 0);
    if (r->too_large)
      k = refuse_too_large(r, to_client, err);
    else if (r->over_budget)
      k = refuse_over_budget(r, to_client, err);
    else if (r->message_done)
      k = message_done(r, to_engine, to_client, err);
    else
      k = head_done(r, to_engine, to_client, err);
    if (k < 0)
      return -ENOMEM;
  }
  return r->closed ? AG_PROXY_CLOSE : r->waiting && !r->raw ? AG_PROXY_WAIT : AG_PROXY_GO;
}

int ag_proxy_req_feed(struct ag_proxy_req *r, const char *data, size_t len, ca_buf *to_engine, ca_buf *to_client,
                      ca_error **err) {
  if (r->closed)
    return AG_PROXY_CLOSE;
  if (r->waiting && !r->raw)
    return len ? hold(r, data, len, err) : AG_PROXY_WAIT;
  if (!r->hold.len)
    return feed_bytes(r, data, len, to_engine, to_client, err);
  /* The engine answered what the held bytes waited for: they come first. */
  ca_buf held = r->hold;
  ca_buf_init(&r->hold, HOLD_MAX);
  held.max = SIZE_MAX;
  int k = len && ca_buf_append(&held, data, len, err) < 0
              ? -ENOMEM
              : feed_bytes(r, held.data, held.len, to_engine, to_client, err);
  ca_buf_free(&held);
  return k;
}

/* ---- the engine direction: copied byte for byte, parsed only to know where each answer ends ---- */

static int on_resp_begin(http_parser *p) {
  req_of(p)->resp_in_message = true;
  return 0;
}

/* The answer to the oldest request in flight: a HEAD's has no body; a 101, or a 200 without framing to a request that
 * may take the connection over (attach, exec start), turns the connection into a byte stream. */
static int on_resp_headers(http_parser *p) {
  struct ag_proxy_req *r = req_of(p);
  r->resp_informational = p->status_code >= 100 && p->status_code < 200 && p->status_code != 101;
  if (r->resp_informational || !r->inflight)
    return 0;
  uint64_t bit = 1ULL << r->first;
  r->resp_create = r->kinds[r->first] && p->status_code >= 200 && p->status_code < 300;
  const struct request_meta *m = r->meta[r->first];
  if (m && m->deletes && p->status_code >= 200 && p->status_code < 300 && r->hooks.removed)
    r->hooks.removed(r->hooks.ctx, m->deletes, m->target);
  ca_buf_reset(&r->resp_body);
  r->line_lost = false;
  bool unframed = !(p->flags & F_CHUNKED) && p->content_length == ULLONG_MAX;
  if (p->status_code == 101 || ((r->hijack_bits & bit) && p->status_code == 200 && unframed)) {
    r->raw = true;
    r->waiting = false;
    return 2;
  }
  return (r->head_bits & bit) ? 1 : 0;
}

/* One line of a build's progress stream: {"stream":" ---\u003e Running in 3f2a1b4c5d6e\n"} names a step container,
 * the whole line as the engine writes it ('>' escaped as Go's encoder does, or not). A step's own output comes in lines
 * of the same form: one that prints exactly this names a container too. */
static void build_line(struct ag_proxy_req *r) {
  static const char *const starts[] = {"{\"stream\":\" ---\\u003e Running in ", "{\"stream\":\" ---> Running in "};
  const char *line = ca_buf_str(&r->resp_body), *at = NULL;
  for (size_t i = 0; i < ELEMENTSOF(starts) && !at; i++)
    if (strncmp(line, starts[i], strlen(starts[i])) == 0)
      at = line + strlen(starts[i]);
  if (!at || !r->hooks.created)
    return;
  size_t n = strspn(at, "0123456789abcdef");
  char id[65];
  if (n >= 12 && n <= 64 && strncmp(at + n, "\\n\"}", 4) == 0) {
    snprintf(id, sizeof(id), "%.*s", (int)n, at);
    r->hooks.created(r->hooks.ctx, 'c', id);
  }
}

/* A build's answer, split into lines as they come. */
static void build_progress(struct ag_proxy_req *r, const char *at, size_t len) {
  while (len > 0) {
    const char *nl = memchr(at, '\n', len);
    size_t n = nl ? (size_t)(nl - at) : len;
    if (!r->line_lost && ca_buf_append(&r->resp_body, at, n, NULL) < 0)
      r->line_lost = true; /* not a step's line: those are a few dozen bytes */
    if (nl) {
      if (!r->line_lost)
        build_line(r);
      ca_buf_reset(&r->resp_body);
      r->line_lost = false;
      n++;
    }
    at += n;
    len -= n;
  }
}

static int on_resp_body(http_parser *p, const char *at, size_t len) {
  struct ag_proxy_req *r = req_of(p);
  if (r->resp_create && r->kinds[r->first] == 'b') {
    build_progress(r, at, len);
    return 0;
  }
  if (r->resp_create && ca_buf_append(&r->resp_body, at, len, NULL) < 0)
    r->resp_create = false; /* not a create's answer: those are a few dozen bytes */
  return 0;
}

/* The id of a create the engine answered with success goes to the server (created hook). */
static void record_created(struct ag_proxy_req *r) {
  char kind = r->kinds[r->first];
  if (!r->resp_create || kind == 'b')
    return;
  _cleanup_json_ cJSON *j = cJSON_ParseWithLength(r->resp_body.data ? r->resp_body.data : "", r->resp_body.len);
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, kind == 'v' ? "Name" : "Id");
  if (!cJSON_IsString(id) || !id->valuestring[0])
    return;
  bool keep = r->keep_bits & (1ULL << r->first);
  if (r->hooks.created && !keep)
    r->hooks.created(r->hooks.ctx, kind, id->valuestring);
  const struct request_meta *m = r->meta[r->first];
  if (!r->hooks.created_info || !m)
    return;
  const struct ag_proxy_create_info info = {kind,          id->valuestring,    m->name, m->image,       m->user_agent,
                                            m->tc_session, m->compose_project, m->keep, m->auto_remove, &r->peer};
  r->hooks.created_info(r->hooks.ctx, &info);
}

static int on_resp_complete(http_parser *p) {
  struct ag_proxy_req *r = req_of(p);
  r->resp_in_message = false;
  if (r->resp_informational || !r->inflight)
    return 0;
  record_created(r);
  if (r->kinds[r->first])
    ag_creates_end();
  r->resp_create = false;
  request_meta_free(TAKE_PTR(r->meta[r->first]));
  r->first = (r->first + 1) % INFLIGHT_MAX;
  if (--r->inflight == 0 && r->waiting) {
    /* The request that could have taken the connection over was answered as HTTP: parsing goes on afresh. */
    r->waiting = false;
    http_parser_init(&r->p, HTTP_REQUEST);
    r->p.data = r;
  }
  return 0;
}

static const http_parser_settings resp_settings = {
    .on_message_begin = on_resp_begin,
    .on_headers_complete = on_resp_headers,
    .on_body = on_resp_body,
    .on_message_complete = on_resp_complete,
};

int ag_proxy_resp_feed(struct ag_proxy_req *r, const char *data, size_t len, ca_buf *to_client, ca_error **err) {
  if (r->answered)
    return AG_PROXY_CLOSE; /* the proxy answered last: the connection is closing */
  if (len && ca_buf_append(to_client, data, len, err) < 0)
    return -ENOMEM;
  if (!r->raw && !r->resp_lost) {
    (void)http_parser_execute(&r->rp, &resp_settings, data, len); /* len 0: the engine closed, which ends a body */
    /* An engine answer that is not HTTP: the proxy no longer knows where answers end. Its own answers go out at once,
     * and a connection waiting to know whether it turned into a stream is closed, never guessed into one. */
    r->resp_lost = HTTP_PARSER_ERRNO(&r->rp) != HPE_OK && !r->raw;
  }
  flush_answer(r, to_client, len == 0 || r->resp_lost);
  if ((len == 0 || r->resp_lost) && r->waiting && !r->raw)
    r->closed = true;
  if (len == 0 || r->resp_lost)
    r->waiting = false;
  return r->answered || (r->closed && !r->deferred.len) ? AG_PROXY_CLOSE : AG_PROXY_GO;
}

/* ---- the server ---------------------------------------------------------------------------------------------------
 */

struct conn {
  struct ag_proxy *px;
  int client, engine;
  int refs; /* one per direction thread; under px->mu */
  /* Guards req, which both directions feed, and every write to client, so that the proxy's own answers and the
   * engine's never interleave; cond wakes the client direction when the engine answered or closed. */
  pthread_mutex_t mu;
  pthread_cond_t cond;
  struct ag_proxy_req *req;
  int side; /* the proxy's own call to the engine for this connection's create (ensure_volume), -1: none; under px->mu
             */
  bool engine_done;
  bool client_raw;      /* the client direction's own copy of ag_proxy_req_is_raw, which never goes back */
  bool refused;         /* the client direction's own: the proxy answers the last request itself (linger) */
  bool refusal_pending; /* and that answer waits for the engine's answers before it */
  uint64_t active_usec; /* when bytes last went either way (CLOCK_MONOTONIC), for the idle timeout */
  struct conn *prev, *next;
};

struct ag_proxy {
  char *socket_path, *engine_socket, *session_id;
  bool share; /* the socket's owner, group and mode below are the engine socket's */
  uid_t uid;
  gid_t gid;
  mode_t mode;
  char **labels;
  char *cgroup_parent; /* ag_proxy_set_cgroup_parent's, under mu; kept until the proxy is freed */
  int (*connect_engine)(void *ctx, ca_error **err); /* a TCP or TLS engine's streams; NULL: engine_socket */
  void *engine_ctx;
  void (*engine_ctx_free)(void *ctx);
  int (*engine_reached)(void *ctx, ca_error **err); /* ag_proxy_config's; NULL: nobody asks */
  void *engine_reached_ctx;
  pthread_mutex_t reach_mu; /* one connection calls engine_reached, the others wait for it */
  bool reached;             /* engine_reached succeeded, under reach_mu */
  bool reach_closed;        /* the proxy stops: engine_reached is not called any more, under reach_mu */
  int listen_fd;
  int stop_pipe[2];
  pthread_t accept_thread;
  bool accept_started;
  pthread_mutex_t mu;
  pthread_cond_t changed;
  unsigned n_conns, max_conns;
  size_t body_budget, body_buffered; /* create bytes the connections may buffer together, and do now */
  uint64_t idle_usec;
  struct conn *conns;
  bool stopping;
  char **created; /* "c:<id>", "n:<id>", "v:<name>" of what the engine created through the proxy */
  size_t n_created;
  struct ag_proxy_observer observer; /* the receipt's; observer.created NULL: none */
};

#define CREATED_MAX 65536 /* ids recorded; beyond, the listing by label alone finds what a session made */

/* The created hook of every connection: records what the session's end removes even when a listing missed it. */
static void record_id(void *ctx, char kind, const char *id) {
  struct ag_proxy *px = ctx;
  char *entry = NULL;
  pthread_mutex_lock(&px->mu);
  if (px->n_created < CREATED_MAX && asprintf(&entry, "%c:%s", kind, id) >= 0) {
    char **v = realloc(px->created, (px->n_created + 2) * sizeof(char *));
    if (v) {
      v[px->n_created++] = TAKE_PTR(entry);
      v[px->n_created] = NULL;
      px->created = v;
    }
  }
  pthread_mutex_unlock(&px->mu);
  free(entry); /* out of memory: the listing by label still finds it */
}

/* The reserve and release hooks of every connection: one budget for the create bodies all of them buffer. */
static bool budget_take(void *ctx, size_t n) {
  struct ag_proxy *px = ctx;
  pthread_mutex_lock(&px->mu);
  bool ok = px->body_buffered + n <= px->body_budget;
  if (ok)
    px->body_buffered += n;
  pthread_mutex_unlock(&px->mu);
  return ok;
}

static void budget_give(void *ctx, size_t n) {
  struct ag_proxy *px = ctx;
  pthread_mutex_lock(&px->mu);
  px->body_buffered -= CA_MIN(n, px->body_buffered);
  pthread_mutex_unlock(&px->mu);
}

/* The receipt's hooks of every connection. */
static void observe_created(void *ctx, const struct ag_proxy_create_info *info) {
  struct ag_proxy *px = ctx;
  px->observer.created(px->observer.ctx, info);
}

static void observe_removed(void *ctx, char kind, const char *target) {
  struct ag_proxy *px = ctx;
  if (px->observer.removed)
    px->observer.removed(px->observer.ctx, kind, target);
}

bool ag_proxy_peer_read(int fd, struct ag_proxy_peer *peer) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  *peer = (struct ag_proxy_peer){0};
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || cred.pid <= 0)
    return false;
  peer->pid = cred.pid;
  char path[64];
  snprintf(path, sizeof(path), "/proc/%d/exe", (int)cred.pid);
  ssize_t n = readlink(path, peer->exe, sizeof(peer->exe) - 1);
  peer->exe[n > 0 ? n : 0] = '\0'; /* another user's process, or gone already: no name */
  snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)cred.pid);
  _cleanup_close_ int cfd = open(path, O_RDONLY | O_CLOEXEC);
  n = cfd < 0 ? -1 : read(cfd, peer->cmdline, sizeof(peer->cmdline) - 1);
  peer->cmdline_len = n > 0 ? (size_t)n : 0; /* a longer command line is cut at the buffer's size */
  peer->cmdline[peer->cmdline_len] = '\0';
  return true;
}

static bool session_ending(void *ctx) {
  struct ag_proxy *px = ctx;
  pthread_mutex_lock(&px->mu);
  bool ending = px->stopping;
  pthread_mutex_unlock(&px->mu);
  return ending;
}

const char *ag_proxy_engine_socket(const char *docker_host) {
  if (!docker_host)
    return "/var/run/docker.sock";
  if (strncmp(docker_host, "unix://", 7) == 0 && docker_host[7] == '/')
    return docker_host + 7;
  return NULL;
}

bool ag_proxy_engine_answers(const char *path) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof(sa.sun_path))
    return false;
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return false;
  bool ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
  close(fd);
  return ok;
}

static void conn_unref(struct conn *c) {
  struct ag_proxy *px = c->px;
  pthread_mutex_lock(&px->mu);
  bool last = --c->refs == 0;
  pthread_mutex_unlock(&px->mu);
  if (!last)
    return;
  /* While the connection still counts: freeing the parser gives its bodies back to px's budget, and px lives until
   * the last connection is gone (ag_proxy_stop). */
  ag_proxy_req_free(TAKE_PTR(c->req));
  pthread_mutex_lock(&px->mu);
  if (c->prev)
    c->prev->next = c->next;
  else
    px->conns = c->next;
  if (c->next)
    c->next->prev = c->prev;
  px->n_conns--;
  close(c->client);
  if (c->engine >= 0)
    close(c->engine);
  pthread_cond_broadcast(&px->changed);
  pthread_mutex_unlock(&px->mu);
  pthread_mutex_destroy(&c->mu);
  pthread_cond_destroy(&c->cond);
  free(c);
}

/* Engine to client: a byte copy, parsed on the way to know where answers end. The engine's end of stream becomes the
 * client's; a client that is gone ends both. */
static void *engine_to_client(void *arg) {
  struct conn *c = arg;
  char *buf = malloc(IO_CHUNK);
  ca_buf out = CA_BUF_INIT(2 * IO_CHUNK + 64 * 1024);
  bool client_gone = false;
  for (;;) {
    ssize_t n = buf ? read(c->engine, buf, IO_CHUNK) : -1;
    if (n < 0 && errno == EINTR)
      continue;
    int k = -1, fed = -1;
    pthread_mutex_lock(&c->mu);
    c->active_usec = ca_now_monotonic_usec();
    if (n >= 0)
      fed = ag_proxy_resp_feed(c->req, buf, (size_t)n, &out, NULL);
    if (fed >= 0)
      k = out.len && !client_gone ? ca_write_all(c->client, out.data, out.len) : 0;
    /* A client gone before a create's answer: the answer is still read, for the id the session's end removes. */
    if (k < 0 && n > 0 && ag_proxy_req_create_in_flight(c->req)) {
      client_gone = true;
      k = 0;
    }
    if (n <= 0)
      c->engine_done = true;
    pthread_cond_broadcast(&c->cond);
    pthread_mutex_unlock(&c->mu);
    ca_buf_reset(&out);
    if (client_gone && !ag_proxy_req_create_in_flight(c->req))
      k = -1; /* the answers the session needed are in */
    if (n == 0 && k == 0 && fed == AG_PROXY_GO) {
      (void)shutdown(c->client, SHUT_WR); /* the client sees the engine's close as it would directly */
      break;
    }
    if (k < 0 || fed != AG_PROXY_GO) {
      /* The writing side only: after the proxy's own answer the client direction reads what the client still sends,
       * then ends the rest (linger). */
      (void)shutdown(c->client, k == 0 && fed == AG_PROXY_CLOSE ? SHUT_WR : SHUT_RDWR);
      (void)shutdown(c->engine, SHUT_RDWR);
      break;
    }
  }
  pthread_mutex_lock(&c->mu);
  c->engine_done = true;
  pthread_cond_broadcast(&c->cond);
  pthread_mutex_unlock(&c->mu);
  ca_buf_free(&out);
  free(buf);
  conn_unref(c);
  return NULL;
}

static void refuse_connection(struct conn *c, const char *why) {
  ca_buf out = CA_BUF_INIT(4096);
  /* The request is not read: the answer goes out at once, and the connection closes once the client's bytes were
   * dropped (drop_client_bytes, by the caller). */
  if (answer(&out, 502, "Bad Gateway", why, NULL) == 0)
    (void)ca_write_all(c->client, out.data, out.len); /* a client that is gone needs no answer */
  (void)shutdown(c->client, SHUT_WR);
  ca_buf_free(&out);
}

/* A new stream to the engine: its Unix socket, or what connect_engine gives for a TCP or TLS engine. */
static int engine_stream(struct ag_proxy *px, int *ret_fd, ca_error **err) {
  if (px->connect_engine) {
    int fd = px->connect_engine(px->engine_ctx, err);
    if (fd < 0)
      return fd;
    *ret_fd = fd;
    return 0;
  }
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", px->engine_socket);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int e = errno;
    if (fd >= 0)
      close(fd);
    return ca_error_set_errno(err, e, "connect to the engine at %s", px->engine_socket);
  }
  *ret_fd = fd;
  return 0;
}

/* Writes one HTTP/1.0 request to fd and reads the status of its answer (10 s at most): the status, or negative with
 * err saying why. */
static int engine_exchange(int fd, const char *method, const char *target, const char *body, ca_error **err) {
  struct timeval tv = {.tv_sec = 10};
  if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0)
    return ca_error_set_errno(err, errno, "set a timeout");
  ca_buf req = CA_BUF_INIT(64 * 1024);
  int r = ca_buf_appendf(&req, err,
                         "%s %s HTTP/1.0\r\nHost: docker\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n%s",
                         method, target, body ? strlen(body) : 0, body ? body : "");
  if (r == 0 && ca_write_all(fd, req.data, req.len) < 0)
    r = ca_error_set_errno(err, errno, "write");
  ca_buf_free(&req);
  char head[64] = "";
  size_t got = 0;
  while (r == 0 && got < sizeof(head) - 1) {
    ssize_t n = read(fd, head + got, sizeof(head) - 1 - got);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    got += (size_t)n;
  }
  head[got] = '\0';
  int status = 0;
  if (r == 0 && sscanf(head, "HTTP/1.%*d %d", &status) != 1)
    r = ca_error_set(err, EPROTO, "the engine's answer is not HTTP");
  return r < 0 ? r : status;
}

/* One request of the proxy's own to the engine for connection c, on a stream of its own (HTTP/1.0: the engine closes
 * after the answer), which the stop shuts down with c's; the status code, or negative with err saying why (-ESHUTDOWN:
 * the proxy stops). *ret_unanswered: the engine may have read it, and no answer was read. */
static int engine_call(struct conn *c, const char *method, const char *target, const char *body, bool *ret_unanswered,
                       ca_error **err) {
  struct ag_proxy *px = c->px;
  int fd = -1;
  int r = engine_stream(px, &fd, err);
  if (r < 0)
    return r;
  pthread_mutex_lock(&px->mu);
  bool stopping = px->stopping;
  if (!stopping)
    c->side = fd;
  pthread_mutex_unlock(&px->mu);
  if (stopping) {
    close(fd);
    return ca_error_set(err, ESHUTDOWN, "the session is ending");
  }
  *ret_unanswered = true; /* from here the engine may have read it */
  r = engine_exchange(fd, method, target, body, err);
  *ret_unanswered = r < 0;
  pthread_mutex_lock(&px->mu);
  c->side = -1;
  pthread_mutex_unlock(&px->mu);
  close(fd);
  if (r < 0)
    return ca_error_wrap(err, "%s %s", method, target);
  return r;
}

/* Creates volume name with the session's labels: 0, or negative with err saying why. */
static int create_volume(struct conn *c, const char *name, bool *ret_unanswered, ca_error **err) {
  struct ag_proxy *px = c->px;
  _cleanup_json_ cJSON *j = cJSON_CreateObject();
  _cleanup_free_ char *spec = j && cJSON_AddStringToObject(j, "Name", name) ? cJSON_PrintUnformatted(j) : NULL;
  _cleanup_free_ char *body = NULL;
  size_t len;
  if (!spec ||
      ag_proxy_rewrite_body(px->session_id, (const char *const *)px->labels, spec, strlen(spec), &body, &len, err) < 0)
    return ca_error_set(err, ENOMEM, "out of memory");
  int status = engine_call(c, "POST", "/volumes/create", body, ret_unanswered, err);
  if (status < 0)
    return status;
  if (status != 201 && status != 200)
    return ca_error_set(err, EIO, "POST /volumes/create: the engine said %d", status);
  record_id(px, 'v', name); /* or another client created it in between, through the proxy: labeled as well */
  return 0;
}

/* ag_proxy_volume_fn of the server: a missing volume is created with the session's labels. It counts as a create in
 * flight from before the look (creates.h): the session's end marks the stop before it reads the count, so it either
 * counts this one, or this one sees the end and makes nothing (-ESHUTDOWN, engine_call). */
static int ensure_volume(void *ctx, const char *name, ca_error **err) {
  struct conn *c = ctx;
  char target[512];
  snprintf(target, sizeof(target), "/volumes/%s", name); /* a volume name needs no escaping */
  bool looking = false, unanswered = false;
  ag_creates_begin();
  int status = engine_call(c, "GET", target, NULL, &looking, err);
  if (status == 404) /* not once the end began (engine_call) */
    status = create_volume(c, name, &unanswered, err);
  else if (status >= 0 && status != 200)
    status = ca_error_set(err, EIO, "GET %s: the engine said %d", target, status);
  if (!unanswered)
    ag_creates_end(); /* a create whose answer never came stays counted: the engine may still make it */
  return status < 0 ? status : 0;
}

/* Tells the server's owner, once, that a connection reached the engine, before anything of it goes there; the others
 * that reach it meanwhile wait. 0, or the hook's error (then the next connection asks again). */
static int note_engine_reached(struct ag_proxy *px, ca_error **err) {
  if (!px->engine_reached)
    return 0;
  pthread_mutex_lock(&px->reach_mu);
  int r = 0;
  if (!px->reached && px->reach_closed)
    r = ca_error_set(err, ESHUTDOWN, "the session is ending");
  else if (!px->reached && (r = px->engine_reached(px->engine_reached_ctx, err)) == 0)
    px->reached = true;
  pthread_mutex_unlock(&px->reach_mu);
  return r;
}

/* Connects the connection's engine side; on failure the client gets a refusal saying why. */
static bool connect_engine(struct conn *c) {
  struct ag_proxy *px = c->px;
  int efd = -1;
  _cleanup_error_ ca_error *e = NULL;
  const char *failed = "cannot reach the engine";
  int r = engine_stream(px, &efd, &e);
  if (r == 0 && (r = note_engine_reached(px, &e)) < 0) {
    close(efd);
    efd = -1;
    failed = "forwards nothing";
  }
  pthread_mutex_lock(&px->mu);
  c->engine = efd; /* ag_proxy_stop reads it under the lock */
  pthread_mutex_unlock(&px->mu);
  if (r == 0)
    return true;
  char why[1024];
  snprintf(why, sizeof(why), "cleanup-agent: the session's Docker proxy %s: %s", failed, e->msg);
  refuse_connection(c, why);
  return false;
}

/* Starts the engine-to-client thread, which holds a reference of its own. */
static bool start_engine_reader(struct conn *c) {
  struct ag_proxy *px = c->px;
  pthread_mutex_lock(&px->mu);
  c->refs++;
  pthread_mutex_unlock(&px->mu);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, THREAD_STACK);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  bool running = pthread_create(&t, &attr, engine_to_client, c) == 0;
  pthread_attr_destroy(&attr);
  if (!running) {
    pthread_mutex_lock(&px->mu);
    c->refs--;
    pthread_mutex_unlock(&px->mu);
    refuse_connection(c, "cleanup-agent: the session's Docker proxy cannot start a thread");
  }
  return running;
}

/* Before the engine side of a connection whose client is gone is shut: the answers to its creates are read first
 * (their ids), for as long as the engine takes or until the proxy stops (which shuts the engine side itself). */
static void wait_creates_answered(struct conn *c) {
  pthread_mutex_lock(&c->mu);
  while (ag_proxy_req_create_in_flight(c->req) && !c->engine_done)
    pthread_cond_wait(&c->cond, &c->mu);
  pthread_mutex_unlock(&c->mu);
}

/* The client closed its writing side: the engine sees the half-close as it would directly. A half-closed client
 * (stdin ended) still reads the engine's answer; one that is gone entirely (POLLHUP) ends the connection even when
 * the engine keeps its side open and silent. */
static void client_half_closed(struct conn *c) {
  (void)shutdown(c->engine, SHUT_WR);
  struct pollfd pfd = {.fd = c->client, .events = 0};
  while (poll(&pfd, 1, -1) >= 0 || errno == EINTR)
    if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL))
      break;
  wait_creates_answered(c);
  (void)shutdown(c->engine, SHUT_RDWR);
  (void)shutdown(c->client, SHUT_RDWR);
}

/* Waits until the engine answered the request that may take the connection over (or closed); false when it closed. */
static bool wait_for_engine(struct conn *c) {
  pthread_mutex_lock(&c->mu);
  while (ag_proxy_req_waiting(c->req) && !c->engine_done)
    pthread_cond_wait(&c->cond, &c->mu);
  bool open = !c->engine_done;
  pthread_mutex_unlock(&c->mu);
  return open;
}

/* Feeds what the client sent and writes out the results; the AG_PROXY_* action, or -1 to end the connection. */
static int forward(struct conn *c, const char *data, size_t len, ca_buf *to_engine, ca_buf *to_client) {
  /* A byte stream stays one: its bytes go straight on, without waiting for the lock an engine write may hold. */
  if (c->client_raw)
    return ca_write_all(c->engine, data, len) < 0 ? -1 : AG_PROXY_GO;
  pthread_mutex_lock(&c->mu);
  c->active_usec = ca_now_monotonic_usec();
  int fed = ag_proxy_req_feed(c->req, data, len, to_engine, to_client, NULL);
  int k = fed >= 0 && to_client->len ? ca_write_all(c->client, to_client->data, to_client->len) : 0;
  c->client_raw = ag_proxy_req_is_raw(c->req);
  c->refused = ag_proxy_req_answers(c->req);
  c->refusal_pending = ag_proxy_req_answer_pending(c->req);
  pthread_mutex_unlock(&c->mu);
  if (fed >= 0 && k == 0 && to_engine->len)
    k = ca_write_all(c->engine, to_engine->data, to_engine->len);
  /* Keep the buffers small between requests: a big body must not stay allocated for a keep-alive connection. */
  if (to_engine->cap > IO_CHUNK * 4)
    ca_buf_free(to_engine);
  else
    ca_buf_reset(to_engine);
  ca_buf_reset(to_client);
  if (fed < 0 || k < 0)
    return -1;
  return fed;
}

/* Reads and drops what the client sends, after the proxy's own answer, until the client closes: so that a client
 * still sending a body (a build's context) gets to read the answer instead of a broken pipe. Bounded as nginx's
 * lingering close: LINGER_IDLE_MSEC without a byte, LINGER_MAX_USEC in all. */
static void drop_client_bytes(struct conn *c, char *buf) {
  uint64_t end = ca_now_monotonic_usec() + LINGER_MAX_USEC;
  for (uint64_t now = ca_now_monotonic_usec(); now < end; now = ca_now_monotonic_usec()) {
    struct pollfd p = {.fd = c->client, .events = POLLIN};
    int ready = poll(&p, 1, (int)CA_MIN((uint64_t)LINGER_IDLE_MSEC, (end - now) / 1000 + 1));
    if (ready < 0 && errno == EINTR)
      continue;
    ssize_t n = ready > 0 ? read(c->client, buf, IO_CHUNK) : 0;
    if (n <= 0 && !(n < 0 && errno == EINTR))
      break;
  }
}

/* The proxy refused a request (a build with a label of the agent's, a create too large to read) while its client may
 * still be sending the body: the connection ends once the client's bytes were dropped (drop_client_bytes), and then
 * what the client still sends fails. An answer that waits for the engine's answers before it goes out after them
 * from the engine direction, which then ends the writing side (so the client reads it if they come within the
 * drop's bounds). Takes no lock: the engine direction may hold it while it writes to a client that reads only once
 * its own writes went through. False when the proxy closed without an answer. */
static bool linger(struct conn *c, char *buf) {
  if (!c->refused)
    return false; /* closed without an answer: nothing for the client to read */
  bool pending = c->refusal_pending;
  if (!pending) {
    (void)shutdown(c->client, SHUT_WR); /* the answer is out: the client reads it, then the end */
    /* Nothing of the engine's is parsed once the proxy answered, so no create's id can come any more: a request
     * refused halfway through its body would only keep the engine waiting for the rest. */
    (void)shutdown(c->engine, SHUT_RDWR);
  }
  drop_client_bytes(c, buf);
  (void)shutdown(c->client, pending ? SHUT_RD : SHUT_RDWR);
  return true;
}

/* Waits for the client's next bytes; false once the connection was idle (between requests, no byte stream: see
 * ag_proxy_req_idle) for the idle timeout. A stream (logs -f, events, attach) is never idle, however quiet. */
static bool client_sends(struct conn *c) {
  for (;;) {
    pthread_mutex_lock(&c->mu);
    bool idle = ag_proxy_req_idle(c->req);
    uint64_t now = ca_now_monotonic_usec(), quiet = now - CA_MIN(now, c->active_usec);
    pthread_mutex_unlock(&c->mu);
    if (idle && quiet >= c->px->idle_usec)
      return false;
    uint64_t wait_usec = idle ? c->px->idle_usec - quiet : c->px->idle_usec;
    struct pollfd p = {.fd = c->client, .events = POLLIN};
    if (poll(&p, 1, (int)CA_MIN(wait_usec / 1000 + 1, (uint64_t)INT_MAX)) != 0)
      return true; /* bytes, an end, or an error: the read says which */
  }
}

/* Client to engine, through the request parser. */
static void *client_to_engine(void *arg) {
  struct conn *c = arg;
  _cleanup_free_ char *buf = malloc(IO_CHUNK);
  ca_buf to_engine = CA_BUF_INIT(AG_PROXY_BODY_MAX + 2 * HEAD_MAX);
  ca_buf to_client = CA_BUF_INIT(64 * 1024);

  bool running = connect_engine(c) && start_engine_reader(c);
  if (!running && buf) { /* refused (refuse_connection): no engine direction, and nothing goes to the engine */
    if (c->engine >= 0)
      (void)shutdown(c->engine, SHUT_RDWR);
    drop_client_bytes(c, buf);
  }
  while (running && buf) {
    if (!c->client_raw && !client_sends(c)) {
      (void)shutdown(c->client, SHUT_RDWR); /* as the engine closes a keep-alive connection: no answer */
      (void)shutdown(c->engine, SHUT_RDWR);
      break;
    }
    ssize_t n = read(c->client, buf, IO_CHUNK);
    if (n < 0 && errno == EINTR)
      continue;
    if (n == 0) {
      client_half_closed(c);
      break;
    }
    int k = n > 0 ? forward(c, buf, (size_t)n, &to_engine, &to_client) : -1;
    while (k == AG_PROXY_WAIT)
      k = wait_for_engine(c) ? forward(c, NULL, 0, &to_engine, &to_client) : -1;
    if (k == AG_PROXY_CLOSE && linger(c, buf))
      break;
    if (k == AG_PROXY_CLOSE || k < 0) {
      (void)shutdown(c->client, SHUT_RDWR);
      wait_creates_answered(c);
      (void)shutdown(c->engine, SHUT_RDWR);
      break;
    }
  }
  ca_buf_free(&to_engine);
  ca_buf_free(&to_client);
  conn_unref(c);
  return NULL;
}

/* Bounded: a client beyond the connection cap gets a 503 at once instead of waiting in the backlog. */
static void refuse_full(struct ag_proxy *px, int fd) {
  char why[256];
  snprintf(why, sizeof(why),
           "cleanup-agent: the session's Docker proxy serves at most %u connections at a time and all are in use; "
           "try again when one ended",
           px->max_conns);
  ca_buf out = CA_BUF_INIT(4096);
  /* A fresh socket's buffer takes the few hundred bytes at once; a client that is gone needs no answer. */
  if (answer(&out, 503, "Service Unavailable", why, NULL) == 0)
    (void)send(fd, out.data, out.len, MSG_DONTWAIT | MSG_NOSIGNAL);
  ca_buf_free(&out);
  close(fd);
}

/* True when the peer's groups (SO_PEERGROUPS: the supplementary ones) hold gid. */
static bool peer_in_group(int fd, gid_t gid) {
  gid_t small[64], *groups = small;
  socklen_t len = sizeof(small);
  _cleanup_free_ gid_t *big = NULL;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
    if (errno != ERANGE || !(big = malloc(len)) || getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, big, &len) < 0)
      return false;
    groups = big;
  }
  for (size_t i = 0; i < len / sizeof(gid_t); i++)
    if (groups[i] == gid)
      return true;
  return false;
}

/* Defence in depth behind the socket's mode: the agent's user and root, and with share whoever the engine socket's
 * owner, group and mode let connect (write permission, as the kernel checks it: owner, else group, else others). */
static bool peer_admitted(const struct ag_proxy *px, int fd) {
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
    return false;
  if (cred.uid == getuid() || cred.uid == 0)
    return true;
  if (!px->share)
    return false;
  if (cred.uid == px->uid)
    return px->mode & 0200;
  if (cred.gid == px->gid || peer_in_group(fd, px->gid))
    return px->mode & 0020;
  return px->mode & 0002;
}

/* Waits before the next accept after one that found no descriptor: 10 ms, doubling up to 1 s, cut short by the stop. */
static int accept_backoff(struct ag_proxy *px, int backoff_ms) {
  int next = backoff_ms ? CA_MIN(backoff_ms * 2, ACCEPT_BACKOFF_MAX_MS) : ACCEPT_BACKOFF_MIN_MS;
  struct pollfd p = {.fd = px->stop_pipe[0], .events = POLLIN};
  (void)poll(&p, 1, next); /* the stop, or the time: the loop looks at which */
  return next;
}

/* A new connection's hooks: the server's, and the receipt's with the client read now (it may exit any time). */
static void set_hooks(struct conn *c, int fd) {
  struct ag_proxy *px = c->px;
  struct ag_proxy_req *req = c->req;
  ag_proxy_req_set_volume_fn(req, ensure_volume, c);
  struct ag_proxy_hooks hooks = {
      .created = record_id, .ending = session_ending, .reserve = budget_take, .release = budget_give, .ctx = px};
  if (px->observer.created) {
    struct ag_proxy_peer peer;
    if (ag_proxy_peer_read(fd, &peer))
      ag_proxy_req_set_peer(req, &peer);
    hooks.created_info = observe_created;
    hooks.removed = observe_removed;
  }
  ag_proxy_req_set_hooks(req, &hooks);
}

static void *accept_loop(void *arg) {
  struct ag_proxy *px = arg;
  int backoff_ms = 0;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, THREAD_STACK);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  for (;;) {
    pthread_mutex_lock(&px->mu);
    bool stopping = px->stopping;
    pthread_mutex_unlock(&px->mu);
    if (stopping)
      break;
    struct pollfd pfd[2] = {{.fd = px->listen_fd, .events = POLLIN}, {.fd = px->stop_pipe[0], .events = POLLIN}};
    if (poll(pfd, 2, -1) < 0 && errno != EINTR)
      break;
    if (pfd[1].revents)
      break;
    if (!(pfd[0].revents & POLLIN))
      continue;
    int fd = accept4(px->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
      /* Out of descriptors or memory: the client stays in the backlog, which keeps the socket readable, so the next
       * try waits (without, the loop spun at 100% CPU). A client that gave up (ECONNABORTED): the next one at once. */
      bool short_of = errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM;
      backoff_ms = short_of ? accept_backoff(px, backoff_ms) : 0;
      continue;
    }
    backoff_ms = 0;
    if (!peer_admitted(px, fd)) {
      close(fd);
      continue;
    }
    pthread_mutex_lock(&px->mu);
    bool full = px->n_conns >= px->max_conns;
    pthread_mutex_unlock(&px->mu);
    if (full) {
      refuse_full(px, fd);
      continue;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
      close(fd);
      continue;
    }
    *c = (struct conn){
        .px = px, .client = fd, .engine = -1, .side = -1, .refs = 1, .active_usec = ca_now_monotonic_usec()};
    c->req = ag_proxy_req_new(px->session_id, (const char *const *)px->labels);
    if (!c->req) {
      close(fd);
      free(c);
      continue;
    }
    set_hooks(c, fd);
    pthread_mutex_lock(&px->mu);
    ag_proxy_req_set_cgroup_parent(c->req, px->cgroup_parent);
    pthread_mutex_unlock(&px->mu);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cond, NULL);
    pthread_mutex_lock(&px->mu);
    c->next = px->conns;
    if (px->conns)
      px->conns->prev = c;
    px->conns = c;
    px->n_conns++;
    pthread_mutex_unlock(&px->mu);
    pthread_t t;
    if (pthread_create(&t, &attr, client_to_engine, c) != 0)
      conn_unref(c);
  }
  pthread_attr_destroy(&attr);
  return NULL;
}

static void proxy_free(struct ag_proxy *px) {
  if (px->listen_fd >= 0)
    close(px->listen_fd);
  for (int i = 0; i < 2; i++)
    if (px->stop_pipe[i] >= 0)
      close(px->stop_pipe[i]);
  pthread_mutex_destroy(&px->mu);
  pthread_mutex_destroy(&px->reach_mu);
  pthread_cond_destroy(&px->changed);
  free(px->socket_path);
  free(px->engine_socket);
  if (px->engine_ctx_free)
    px->engine_ctx_free(px->engine_ctx);
  free(px->session_id);
  ca_strv_free(px->labels);
  ca_strv_free(px->created);
  free(px->cgroup_parent);
  free(px);
}

/* The socket's owner, group and mode: the engine socket's with share, else 0600. A bind gives the socket our umask's
 * mode: its dir (the 0700 state dir, or the short runtime dir only we write) is what kept anybody from it until now. */
static int share_socket(struct ag_proxy *px, const struct ag_proxy_config *cfg) {
  if (chmod(cfg->socket_path, 0600) < 0)
    return -errno;
  if (!cfg->share)
    return 0;
  uid_t uid = cfg->uid;
  if (chown(cfg->socket_path, uid, cfg->gid) < 0) {
    uid = getuid(); /* not root: the engine's group at least, when we are in it */
    if (chown(cfg->socket_path, (uid_t)-1, cfg->gid) < 0)
      return 0;
  }
  if (chmod(cfg->socket_path, cfg->mode & 0777) < 0)
    return -errno;
  px->share = true;
  px->uid = uid;
  px->gid = cfg->gid;
  px->mode = cfg->mode & 0777;
  return 0;
}

int ag_proxy_start(const struct ag_proxy_config *cfg, struct ag_proxy **ret, ca_error **err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  struct ag_proxy *px = strlen(cfg->socket_path) < sizeof(sa.sun_path) ? calloc(1, sizeof(*px)) : NULL;
  if (!px) {
    if (cfg->engine_ctx_free) /* the proxy owns it from the call on */
      cfg->engine_ctx_free(cfg->engine_ctx);
    if (strlen(cfg->socket_path) >= sizeof(sa.sun_path))
      return ca_error_set(err, ENAMETOOLONG, "docker proxy: socket path %s is longer than a Unix socket allows (%zu)",
                          cfg->socket_path, sizeof(sa.sun_path) - 1);
    return ca_error_set(err, ENOMEM, "out of memory");
  }
  *px = (struct ag_proxy){.listen_fd = -1, .stop_pipe = {-1, -1}};
  pthread_mutex_init(&px->mu, NULL);
  pthread_mutex_init(&px->reach_mu, NULL);
  pthread_cond_init(&px->changed, NULL);
  px->max_conns = cfg->max_connections ? cfg->max_connections : DEFAULT_MAX_CONNECTIONS;
  px->body_budget = cfg->body_budget ? cfg->body_budget : AG_PROXY_BODY_BUDGET;
  px->idle_usec = cfg->idle_usec ? cfg->idle_usec : DEFAULT_IDLE_USEC;
  px->connect_engine = cfg->connect_engine;
  px->engine_ctx = cfg->engine_ctx;
  px->engine_ctx_free = cfg->engine_ctx_free; /* from here the proxy frees the context, also on failure */
  px->engine_reached = cfg->engine_reached;
  px->engine_reached_ctx = cfg->engine_reached_ctx;
  if (cfg->observer)
    px->observer = *cfg->observer;
  size_t n = 0;
  while (cfg->labels[n])
    n++;
  px->labels = calloc(n + 1, sizeof(char *));
  px->socket_path = strdup(cfg->socket_path);
  px->engine_socket = strdup(cfg->engine_socket);
  px->session_id = strdup(cfg->session_id);
  bool oom = !px->labels || !px->socket_path || !px->engine_socket || !px->session_id;
  for (size_t i = 0; i < n && !oom; i++)
    oom = !(px->labels[i] = strdup(cfg->labels[i]));
  if (oom) {
    proxy_free(px);
    return ca_error_set(err, ENOMEM, "out of memory");
  }

  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", cfg->socket_path);
  px->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (px->listen_fd < 0 || pipe2(px->stop_pipe, O_CLOEXEC) < 0) {
    int e = errno;
    proxy_free(px);
    return ca_error_set_errno(err, e, "docker proxy: socket");
  }
  if (bind(px->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
    int e = errno;
    proxy_free(px);
    return ca_error_set_errno(err, e, "docker proxy: bind %s", cfg->socket_path);
  }
  if (share_socket(px, cfg) < 0 || listen(px->listen_fd, 128) < 0) {
    int e = errno;
    (void)unlink(cfg->socket_path);
    proxy_free(px);
    return ca_error_set_errno(err, e, "docker proxy: listen on %s", cfg->socket_path);
  }

  /* The proxy's threads never take the agent's signals: they stay blocked for the signalfd. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, THREAD_STACK);
  int r = pthread_create(&px->accept_thread, &attr, accept_loop, px);
  pthread_attr_destroy(&attr);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (r != 0) {
    (void)unlink(cfg->socket_path);
    proxy_free(px);
    return ca_error_set_errno(err, r, "docker proxy: start thread");
  }
  *ret = px;
  return 0;
}

int ag_proxy_set_cgroup_parent(struct ag_proxy *px, const char *parent, ca_error **err) {
  char *copy = strdup(parent);
  if (!copy)
    return ca_error_set(err, ENOMEM, "out of memory");
  pthread_mutex_lock(&px->mu);
  char *old = px->cgroup_parent;
  px->cgroup_parent = old ? old : copy; /* set once: connections keep pointing at it */
  pthread_mutex_unlock(&px->mu);
  if (old)
    free(copy);
  return old ? ca_error_set(err, EBUSY, "docker proxy: the cgroup parent is set already") : 0;
}

const char *ag_proxy_socket_path(const struct ag_proxy *px) {
  return px->socket_path;
}

static void wait_conns_until(struct ag_proxy *px, uint64_t deadline_usec) {
  while (px->n_conns > 0) {
    uint64_t now = ca_now_monotonic_usec();
    if (now >= deadline_usec)
      break;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t left = CA_MIN(deadline_usec - now, 100000ULL);
    ts.tv_nsec += (long)(left * 1000);
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_cond_timedwait(&px->changed, &px->mu, &ts);
  }
}

void ag_proxy_stop(struct ag_proxy *px, uint64_t drain_usec) {
  ag_proxy_stop_recorded(px, drain_usec, NULL);
}

void ag_proxy_stop_recorded(struct ag_proxy *px, uint64_t drain_usec, char ***ret_created) {
  if (ret_created)
    *ret_created = NULL;
  if (!px)
    return;
  pthread_mutex_lock(&px->mu);
  px->stopping = true;
  pthread_cond_broadcast(&px->changed);
  pthread_mutex_unlock(&px->mu);
  /* engine_reached's owner may be gone once the stop returned, even if a connection is left stuck below: no call
   * starts from here, and one that runs is waited for. */
  pthread_mutex_lock(&px->reach_mu);
  px->reach_closed = true;
  pthread_mutex_unlock(&px->reach_mu);
  ssize_t w = write(px->stop_pipe[1], "x", 1);
  (void)w; /* the pipe is empty: this cannot block or fail */
  pthread_join(px->accept_thread, NULL);
  close(px->listen_fd);
  px->listen_fd = -1;
  (void)unlink(px->socket_path); /* nobody can connect any more; an error leaves it to registry removal */

  /* Requests in flight finish (their clients are usually dead already, which ends the connections by itself). */
  pthread_mutex_lock(&px->mu);
  wait_conns_until(px, ca_now_monotonic_usec() + drain_usec);
  for (struct conn *c = px->conns; c; c = c->next) {
    (void)shutdown(c->client, SHUT_RDWR);
    if (c->engine >= 0)
      (void)shutdown(c->engine, SHUT_RDWR);
    if (c->side >= 0)
      (void)shutdown(c->side, SHUT_RDWR);
  }
  wait_conns_until(px, ca_now_monotonic_usec() + FORCE_CLOSE_WAIT_USEC);
  bool left = px->n_conns > 0;
  if (ret_created) {
    *ret_created = TAKE_PTR(px->created);
    px->n_created = 0;
  }
  pthread_mutex_unlock(&px->mu);
  if (left)
    return; /* a thread stuck past a shutdown would use freed memory: leak the little that is left instead */
  proxy_free(px);
}
