/* The Docker labeling proxy (issue 8).
 *
 * Threading: one accept thread, and per client connection two threads, one per direction, each a plain blocking
 * read/write loop. A direction never waits for the other, so a hijacked stream (attach, exec), a streaming answer
 * (logs -f, events, stats, wait) and a keep-alive connection need no special case, and no write can dead-lock against
 * a peer that is itself waiting for us to read. An epoll loop would need per-direction buffers, partial-write state and
 * back-pressure handling for the same result; with a few dozen connections per CI session, threads (small stacks, a
 * hard cap on connections: the accept thread waits while it is reached) are the simpler correct choice. Every thread
 * runs with all signals blocked, so the agent's signalfd keeps getting SIGINT/SIGTERM/SIGHUP/SIGCHLD.
 *
 * The engine-to-client direction is copied byte for byte, unparsed. The client-to-engine direction goes through
 * http_parser (libhttp-parser): request heads are held until they are complete; a create request
 * (POST [/vX.Y]/{containers,networks,volumes}/create) has its body buffered (de-chunked, capped), its labels merged and
 * is sent with a fresh Content-Length; every other request is forwarded byte for byte as it arrives. After an upgrade
 * (101, attach and exec start) or a hijack, and on bytes that are not HTTP, the direction becomes a raw copy and the
 * engine answers for itself. The proxy's own answers (400 refusal, 413) are written between the engine's answers;
 * HTTP clients do not pipeline requests, so a request is only sent once the previous answer is complete. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <fcntl.h>
#include <http_parser.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proxy.h"
#include "nesting.h" /* label names only: this file links without the session code (the fuzz target) */
#include "session.h"

#define HEAD_MAX (HTTP_MAX_HEADER_SIZE + 16 * 1024) /* the parser refuses larger heads before this is reached */
#define IO_CHUNK (64 * 1024)
#define DEFAULT_MAX_CONNECTIONS 256
#define THREAD_STACK (256 * 1024)
#define FORCE_CLOSE_WAIT_USEC (5 * 1000000ULL)

/* ---- the request direction ------------------------------------------------------------------------------------ */

enum phase { PH_HEAD, PH_BODY_PASS, PH_BODY_CREATE };

struct ag_proxy_req {
  http_parser p;
  const char *session_id;
  const char *const *labels;
  bool raw;
  bool closed; /* a create body could not be read: the answer went to the client, nothing more is forwarded */
  enum phase phase, next_phase;
  bool message_done; /* set by on_message_complete, handled after the pause */
  bool oom, too_large;
  bool in_value;
  ca_buf pending; /* raw bytes of the head being parsed */
  ca_buf url;
  ca_buf headers; /* "Field: value\r\n" of a create head, without the framing headers */
  ca_buf field, value;
  ca_buf body; /* a create request's decoded body */
};

static struct ag_proxy_req *req_of(http_parser *p) {
  return p->data;
}

static int track(struct ag_proxy_req *r, ca_buf *b, const char *at, size_t len) {
  _cleanup_error_ ca_error *e = NULL;
  if (ca_buf_append(b, at, len, &e) < 0) {
    if (e->code == ENOMEM)
      r->oom = true;
    return -1; /* a head over its cap: not HTTP we proxy, forwarded as it is */
  }
  return 0;
}

static int on_message_begin(http_parser *p) {
  struct ag_proxy_req *r = req_of(p);
  ca_buf_reset(&r->url);
  ca_buf_reset(&r->headers);
  ca_buf_reset(&r->field);
  ca_buf_reset(&r->value);
  ca_buf_reset(&r->body);
  r->in_value = false;
  r->too_large = false;
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
  if (r->field.len && !framing_header(ca_buf_str(&r->field)))
    k = ca_buf_appendf(&r->headers, NULL, "%s: %s\r\n", ca_buf_str(&r->field), ca_buf_str(&r->value));
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
  if (r->phase != PH_BODY_CREATE || r->too_large)
    return 0;
  if (r->body.len + len > AG_PROXY_BODY_MAX) {
    r->too_large = true;
    ca_buf_free(&r->body);
    ca_buf_init(&r->body, AG_PROXY_BODY_MAX);
    return 0;
  }
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
  free(r);
}

