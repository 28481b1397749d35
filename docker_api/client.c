/* The transport: host parsing, version negotiation, one HTTP exchange with caps and timeouts, error classification
 * and retries. Everything above it builds paths and bodies and parses answers. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "docker-internal.h"

/* ---- errors ------------------------------------------------------------------------------------------------ */

enum dk_error_kind dk_error_kind(const ca_error *e) {
  if (!e)
    return DK_ERR_FINAL;
  switch (e->code) {
    case ENOENT:
      /* 404 "No such ..." vs a missing engine socket, which a restarting engine fixes by itself */
      if (e->detail == 404)
        return DK_ERR_NOT_FOUND;
      return e->detail == 0 ? DK_ERR_TRANSIENT : DK_ERR_FINAL;
    case EEXIST:
    case EBUSY:
      return e->detail == 409 ? DK_ERR_CONFLICT : DK_ERR_FINAL;
    case EINPROGRESS:
      return DK_ERR_IN_PROGRESS;
    case ESRCH:
      return DK_ERR_NOT_RUNNING;
    case ECONNREFUSED:
    case ECONNRESET:
    case ETIMEDOUT:
    case EAGAIN:
      return DK_ERR_TRANSIENT;
    case EIO:
      return e->detail >= 500 ? DK_ERR_TRANSIENT : DK_ERR_FINAL;
    default:
      return DK_ERR_FINAL;
  }
}

bool dk_error_retryable(const ca_error *e, bool idempotent) {
  if (dk_error_kind(e) != DK_ERR_TRANSIENT)
    return false;
  if (idempotent)
    return true;
  /* nothing reached the engine: safe to send again whatever the method */
  return e->detail == 0 && (e->code == ECONNREFUSED || e->code == ENOENT);
}

unsigned dk_backoff_ms(unsigned attempt) {
  unsigned ms = DK_RETRY_BASE_MS << CA_MIN(attempt, 8u);
  return CA_MIN(ms, DK_RETRY_MAX_MS);
}

void dk_sleep_ms(unsigned ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* The request as shown in messages: method and path without the query string. */
static void req_label(const char *method, const char *path, char *buf, size_t size) {
  size_t n = strcspn(path, "?");
  snprintf(buf, size, "%s %.*s", method, (int)CA_MIN(n, 200u), path);
}

void dk_excerpt(const char *body, size_t len, char *out, size_t size) {
  size_t o = 0;
  while (len > 0 && isspace((unsigned char)body[len - 1]))
    len--;
  for (size_t i = 0; i < len && o + 1 < size; i++) {
    unsigned char ch = (unsigned char)body[i];
    out[o++] = (ch >= 0x20 && ch != 0x7f) || ch >= 0x80 ? (char)ch : ' ';
  }
  out[o] = '\0';
}

int dk_http_error(ca_error **err, const char *method, const char *path, long status, const char *body, size_t len,
                  bool has_api_version) {
  char what[256], msg[512] = "";
  req_label(method, path, what, sizeof(what));

  if (body && len > 0) {
    _cleanup_json_ cJSON *j = cJSON_ParseWithLength(body, len);
    const cJSON *m = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "message") : NULL;
    if (cJSON_IsString(m) && m->valuestring)
      dk_excerpt(m->valuestring, strlen(m->valuestring), msg, sizeof(msg));
    else
      dk_excerpt(body, CA_MIN(len, 300u), msg, sizeof(msg));
  }
  if (!msg[0])
    snprintf(msg, sizeof(msg), "(no message)");

  int code;
  switch (status) {
    case 400:
      code = EINVAL;
      break;
    case 401:
    case 403:
      code = EPERM;
      break;
    case 404:
      /* an unknown route answers "page not found" without the Api-Version header */
      code = (!has_api_version || strcasecmp(msg, "page not found") == 0) ? ENOSYS : ENOENT;
      break;
    case 409:
      if (strcasestr(msg, "is not running"))
        code = ESRCH;
      else if (strcasestr(msg, "already in progress") || strcasestr(msg, "is already running"))
        code = EINPROGRESS;
      else if (strcasestr(msg, "already in use"))
        code = EEXIST;
      else
        code = EBUSY;
      break;
    default:
      code = status >= 500 ? EIO : EPROTO;
  }
  int r;
  if (code == ENOSYS)
    r = ca_error_set(err, code, "%s: daemon said %ld: %s (the engine does not know this endpoint)", what, status, msg);
  else
    r = ca_error_set(err, code, "%s: daemon said %ld: %s", what, status, msg);
  if (err && *err)
    (*err)->detail = (int)status;
  return r;
}

int dk_api_version_parse(const char *s) {
  unsigned maj, min;
  int n = 0;
  if (!s || sscanf(s, "%3u.%3u%n", &maj, &min, &n) != 2 || s[n] != '\0' || maj > 99 || min > 999)
    return -1;
  return (int)(maj * 1000 + min);
}

/* ---- requests ---------------------------------------------------------------------------------------------- */

void dk_req_init(struct dk_req *r, const char *method, const char *path, const char *body, long timeout_ms) {
  *r = (struct dk_req){.method = method, .path = path, .body = body, .timeout_ms = timeout_ms};
  ca_buf_init(&r->resp, DK_DEFAULT_MAX_BODY);
}

void dk_req_done(struct dk_req *r) {
  ca_buf_free(&r->resp);
  ca_error_free(r->cb_err);
  r->cb_err = NULL;
  curl_slist_free_all(r->headers);
  r->headers = NULL;
  free(r->url);
  r->url = NULL;
}

static void req_reset_results(struct dk_req *r) {
  r->status = 0;
  ca_buf_reset(&r->resp);
  r->api_version_hdr[0] = '\0';
  r->headers_done = false;
  r->curl_errbuf[0] = '\0';
  ca_error_free(r->cb_err);
  r->cb_err = NULL;
  r->stopped = false;
}

static size_t header_cb(char *data, size_t size, size_t nmemb, void *userdata) {
  struct dk_req *r = userdata;
  size_t len = size * nmemb;
  if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
    /* a new header block (also after 100 Continue): the status line "HTTP/1.1 200 OK". data is not NUL-terminated
     * (strtol would skip a "\r\n" after the space and read on past the line), so the three digits are read here. */
    const char *sp = memchr(data, ' ', len);
    long status = 0;
    for (size_t i = sp ? (size_t)(sp - data) + 1 : len, n = 0; i < len && n < 3 && isdigit((unsigned char)data[i]);
         i++, n++)
      status = status * 10 + (data[i] - '0');
    r->status = status;
    r->headers_done = false;
  } else if (len <= 2 && (len == 0 || data[0] == '\r' || data[0] == '\n')) {
    if (r->status >= 200)
      r->headers_done = true;
  } else if (len > 12 && strncasecmp(data, "Api-Version:", 12) == 0) {
    size_t i = 12, o = 0;
    while (i < len && (data[i] == ' ' || data[i] == '\t'))
      i++;
    while (i < len && data[i] != '\r' && data[i] != '\n' && o + 1 < sizeof(r->api_version_hdr))
      r->api_version_hdr[o++] = data[i++];
    r->api_version_hdr[o] = '\0';
  }
  return len;
}

size_t dk_header_line(struct dk_req *r, char *data, size_t len) {
  return header_cb(data, 1, len, r);
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userdata) {
  struct dk_req *r = userdata;
  size_t len = size * nmemb;
  if (r->on_body && r->status >= 200 && r->status < 300) {
    int k = r->on_body(r, data, len);
    if (k < 0)
      return 0; /* r->cb_err holds the reason */
    if (k > 0) {
      r->stopped = true;
      return 0;
    }
    return len;
  }
  if (ca_buf_append(&r->resp, data, len, &r->cb_err) < 0)
    return 0;
  return len;
}

/* Returns the cancellation state as an errno (0: go on). */
static int cancel_state(const struct dk_cancel *cancel) {
  if (!cancel)
    return 0;
  if (atomic_load(&cancel->requested))
    return ECANCELED;
  if (cancel->deadline_usec && ca_now_monotonic_usec() >= cancel->deadline_usec)
    return ETIMEDOUT;
  return 0;
}

static int set_cancel_error(int code, ca_error **err) {
  if (code == ECANCELED)
    return ca_error_set(err, ECANCELED, "cancelled");
  return ca_error_set(err, ETIMEDOUT, "deadline passed");
}