bool ag_proxy_req_is_raw(const struct ag_proxy_req *r) {
  return r->raw;
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
  size_t n = 0;
  for (; i < len && url[i] != '?' && url[i] != '#'; i++) {
    char c = url[i];
    if (c == '%' && i + 2 < len && isxdigit((unsigned char)url[i + 1]) && isxdigit((unsigned char)url[i + 2])) {
      char hex[3] = {url[i + 1], url[i + 2], 0};
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

bool ag_proxy_is_create(const char *method, const char *url, size_t url_len) {
  char path[256];
  if (!streq(method, "POST") || !request_path(url, url_len, path, sizeof(path)))
    return false;
  const char *p = unversioned(path);
  return streq(p, "/containers/create") || streq(p, "/networks/create") || streq(p, "/volumes/create");
}

/* Attach and exec start take over the connection even without an Upgrade header (older clients). */
static bool is_hijack(const char *url, size_t url_len) {
  char path[512];
  if (!request_path(url, url_len, path, sizeof(path)))
    return false;
  const char *p = unversioned(path);
  size_t n = strlen(p);
  return (strncmp(p, "/containers/", 12) == 0 && n > 19 && streq(p + n - 7, "/attach")) ||
         (strncmp(p, "/exec/", 6) == 0 && n > 12 && streq(p + n - 6, "/start"));
}

static bool is_labels_key(const cJSON *item) {
  return item->string && strcasecmp(item->string, "Labels") == 0;
}

/* The outermost session of this proxy's: the outer label among ours (a nested session's proxy), else our own id. */
static const char *root_of(const char *session_id, const char *const *labels) {
  static const char key[] = AG_LABEL_OUTER "=";
  for (const char *const *l = labels; *l; l++)
    if (strncmp(*l, key, sizeof(key) - 1) == 0)
      return *l + sizeof(key) - 1;
  return session_id;
}

/* Whether the Labels object obj says it was made by a session nested in ours: its outer label names our root. */
static bool nested_labels(const cJSON *obj, const char *session_id, const char *const *labels) {
  const cJSON *outer = cJSON_GetObjectItemCaseSensitive(obj, AG_LABEL_OUTER);
  return cJSON_IsString(outer) && streq(outer->valuestring, root_of(session_id, labels));
}

int ag_proxy_rewrite_body(const char *session_id, const char *const *labels, const char *body, size_t len,
                          char **ret_body, size_t *ret_len, ca_error **err) {
  _cleanup_json_ cJSON *root = cJSON_ParseWithLength(body, len);
  if (!root || !cJSON_IsObject(root))
    return 1; /* the engine answers bodies it cannot read itself */
  /* The engine decodes field names case-insensitively and merges repeated ones: merge every spelling of Labels. */
  _cleanup_json_ cJSON *merged = cJSON_CreateObject();
  if (!merged)
    return ca_error_set(err, ENOMEM, "out of memory");
  for (cJSON *it = root->child; it; it = it->next) {
    if (!is_labels_key(it) || cJSON_IsNull(it))
      continue;
    if (!cJSON_IsObject(it))
      return 1;
    for (cJSON *l = it->child; l; l = l->next) {
      if (!l->string)
        return 1;
      if (streq(l->string, AG_LABEL_OUTER) && !nested_labels(it, session_id, labels))
        return ca_error_set(err, EPERM,
                            "cleanup-agent: label " AG_LABEL_OUTER "=%s names another session than this one's "
                            "outermost (%s): remove the label",
                            cJSON_IsString(l) ? l->valuestring : "(not a string)", root_of(session_id, labels));
      if (streq(l->string, AG_LABEL_SESSION)) {
        if (cJSON_IsString(l) && streq(l->valuestring, session_id))
          continue;
        if (nested_labels(it, session_id, labels))
          return 1; /* a session nested in ours made it: its labels are a session's, they go as they are */
        return ca_error_set(err, EPERM,
                            "cleanup-agent: label " AG_LABEL_SESSION "=%s names another session than this one (%s): "
                            "what is created through this session's Docker socket belongs to this session; remove the "
                            "label, or set " AG_LABEL_KEEP "=true to keep the object after the session",
                            cJSON_IsString(l) ? l->valuestring : "(not a string)", session_id);
      }
      cJSON *copy = cJSON_Duplicate(l, true);
      if (!copy)
        return ca_error_set(err, ENOMEM, "out of memory");
      cJSON_DeleteItemFromObjectCaseSensitive(merged, l->string);
      cJSON_AddItemToObject(merged, l->string, copy);
    }
  }
  for (cJSON *it = root->child; it;) {
    cJSON *next = it->next;
    if (is_labels_key(it))
      cJSON_Delete(cJSON_DetachItemViaPointer(root, it));
    it = next;
  }
  for (const char *const *l = labels; *l; l++) {
    const char *eq = strchr(*l, '=');
    _cleanup_free_ char *key = eq ? strndup(*l, (size_t)(eq - *l)) : NULL;
    if (!key)
      continue;
    cJSON_DeleteItemFromObjectCaseSensitive(merged, key);
    if (!cJSON_AddStringToObject(merged, key, eq + 1))
      return ca_error_set(err, ENOMEM, "out of memory");
  }
  cJSON_AddItemToObject(root, "Labels", TAKE_PTR(merged));
  char *text = cJSON_PrintUnformatted(root);
  if (!text)
    return ca_error_set(err, ENOMEM, "out of memory");
  *ret_len = strlen(text);
  *ret_body = text;
  return 0;
}

/* An answer of the proxy itself, in the engine's error format ({"message": ...}) so that clients print it. */
static int answer(ca_buf *to_client, int status, const char *reason, const char *message, ca_error **err) {
  _cleanup_json_ cJSON *j = cJSON_CreateObject();
  _cleanup_free_ char *text = NULL;
  if (!j || !cJSON_AddStringToObject(j, "message", message) || !(text = cJSON_PrintUnformatted(j)))
    return ca_error_set(err, ENOMEM, "out of memory");
  return ca_buf_appendf(to_client, err,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", status,
                        reason, strlen(text), text);
}

static int emit_create(struct ag_proxy_req *r, ca_buf *to_engine, ca_buf *to_client, ca_error **err) {
  if (r->too_large)
    return answer(to_client, 413, "Request Entity Too Large",
                  "cleanup-agent: the create request's body is larger than 16 MiB, the most the session's Docker proxy "
                  "buffers to add the session labels",
                  err);
  _cleanup_free_ char *rewritten = NULL;
  size_t len = 0;
  _cleanup_error_ ca_error *refusal = NULL;
  int k = ag_proxy_rewrite_body(r->session_id, r->labels, r->body.data ? r->body.data : "", r->body.len, &rewritten,
                                &len, &refusal);
  if (k == -EPERM)
    return answer(to_client, 400, "Bad Request", refusal->msg, err);
  if (k < 0)
    return ca_error_set(err, ENOMEM, "out of memory");
  const char *body = k == 0 ? rewritten : r->body.data;
  if (k != 0)
    len = r->body.len;
  if (ca_buf_appendf(to_engine, err, "%s %s HTTP/%u.%u\r\n%sContent-Length: %zu\r\n\r\n",
                     http_method_str((enum http_method)r->p.method), ca_buf_str(&r->url), r->p.http_major,
                     r->p.http_minor, ca_buf_str(&r->headers), len) < 0)
    return -ENOMEM;
  return len ? ca_buf_append(to_engine, body, len, err) : 0;
}

static int become_raw(struct ag_proxy_req *r, const char *data, size_t len, ca_buf *to_engine, ca_error **err) {
  r->raw = true;
  if (r->pending.len && ca_buf_append(to_engine, r->pending.data, r->pending.len, err) < 0)
    return -ENOMEM;
  ca_buf_free(&r->pending);
  return len ? ca_buf_append(to_engine, data, len, err) : 0;
}

int ag_proxy_req_feed(struct ag_proxy_req *r, const char *data, size_t len, ca_buf *to_engine, ca_buf *to_client,
                      ca_error **err) {
  while (len > 0) {
    if (r->closed)
      return 1;
    if (r->raw)
      return ca_buf_append(to_engine, data, len, err);
    size_t n = http_parser_execute(&r->p, &settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&r->p);
    if (r->oom)
      return ca_error_set(err, ENOMEM, "out of memory");
    if (n > len)
      n = len;
    if (e != HPE_OK && e != HPE_PAUSED) {
      if (r->phase == PH_BODY_CREATE) {
        /* Its head is not forwarded yet: the engine would see a body without one. */
        r->closed = true;
        if (answer(to_client, 400, "Bad Request",
                   "cleanup-agent: malformed HTTP request body (the session's Docker proxy could not read it)",
                   err) < 0)
          return -ENOMEM;
        return 1;
      }
      return become_raw(r, data, len, to_engine, err);
    }
    /* data[0, n) was consumed in the phase that was current when the parser started. */
    int k = 0;
    if (r->phase == PH_HEAD)
      k = ca_buf_append(&r->pending, data, n, NULL);
    else if (r->phase == PH_BODY_PASS)
      k = ca_buf_append(to_engine, data, n, err);
    if (k < 0) {
      if (r->phase == PH_HEAD)
        return become_raw(r, data, len, to_engine, err);
      return k;
    }
    data += n;
    len -= n;
    if (e != HPE_PAUSED) {
      if (n == 0)
        return become_raw(r, data, len, to_engine, err); /* no progress without an error: do not spin */
      continue;
    }
    http_parser_pause(&r->p, 0);
    if (r->message_done) {
      r->message_done = false;
      if (r->phase == PH_BODY_CREATE && emit_create(r, to_engine, to_client, err) < 0)
        return -ENOMEM;
      r->phase = PH_HEAD;
      bool upgrade = r->p.upgrade || is_hijack(ca_buf_str(&r->url), r->url.len);
      ca_buf_reset(&r->body);
      if (upgrade)
        return become_raw(r, data, len, to_engine, err);
    } else {
      /* Head complete. */
      r->phase = r->next_phase;
      if (r->phase == PH_BODY_PASS && ca_buf_append(to_engine, r->pending.data, r->pending.len, err) < 0)
        return -ENOMEM;
      ca_buf_reset(&r->pending);
    }
  }
  return r->closed ? 1 : 0;
}

/* ---- the server ---------------------------------------------------------------------------------------------------
 */

struct conn {
  struct ag_proxy *px;
  int client, engine;
  int refs;                 /* one per direction thread; under px->mu */
  pthread_mutex_t write_mu; /* the engine's bytes and the proxy's own answers both go to client */
  struct conn *prev, *next;
};

struct ag_proxy {
  char *socket_path, *engine_socket, *session_id;
  char **labels;
  int listen_fd;
  int stop_pipe[2];
  pthread_t accept_thread;
  bool accept_started;
  pthread_mutex_t mu;
  pthread_cond_t changed;
  unsigned n_conns, max_conns;
  struct conn *conns;
  bool stopping;
};

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
  if (last) {
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
  }
  pthread_mutex_unlock(&px->mu);
  if (last) {
    pthread_mutex_destroy(&c->write_mu);
    free(c);
  }
}

/* Engine to client: a byte copy. The engine's end of stream becomes the client's; a client that is gone ends both. */
static void *engine_to_client(void *arg) {
  struct conn *c = arg;
  char *buf = malloc(IO_CHUNK);
  for (;;) {
    ssize_t n = buf ? read(c->engine, buf, IO_CHUNK) : -1;
    if (n < 0 && errno == EINTR)
      continue;
    if (n == 0) {
      (void)shutdown(c->client, SHUT_WR); /* the client sees the engine's close as it would directly */
      break;
    }
    int k = -1;
    if (n > 0) {
      pthread_mutex_lock(&c->write_mu);
      k = ca_write_all(c->client, buf, (size_t)n);
      pthread_mutex_unlock(&c->write_mu);
    }
    if (k < 0) {
      (void)shutdown(c->client, SHUT_RDWR);
      (void)shutdown(c->engine, SHUT_RDWR);
      break;
    }
  }
  free(buf);
  conn_unref(c);
  return NULL;
}

static void refuse_connection(struct conn *c, const char *why) {
  ca_buf out = CA_BUF_INIT(4096);
  /* The request is not read: the answer goes out at once and the connection closes. */
  if (answer(&out, 502, "Bad Gateway", why, NULL) == 0)
    (void)ca_write_all(c->client, out.data, out.len); /* a client that is gone needs no answer */
  ca_buf_free(&out);
}

/* Connects the connection's engine side; on failure the client gets a refusal saying why. */
static bool connect_engine(struct conn *c) {
  struct ag_proxy *px = c->px;
  int efd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  pthread_mutex_lock(&px->mu);
  c->engine = efd; /* ag_proxy_stop reads it under the lock */
  pthread_mutex_unlock(&px->mu);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", px->engine_socket);
  if (efd >= 0 && connect(efd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
    return true;
  char why[512];
  snprintf(why, sizeof(why), "cleanup-agent: the session's Docker proxy cannot reach the engine at %s: %s",
           px->engine_socket, strerror(errno));
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

/* The client closed its writing side: the engine sees the half-close as it would directly. A half-closed client
 * (stdin ended) still reads the engine's answer; one that is gone entirely (POLLHUP) ends the connection even when
 * the engine keeps its side open and silent. */
static void client_half_closed(struct conn *c) {
  (void)shutdown(c->engine, SHUT_WR);
  struct pollfd pfd = {.fd = c->client, .events = 0};
  while (poll(&pfd, 1, -1) >= 0 || errno == EINTR)
    if (pfd.revents & (POLLHUP | POLLERR | POLLNVAL))
      break;
  (void)shutdown(c->engine, SHUT_RDWR);
  (void)shutdown(c->client, SHUT_RDWR);
}

/* Client to engine, through the request parser. Owns the connection until the engine side is up. */
static void *client_to_engine(void *arg) {
  struct conn *c = arg;
  struct ag_proxy *px = c->px;
  _cleanup_(ag_proxy_req_freep) struct ag_proxy_req *req =
      ag_proxy_req_new(px->session_id, (const char *const *)px->labels);
  _cleanup_free_ char *buf = malloc(IO_CHUNK);
  ca_buf to_engine = CA_BUF_INIT(AG_PROXY_BODY_MAX + 2 * HEAD_MAX);
  ca_buf to_client = CA_BUF_INIT(64 * 1024);

  bool running = connect_engine(c) && start_engine_reader(c);
  while (running && req && buf) {
    ssize_t n = read(c->client, buf, IO_CHUNK);
    if (n < 0 && errno == EINTR)
      continue;
    if (n == 0) {
      client_half_closed(c);
      break;
    }
    int k = -1, fed = n > 0 ? ag_proxy_req_feed(req, buf, (size_t)n, &to_engine, &to_client, NULL) : -1;
    if (fed >= 0) {
      k = to_engine.len ? ca_write_all(c->engine, to_engine.data, to_engine.len) : 0;
      if (k == 0 && to_client.len) {
        pthread_mutex_lock(&c->write_mu);
        k = ca_write_all(c->client, to_client.data, to_client.len);
        pthread_mutex_unlock(&c->write_mu);
      }
      if (fed == 1)
        k = -1; /* the proxy answered and closes */
    }
    /* Keep the buffers small between requests: a 16 MiB body must not stay allocated for a keep-alive connection. */
    if (to_engine.cap > IO_CHUNK * 4)
      ca_buf_free(&to_engine);
    else
      ca_buf_reset(&to_engine);
    ca_buf_reset(&to_client);
    if (k < 0) {
      (void)shutdown(c->client, SHUT_RDWR);
      (void)shutdown(c->engine, SHUT_RDWR);
      break;
    }
  }
  ca_buf_free(&to_engine);
  ca_buf_free(&to_client);
  conn_unref(c);
  return NULL;
}

static void *accept_loop(void *arg) {
  struct ag_proxy *px = arg;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, THREAD_STACK);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  for (;;) {
    /* Bounded: at the cap, new clients wait in the listen backlog until a connection ends. */
    pthread_mutex_lock(&px->mu);
    while (px->n_conns >= px->max_conns && !px->stopping)
      pthread_cond_wait(&px->changed, &px->mu);
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
    if (fd < 0)
      continue; /* the client gave up (ECONNABORTED) or fds ran out for a moment; the next one may work */
    /* Defence in depth behind the socket's mode: only the agent's user (or root) is served. */
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || (cred.uid != getuid() && cred.uid != 0)) {
      close(fd);
      continue;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (!c) {
      close(fd);
      continue;
    }
    *c = (struct conn){.px = px, .client = fd, .engine = -1, .refs = 1};
    pthread_mutex_init(&c->write_mu, NULL);
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
  pthread_cond_destroy(&px->changed);
  free(px->socket_path);
  free(px->engine_socket);
  free(px->session_id);
  ca_strv_free(px->labels);
  free(px);
}

int ag_proxy_start(const struct ag_proxy_config *cfg, struct ag_proxy **ret, ca_error **err) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (strlen(cfg->socket_path) >= sizeof(sa.sun_path))
    return ca_error_set(err, ENAMETOOLONG, "docker proxy: socket path %s is longer than a Unix socket allows (%zu)",
                        cfg->socket_path, sizeof(sa.sun_path) - 1);
  struct ag_proxy *px = calloc(1, sizeof(*px));
  if (!px)
    return ca_error_set(err, ENOMEM, "out of memory");
  *px = (struct ag_proxy){.listen_fd = -1, .stop_pipe = {-1, -1}};
  pthread_mutex_init(&px->mu, NULL);
  pthread_cond_init(&px->changed, NULL);
  px->max_conns = cfg->max_connections ? cfg->max_connections : DEFAULT_MAX_CONNECTIONS;
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
  /* The state dir is 0700, so nobody else could reach it before this chmod either. */
  if (chmod(cfg->socket_path, 0600) < 0 || listen(px->listen_fd, 128) < 0) {
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
  if (!px)
    return;
  pthread_mutex_lock(&px->mu);
  px->stopping = true;
  pthread_cond_broadcast(&px->changed);
  pthread_mutex_unlock(&px->mu);
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
  }
  wait_conns_until(px, ca_now_monotonic_usec() + FORCE_CLOSE_WAIT_USEC);
  bool left = px->n_conns > 0;
  pthread_mutex_unlock(&px->mu);
  if (left)
    return; /* a thread stuck past a shutdown would use freed memory: leak the little that is left instead */
  proxy_free(px);
}