/* libcurl 7.88 opens its sockets without close-on-exec, so a command the agent starts would inherit a live
 * connection to the engine (root's Docker socket). Every connection, unix or tcp, is opened here instead. (The
 * socketpair each multi handle keeps for curl_multi_wakeup is not: cg_spawn marks whatever is left close-on-exec.) */
static curl_socket_t open_socket_cb(void *userdata, curlsocktype purpose, struct curl_sockaddr *address) {
  (void)userdata;
  (void)purpose;
  return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

/* Sets an option of easy unless one before failed (cc). */
#define SET(opt, val)                                                                                                  \
  do {                                                                                                                 \
    if (cc == CURLE_OK)                                                                                                \
      cc = curl_easy_setopt(easy, opt, val);                                                                           \
  } while (0)

CURLcode dk_transport_setopt(const struct dk_client *c, CURL *easy) {
  CURLcode cc = CURLE_OK;
  if (c->socket_path)
    SET(CURLOPT_UNIX_SOCKET_PATH, c->socket_path);
  if (c->tls_ca) {
    SET(CURLOPT_CAINFO, c->tls_ca);
    SET(CURLOPT_SSLCERT, c->tls_cert);
    SET(CURLOPT_SSLKEY, c->tls_key);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
  }
  SET(CURLOPT_OPENSOCKETFUNCTION, open_socket_cb);
  SET(CURLOPT_NOSIGNAL, 1L);
  SET(CURLOPT_CONNECTTIMEOUT_MS, DK_CONNECT_TIMEOUT_MS);
  return cc;
}

int dk_req_setup(struct dk_client *c, CURL *easy, struct dk_req *r, ca_error **err) {
  req_reset_results(r);
  if (!c->easy)
    return ca_error_set(err, EINVAL, "request on a client that is not connected");
  curl_slist_free_all(r->headers); /* from an earlier setup */
  r->headers = NULL;
  r->resp.max = c->max_body;
  curl_easy_reset(easy); /* keeps the connection cache */

  free(r->url);
  r->url = NULL;
  int k = r->unversioned ? asprintf(&r->url, "%s%s", c->base_url, r->path)
                         : asprintf(&r->url, "%s/v%s%s", c->base_url, c->api_version, r->path);
  if (k < 0) {
    r->url = NULL;
    return ca_error_set(err, ENOMEM, "out of memory");
  }
  struct curl_slist *h = curl_slist_append(NULL, "Expect:");
  if (h && r->body) {
    struct curl_slist *h2 = curl_slist_append(h, "Content-Type: application/json");
    if (!h2) {
      curl_slist_free_all(h);
      h = NULL;
    } else
      h = h2;
  }
  if (!h)
    return ca_error_set(err, ENOMEM, "out of memory");
  r->headers = h;

  CURLcode cc = CURLE_OK;
  SET(CURLOPT_URL, r->url);
  if (cc == CURLE_OK)
    cc = dk_transport_setopt(c, easy);
  SET(CURLOPT_TIMEOUT_MS, r->timeout_ms);
  SET(CURLOPT_HTTPHEADER, r->headers);
  SET(CURLOPT_ERRORBUFFER, r->curl_errbuf);
  SET(CURLOPT_HEADERFUNCTION, header_cb);
  SET(CURLOPT_HEADERDATA, r);
  SET(CURLOPT_WRITEFUNCTION, write_cb);
  SET(CURLOPT_WRITEDATA, r);
  SET(CURLOPT_NOPROGRESS, 1L);
  if (streq(r->method, "POST")) {
    SET(CURLOPT_POST, 1L);
    SET(CURLOPT_POSTFIELDS, r->body ? r->body : "");
    SET(CURLOPT_POSTFIELDSIZE, (long)(r->body ? strlen(r->body) : 0));
  } else if (streq(r->method, "GET")) {
    SET(CURLOPT_HTTPGET, 1L);
  } else {
    SET(CURLOPT_CUSTOMREQUEST, r->method);
  }
#undef SET
  if (cc != CURLE_OK)
    return ca_error_set(err, EINVAL, "curl setup: %s", curl_easy_strerror(cc));
  return 0;
}

/* Why a unix socket connection failed, in words a user can act on. */
static int unix_connect_error(struct dk_client *c, const char *what, ca_error **err) {
  struct stat st;
  if (stat(c->socket_path, &st) < 0) {
    if (errno == ENOENT)
      return ca_error_set(err, ENOENT, "%s: %s does not exist: is the Docker engine running?", what, c->socket_path);
    if (errno == EACCES)
      return ca_error_set(err, EACCES, "%s: permission denied on %s: run as root or join the docker group", what,
                          c->socket_path);
    return ca_error_set_errno(err, errno, "%s: %s", what, c->socket_path);
  }
  if (access(c->socket_path, R_OK | W_OK) < 0 && errno == EACCES)
    return ca_error_set(err, EACCES, "%s: permission denied on %s: run as root or join the docker group", what,
                        c->socket_path);
  return ca_error_set(err, ECONNREFUSED, "%s: connection to %s refused: is the Docker engine running?", what,
                      c->socket_path);
}

/* Whether libcurl's message for a failed read or write is a TLS alert of the peer (OpenSSL: "... alert ..."). */
static bool tls_alert(const char *detail) {
  return strstr(detail, "SSL") && strstr(detail, "alert");
}

static int tls_error(const struct dk_client *c, ca_error **err, const char *what, const char *detail) {
  int r =
      ca_error_set(err, EPROTO, "%s: TLS with %s failed: %s (check DOCKER_CERT_PATH's ca.pem, cert.pem and key.pem)",
                   what, c->host, detail);
  if (err)
    (*err)->detail = DK_ERROR_DETAIL_TLS;
  return r;
}

bool dk_error_is_tls(const ca_error *e) {
  return e && e->detail == DK_ERROR_DETAIL_TLS;
}

int dk_req_result(struct dk_client *c, struct dk_req *r, CURLcode cc, ca_error **err) {
  char what[256];
  req_label(r->method, r->path, what, sizeof(what));

  if (cc != CURLE_OK) {
    if (r->stopped)
      return 0;
    if (r->cb_err) {
      int code = r->cb_err->code;
      if (err) {
        ca_error_free(*err);
        *err = TAKE_PTR(r->cb_err);
        return ca_error_wrap(err, "%s", what);
      }
      return -code;
    }
    const char *detail = r->curl_errbuf[0] ? r->curl_errbuf : curl_easy_strerror(cc);
    switch (cc) {
      case CURLE_COULDNT_CONNECT:
        if (c->socket_path)
          return unix_connect_error(c, what, err);
        return ca_error_set(err, ECONNREFUSED, "%s: cannot connect to %s: %s", what, c->host, detail);
      case CURLE_OPERATION_TIMEDOUT:
        return ca_error_set(err, ETIMEDOUT, "%s: no answer in time: %s", what, detail);
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
        /* An engine that refuses our certificate (expired, unknown CA) ends the handshake with an alert, which
         * libcurl reports as a failed read: that is TLS, not a dropped connection to retry. */
        if (c->tls_ca && tls_alert(detail))
          return tls_error(c, err, what, detail);
        return ca_error_set(err, ECONNRESET, "%s: connection dropped: %s", what, detail);
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CACERT_BADFILE:
        return tls_error(c, err, what, detail);
      default:
        return ca_error_set(err, EIO, "%s: %s", what, detail);
    }
  }
  if ((r->status >= 200 && r->status < 300) || r->status == 304)
    return 0;
  return dk_http_error(err, r->method, r->path, r->status, r->resp.data, r->resp.len, r->api_version_hdr[0] != '\0');
}

static int req_perform_once(struct dk_client *c, struct dk_req *r, ca_error **err) {
  int k = dk_req_setup(c, c->easy, r, err);
  if (k < 0)
    return k;
  CURLcode cc = curl_easy_perform(c->easy);
  return dk_req_result(c, r, cc, err);
}

/* Performs r, retrying what dk_error_retryable allows; a timeout ends it at once when retry_timeouts is false. */
static int req_perform_retry(struct dk_client *c, struct dk_req *r, bool idempotent, bool retry_timeouts,
                             ca_error **err) {
  for (unsigned attempt = 0;; attempt++) {
    _cleanup_error_ ca_error *e = NULL;
    int k = req_perform_once(c, r, &e);
    if (k >= 0)
      return k;
    if ((int)attempt >= c->retries || !dk_error_retryable(e, idempotent) || (!retry_timeouts && e->code == ETIMEDOUT)) {
      if (err) {
        ca_error_free(*err);
        *err = TAKE_PTR(e);
      }
      return k;
    }
    dk_sleep_ms(dk_backoff_ms(attempt));
  }
}

int dk_req_perform(struct dk_client *c, struct dk_req *r, ca_error **err) {
  int k = dk_client_connect(c, err);
  return k < 0 ? k : req_perform_once(c, r, err);
}

int dk_req_perform_retry(struct dk_client *c, struct dk_req *r, bool idempotent, ca_error **err) {
  int k = dk_client_connect(c, err);
  return k < 0 ? k : req_perform_retry(c, r, idempotent, true, err);
}

int dk_multi_run(CURLM *multi, CURL *easy, struct dk_req *r, bool until_headers, const struct dk_cancel *cancel,
                 CURLcode *ret_cc, ca_error **err) {
  for (;;) {
    int running = 0;
    CURLMcode mc = curl_multi_perform(multi, &running);
    if (mc != CURLM_OK)
      return ca_error_set(err, EIO, "curl: %s", curl_multi_strerror(mc));
    CURLMsg *msg;
    int queued;
    while ((msg = curl_multi_info_read(multi, &queued)))
      if (msg->msg == CURLMSG_DONE && msg->easy_handle == easy) {
        *ret_cc = msg->data.result;
        return 1;
      }
    if (until_headers && r->headers_done && r->status >= 200 && r->status < 300)
      return 0;
    int code = cancel_state(cancel);
    if (code)
      return set_cancel_error(code, err);
    int timeout = 50;
    if (cancel && cancel->deadline_usec) {
      uint64_t now = ca_now_monotonic_usec();
      uint64_t left_ms = cancel->deadline_usec > now ? (cancel->deadline_usec - now + 999) / 1000 : 0;
      timeout = (int)CA_MIN(left_ms, (uint64_t)timeout);
    }
    mc = curl_multi_poll(multi, NULL, 0, timeout, NULL);
    if (mc != CURLM_OK)
      return ca_error_set(err, EIO, "curl: %s", curl_multi_strerror(mc));
  }
}

/* ---- client ------------------------------------------------------------------------------------------------ */

static int file_readable(const char *dir, const char *name, char **ret, ca_error **err) {
  _cleanup_free_ char *p = NULL;
  if (asprintf(&p, "%s/%s", dir, name) < 0)
    return ca_error_set(err, ENOMEM, "out of memory");
  if (access(p, R_OK) < 0) {
    int r = ca_error_set(err, ENOENT, "DOCKER_TLS_VERIFY is set but %s is missing or unreadable (DOCKER_CERT_PATH)", p);
    if (err)
      (*err)->detail = DK_ERROR_DETAIL_TLS;
    return r;
  }
  *ret = TAKE_PTR(p);
  return 0;
}

/* Fills the transport fields of c from a host URL; tls_dir (a docker context's TLS files) means TLS whatever
 * DOCKER_TLS_VERIFY says. */
static int client_parse_host(struct dk_client *c, const char *host, const char *tls_dir, ca_error **err) {
  c->host = strdup(host);
  if (!c->host)
    return ca_error_set(err, ENOMEM, "out of memory");

  if (strncmp(host, "unix://", 7) == 0) {
    const char *path = host + 7;
    if (path[0] != '/')
      return ca_error_set(err, EINVAL, "docker host %s: the socket path must be absolute", host);
    if (strlen(path) > DK_SOCKET_PATH_MAX)
      return ca_error_set(err, ENAMETOOLONG, "docker host %s: socket path too long (%zu bytes, at most %d)", host,
                          strlen(path), DK_SOCKET_PATH_MAX);
    c->socket_path = strdup(path);
    c->base_url = strdup("http://localhost");
  } else if (strncmp(host, "tcp://", 6) == 0) {
    const char *hp = host + 6;
    size_t n = strcspn(hp, "/");
    if (n == 0 || hp[n] != '\0')
      return ca_error_set(err, EINVAL, "docker host %s: expected tcp://HOST:PORT", host);
    const char *v = getenv("DOCKER_TLS_VERIFY");
    bool tls = tls_dir || (v && v[0] && !streq(v, "0"));
    bool has_port = strrchr(hp, ':') && strrchr(hp, ']') < strrchr(hp, ':');
    if (asprintf(&c->base_url, "%s://%s%s", tls ? "https" : "http", hp, has_port ? "" : (tls ? ":2376" : ":2375")) <
        0) {
      c->base_url = NULL;
      return ca_error_set(err, ENOMEM, "out of memory");
    }
    if (tls) {
      const char *dir = tls_dir ? tls_dir : getenv("DOCKER_CERT_PATH");
      _cleanup_free_ char *def = NULL;
      if (!dir || !dir[0]) {
        const char *home = getenv("HOME");
        if (!home || asprintf(&def, "%s/.docker", home) < 0)
          return ca_error_set(err, EINVAL, "DOCKER_TLS_VERIFY is set but neither DOCKER_CERT_PATH nor HOME is");
        dir = def;
      }
      int k;
      if ((k = file_readable(dir, "ca.pem", &c->tls_ca, err)) < 0 ||
          (k = file_readable(dir, "cert.pem", &c->tls_cert, err)) < 0 ||
          (k = file_readable(dir, "key.pem", &c->tls_key, err)) < 0)
        return k;
    }
  } else {
    return ca_error_set(err, EINVAL, "docker host %s: unsupported scheme (use unix:///path or tcp://host:port)", host);
  }
  if (!c->base_url || (strncmp(host, "unix://", 7) == 0 && !c->socket_path))
    return ca_error_set(err, ENOMEM, "out of memory");
  return 0;
}

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_code;

static void global_init_once(void) {
  global_code = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int dk_global_init(ca_error **err) {
  /* Once, before the first handle of any thread. A lazy client may get here in its connecting thread while other
   * threads run: curl_global_init allows that only in a libcurl with CURL_VERSION_THREADSAFE (7.84 and later built
   * with atomics, as Debian's 7.88 is); none of those threads calls libcurl meanwhile. */
  (void)pthread_once(&global_once, global_init_once);
  if (global_code != CURLE_OK)
    return ca_error_set(err, EIO, "cannot initialise libcurl: %s", curl_easy_strerror(global_code));
  return 0;
}

void dk_client_free(struct dk_client *c) {
  if (!c)
    return;
  if (c->conn == DK_CONN_RUNNING)
    (void)pthread_join(c->conn_thread, NULL);
  ca_error_free(c->conn_err);
  for (size_t i = 0; i < c->n_pool; i++)
    curl_easy_cleanup(c->pool[i]);
  free(c->pool);
  curl_multi_cleanup(c->multi);
  curl_easy_cleanup(c->easy);
  free(c->host);
  free(c->socket_path);
  free(c->base_url);
  free(c->tls_ca);
  free(c->tls_cert);
  free(c->tls_key);
  free(c);
}

static struct dk_client *client_alloc(ca_error **err) {
  struct dk_client *c = calloc(1, sizeof(*c));
  if (!c) {
    (void)ca_error_set(err, ENOMEM, "out of memory");
    return NULL;
  }
  return c;
}

/* Initialises libcurl (first time in the process) and makes the client's handles. */
static int client_handles(struct dk_client *c, ca_error **err) {
  int k = dk_global_init(err);
  if (k < 0)
    return k;
  c->easy = curl_easy_init();
  c->multi = curl_multi_init();
  if (!c->easy || !c->multi)
    return ca_error_set(err, ENOMEM, "cannot initialise libcurl");
  return 0;
}

static int client_negotiate(struct dk_client *c, ca_error **err) {
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, "GET", "/_ping", NULL, c->timeout_ms);
  r.unversioned = true;
  /* Not dk_req_perform_retry: this is the connection itself. A refused or dropped connection is retried (an engine
   * that is starting), a timeout is not: an engine that accepts and never answers would cost every start of the agent
   * (retries + 1) timeouts before it goes on without it. */
  int k = req_perform_retry(c, &r, true, false, err);
  if (k < 0)
    return k;
  int server = dk_api_version_parse(r.api_version_hdr);
  if (server < 0)
    return ca_error_set(err, EPROTO,
                        "GET /_ping: the engine at %s reported no usable API version (\"%s\"): not a Docker engine, or "
                        "one too old (API %s or later is needed)",
                        c->host, r.api_version_hdr, DK_API_VERSION_MIN);
  if (server < dk_api_version_parse(DK_API_VERSION_MIN))
    return ca_error_set(err, ENOTSUP, "the engine at %s speaks API %s, older than the minimum %s: upgrade Docker",
                        c->host, r.api_version_hdr, DK_API_VERSION_MIN);
  int use = CA_MIN(server, dk_api_version_parse(DK_API_VERSION_MAX));
  snprintf(c->api_version, sizeof(c->api_version), "%d.%d", use / 1000, use % 1000);
  return 0;
}

/* Handles and version negotiation: what dk_client_new does after its checks, now or (lazy) later. */
static int client_connect_now(struct dk_client *c, ca_error **err) {
  int k = client_handles(c, err);
  if (k < 0)
    return k;
  return client_negotiate(c, err);
}

/* The lazy client whose background thread this is, making its first call: connected, for this thread only. */
static _Thread_local const struct dk_client *connected_here;

static void *connect_thread(void *userdata) {
  struct dk_client *c = userdata;
  if (client_connect_now(c, &c->conn_err) == 0 && c->first) {
    connected_here = c;
    c->first(c, c->first_userdata);
  }
  return NULL;
}

void dk_client_connect_start(struct dk_client *c, dk_first_call_fn first, void *userdata) {
  if (!c || c->conn != DK_CONN_PENDING)
    return;
  c->first = first;
  c->first_userdata = userdata;
  /* The thread must never take a signal meant for the caller (a run blocks them for its signalfd). */
  sigset_t all, old;
  sigfillset(&all);
  pthread_attr_t attr;
  if (pthread_attr_init(&attr) != 0)
    return;
  (void)pthread_attr_setstacksize(&attr, 256 * 1024); /* a cap on its resident stack: libcurl and a first call */
  pthread_sigmask(SIG_SETMASK, &all, &old);
  if (pthread_create(&c->conn_thread, &attr, connect_thread, c) == 0)
    c->conn = DK_CONN_RUNNING; /* else dk_client_connect connects in the caller's thread */
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
}

int dk_client_connect(struct dk_client *c, ca_error **err) {
  if (connected_here == c)
    return 0; /* its first call, in the thread that connected it (c->conn is the caller's) */
  if (c->conn == DK_CONN_RUNNING) {
    (void)pthread_join(c->conn_thread, NULL);
    c->conn = DK_CONN_DONE;
  } else if (c->conn == DK_CONN_PENDING) {
    (void)client_connect_now(c, &c->conn_err);
    c->conn = DK_CONN_DONE;
  }
  if (!c->conn_err)
    return 0;
  /* the same failure for every call: the client does not try again */
  int r = ca_error_set(err, c->conn_err->code, "%s", c->conn_err->msg);
  if (err && *err)
    (*err)->detail = c->conn_err->detail;
  return r;
}

void dk_client_set_limits(struct dk_client *c, const struct dk_client_options *o) {
  c->timeout_ms = o->timeout_ms ? o->timeout_ms : DK_DEFAULT_TIMEOUT_MS;
  c->remove_timeout_ms = o->remove_timeout_ms ? o->remove_timeout_ms : DK_DEFAULT_REMOVE_TIMEOUT_MS;
  c->retries = o->retries < 0 ? 0 : (o->retries == 0 ? DK_DEFAULT_RETRIES : o->retries);
  c->max_body = o->max_body ? o->max_body : DK_DEFAULT_MAX_BODY;
}

int dk_client_new(const struct dk_client_options *opts, struct dk_client **ret, ca_error **err) {
  struct dk_client_options o = opts ? *opts : (struct dk_client_options){0};
  _cleanup_(dk_host_done) struct dk_host found = {0};
  int k = dk_host_find(o.host, NULL, &found, err);
  if (k < 0)
    return k;
  const char *host = found.url;
  _cleanup_(dk_client_freep) struct dk_client *c = client_alloc(err);
  if (!c)
    return -ENOMEM;
  dk_client_set_limits(c, &o);

  k = client_parse_host(c, host, found.tls_dir, err);
  if (k < 0)
    return k;
  if (c->socket_path) {
    /* say why before trying: missing socket, wrong permissions */
    struct stat st;
    if (stat(c->socket_path, &st) < 0 || !S_ISSOCK(st.st_mode) || access(c->socket_path, R_OK | W_OK) < 0) {
      if (stat(c->socket_path, &st) == 0 && !S_ISSOCK(st.st_mode))
        return ca_error_set(err, ENOTSOCK, "docker host %s: %s is not a socket", host, c->socket_path);
      k = unix_connect_error(c, "connect", err);
      (void)ca_error_wrap(err, "docker host %s", host); /* k already carries the code */
      return k;
    }
  }
  if (o.lazy) {
    c->conn = DK_CONN_PENDING;
  } else if ((k = client_connect_now(c, err)) < 0) {
    return k;
  }
  *ret = TAKE_PTR(c);
  return 0;
}

static char *strdup_or_null(const char *s, bool *oom) {
  if (!s)
    return NULL;
  char *d = strdup(s);
  if (!d)
    *oom = true;
  return d;
}

int dk_client_clone(const struct dk_client *src, struct dk_client **ret, ca_error **err) {
  if (src->conn != DK_CONN_DONE || src->conn_err)
    return ca_error_set(err, EINVAL, "clone of a client that is not connected (call dk_client_connect first)");
  _cleanup_(dk_client_freep) struct dk_client *c = client_alloc(err);
  if (!c)
    return -ENOMEM;
  bool oom = false;
  c->host = strdup_or_null(src->host, &oom);
  c->socket_path = strdup_or_null(src->socket_path, &oom);
  c->base_url = strdup_or_null(src->base_url, &oom);
  c->tls_ca = strdup_or_null(src->tls_ca, &oom);
  c->tls_cert = strdup_or_null(src->tls_cert, &oom);
  c->tls_key = strdup_or_null(src->tls_key, &oom);
  if (oom)
    return ca_error_set(err, ENOMEM, "out of memory");
  memcpy(c->api_version, src->api_version, sizeof(c->api_version));
  c->timeout_ms = src->timeout_ms;
  c->remove_timeout_ms = src->remove_timeout_ms;
  c->retries = src->retries;
  c->max_body = src->max_body;
  int k = client_handles(c, err);
  if (k < 0)
    return k;
  *ret = TAKE_PTR(c);
  return 0;
}

const char *dk_client_api_version(const struct dk_client *c) {
  return c->api_version;
}

int dk_engine_version(struct dk_client *c, char **ret_version, char **ret_os, ca_error **err) {
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, "GET", "/version", NULL, c->timeout_ms);
  int k = dk_req_perform_retry(c, &r, true, err);
  if (k < 0)
    return k;
  return dk_parse_version(r.resp.data, r.resp.len, ret_version, ret_os, err);
}

int dk_engine_cgroup(struct dk_client *c, char **ret_driver, char **ret_version, ca_error **err) {
  _cleanup_(dk_req_done) struct dk_req r;
  dk_req_init(&r, "GET", "/info", NULL, c->timeout_ms);
  int k = dk_req_perform_retry(c, &r, true, err);
  if (k < 0)
    return k;
  _cleanup_json_ cJSON *j = cJSON_ParseWithLength(r.resp.data, r.resp.len);
  const cJSON *d = cJSON_GetObjectItemCaseSensitive(j, "CgroupDriver");
  const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "CgroupVersion");
  if (!cJSON_IsString(d) || !d->valuestring[0])
    return ca_error_set(err, EPROTO, "GET /info: the engine's answer names no CgroupDriver");
  _cleanup_free_ char *driver = strdup(d->valuestring);
  char *version = strdup(cJSON_IsString(v) ? v->valuestring : "1"); /* engines before API 1.40 knew v1 only */
  if (!driver || !version) {
    free(version);
    return ca_error_set(err, ENOMEM, "out of memory");
  }
  *ret_driver = TAKE_PTR(driver);
  *ret_version = version;
  return 0;
}
