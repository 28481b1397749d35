/* docker_api internals shared by its sources and its unit tests. */
#pragma once

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <pthread.h>

#include "docker.h"

#define DK_DEFAULT_HOST "unix:///var/run/docker.sock"
#define DK_DEFAULT_TIMEOUT_MS 30000u
#define DK_DEFAULT_REMOVE_TIMEOUT_MS 60000u
#define DK_CONNECT_TIMEOUT_MS 2000L
#define DK_DEFAULT_RETRIES 4
#define DK_DEFAULT_MAX_BODY (64u << 20)
#define DK_RETRY_BASE_MS 100u
#define DK_RETRY_MAX_MS 2000u
/* Longest unix socket path (sun_path holds 108 bytes with the NUL). */
#define DK_SOCKET_PATH_MAX 107

enum dk_conn {
  DK_CONN_DONE = 0, /* connected, or failed with conn_err */
  DK_CONN_PENDING,  /* lazy: nothing done yet */
  DK_CONN_RUNNING,  /* lazy: conn_thread is connecting */
};

struct dk_client {
  char *host;        /* as given, for messages */
  char *socket_path; /* unix sockets */
  char *base_url;    /* "http://localhost", "http://h:p", "https://h:p" */
  char *tls_ca, *tls_cert, *tls_key;
  char api_version[16];
  unsigned timeout_ms, remove_timeout_ms;
  int retries;
  size_t max_body;
  CURL *easy;   /* short calls, reused for keep-alive */
  CURLM *multi; /* bulk and streaming calls */
  CURL **pool;  /* easy handles for bulk calls */
  size_t n_pool;
  enum dk_conn conn;
  pthread_t conn_thread;
  ca_error *conn_err;     /* why connecting failed (lazy clients), repeated to every call */
  dk_first_call_fn first; /* the first call conn_thread makes once connected, or NULL */
  void *first_userdata;
};

/* One HTTP exchange. path is relative to the version prefix ("/containers/json?all=1"); raw paths start with "//". */
struct dk_req {
  const char *method;
  const char *path;
  const char *body; /* NULL: no body */
  long timeout_ms;  /* 0: unbounded (streaming) */
  bool unversioned; /* "/_ping" */
  char *url;

  /* results */
  long status;
  ca_buf resp;
  char api_version_hdr[16];
  bool headers_done;
  char curl_errbuf[CURL_ERROR_SIZE];
  ca_error *cb_err; /* set by callbacks */

  /* streaming: when set, 2xx bodies go here instead of resp */
  int (*on_body)(struct dk_req *r, const char *data, size_t len);
  void *stream_ctx;
  bool stopped; /* on_body asked to stop without an error */

  struct curl_slist *headers;
};

void dk_req_init(struct dk_req *r, const char *method, const char *path, const char *body, long timeout_ms);
void dk_req_done(struct dk_req *r);
/* The transport options every connection of c has: its Unix socket or TLS files and checks, close-on-exec sockets,
 * no signals, the connect timeout. */
CURLcode dk_transport_setopt(const struct dk_client *c, CURL *easy);
/* Configures an easy handle for r. */
int dk_req_setup(struct dk_client *c, CURL *easy, struct dk_req *r, ca_error **err);
/* Turns the outcome of a finished transfer into 0 (2xx/304) or an error with context. */
int dk_req_result(struct dk_client *c, struct dk_req *r, CURLcode cc, ca_error **err);
/* Feeds one response header line to r as curl's header callback gets it (len bytes, ending in "\n", no NUL after):
 * the status line and Api-Version. For tests/fuzz/. */
size_t dk_header_line(struct dk_req *r, char *data, size_t len);
/* Performs r on the client's easy handle, once (a lazy client connects first). */
int dk_req_perform(struct dk_client *c, struct dk_req *r, ca_error **err);
/* Performs r with retries of transient failures (connection refused always; others when idempotent). */
int dk_req_perform_retry(struct dk_client *c, struct dk_req *r, bool idempotent, ca_error **err);
/* Runs one easy handle already added to a multi until it is done (returns 1 and its CURLcode) or, with until_headers,
 * until a 2xx status and all headers arrived (returns 0). cancel (may be NULL) stops it with ECANCELED/ETIMEDOUT and
 * leaves the transfer in the multi. */
int dk_multi_run(CURLM *multi, CURL *easy, struct dk_req *r, bool until_headers, const struct dk_cancel *cancel,
                 CURLcode *ret_cc, ca_error **err);
/* Runs a streaming request on the client's handle inside its multi, so cancel is honoured while the stream idles. */
int dk_stream_perform(struct dk_client *c, struct dk_req *r, const struct dk_cancel *cancel, ca_error **err);
unsigned dk_backoff_ms(unsigned attempt);
void dk_sleep_ms(unsigned ms);

/* Builds the error of a daemon answer: classifies by status and message; sets detail to the status. */
int dk_http_error(ca_error **err, const char *method, const char *path, long status, const char *body, size_t len,
                  bool has_api_version);
/* Parses "1.41" into major*1000+minor; -1 on garbage. */
int dk_api_version_parse(const char *s);

/* URL-escaped filters JSON ({"label":["k=v"]}); *ret is "" for no filters. Caller frees. */
int dk_filters_encode(const struct dk_filter *f, char **ret, ca_error **err);
/* URL-escapes a path segment or query value (caller frees). */
char *dk_escape(const char *s);

/* Splits a list answer into its elements as the bytes arrive (jsplit.c): the elements of a top-level array
 * (containers, networks), or of the "Volumes" array of a top-level object (volumes; its other members are checked
 * and dropped). Each element, an object, goes to fn whole, as bytes; a negative return stops the split with that
 * error. An element over max_value bytes (EMSGSIZE), nesting beyond DK_SPLIT_MAX_DEPTH, anything that is not JSON of
 * that shape and a truncated answer are errors. Memory: one element, whatever the answer's length. */
#define DK_SPLIT_MAX_VALUE (4u << 20)
#define DK_SPLIT_MAX_DEPTH 256u
enum dk_split_mode { DK_SPLIT_ARRAY, DK_SPLIT_VOLUMES };
typedef int (*dk_split_fn)(void *userdata, const char *json, size_t len, ca_error **err);
struct dk_split {
  enum dk_split_mode mode;
  int state;      /* enum split_state of jsplit.c */
  int capture;    /* what the value being captured is */
  bool capturing; /* inside a value */
  bool in_string, escape;
  bool key_is_volumes, key_is_warnings, in_volumes, seen_volumes;
  bool failed;
  unsigned depth;
  size_t offset;   /* bytes fed */
  size_t elements; /* handed to fn */
  ca_buf value;
  dk_split_fn fn;
  void *userdata;
};
/* A printable excerpt of untrusted text (an engine's answer) for a message: control characters become spaces,
 * trailing space goes, at most size - 1 bytes into out. */
void dk_excerpt(const char *text, size_t len, char *out, size_t size);
/* max_value 0: DK_SPLIT_MAX_VALUE. */
void dk_split_init(struct dk_split *s, enum dk_split_mode mode, size_t max_value, dk_split_fn fn, void *userdata);
int dk_split_feed(struct dk_split *s, const char *data, size_t len, ca_error **err);
/* Fails unless the whole answer arrived. */
int dk_split_finish(struct dk_split *s, ca_error **err);
void dk_split_done(struct dk_split *s);
/* One listed element (an object's JSON text) into *ret, which the caller clears with dk_item_clear. */
int dk_parse_item(enum dk_kind kind, const char *json, size_t len, struct dk_item *ret, ca_error **err);
void dk_item_clear(struct dk_item *it);
/* A list filled as the answer arrives: feed the answer to split, then take the list (NULL after an error). */
struct dk_list_fill_ctx {
  struct dk_split split;
  void *fill;
};
int dk_list_fill_init(struct dk_list_fill_ctx *ctx, enum dk_kind kind, size_t max_value, ca_error **err);
struct dk_list *dk_list_fill_take(struct dk_list_fill_ctx *ctx);
void dk_list_fill_done(struct dk_list_fill_ctx *ctx);

/* Parsers of engine answers (untrusted): type-checked, malformed input is an error. */
int dk_parse_list(enum dk_kind kind, const char *json, size_t len, struct dk_list **ret, ca_error **err);
int dk_parse_container_info(const char *json, size_t len, struct dk_container_info **ret, ca_error **err);
int dk_parse_labels(const cJSON *obj, const char *what, struct dk_labels *ret, ca_error **err);
void dk_labels_clear(struct dk_labels *l);
/* RFC 3339 ("2024-05-07T21:09:36.123456789Z", offsets allowed) to unix microseconds; Go's zero time gives 0. */
int dk_parse_time(const char *s, int64_t *ret_us, ca_error **err);
/* Parses one event line; strings in ev point into *ret_json, which the caller deletes. */
int dk_parse_event(const char *line, size_t len, cJSON **ret_json, struct dk_event *ev, ca_error **err);
int dk_parse_wait_result(const char *json, size_t len, int *ret_exit_code, ca_error **err);
/* The answer of GET /version: Version and Os (both required; the caller frees them). */
int dk_parse_version(const char *json, size_t len, char **ret_version, char **ret_os, ca_error **err);

/* Tty=false log framing: [stream u8][0 0 0][len u32 BE][payload]. Feed any chunking. */
struct dk_demux {
  unsigned char hdr[8];
  size_t hdr_len;
  uint32_t remaining;
  int stream;
  ca_buf syserr; /* payload of a stream-3 frame */
  dk_log_fn fn;
  void *userdata;
  bool want_stdout, want_stderr;
  bool stopped;
};
void dk_demux_init(struct dk_demux *d, dk_log_fn fn, void *userdata);
/* Returns 0, or negative with err for a malformed frame or an in-band error; d->stopped when fn asked to stop. */
int dk_demux_feed(struct dk_demux *d, const char *data, size_t len, ca_error **err);
/* Fails when the stream ended inside a frame. */
int dk_demux_finish(struct dk_demux *d, ca_error **err);
void dk_demux_done(struct dk_demux *d);

/* Adds "Labels": {key: value} from "key=value" strings, each checked by dk_label_validate; a repeated key keeps its
 * last value, as docker --label does. */
int dk_json_add_labels(cJSON *obj, const char *const *labels, ca_error **err);

/* The images of a list answer (/images/json, /system/df's Images; null is none). */
int dk_parse_images(const cJSON *arr, struct dk_images **ret, ca_error **err);
/* The answer of GET /system/df. */
int dk_parse_df(const char *json, size_t len, struct dk_df **ret, ca_error **err);
/* How many networks of a GET /networks answer hold an address pool (IPAM.Config non-empty). */
int dk_parse_network_pools(const char *json, size_t len, unsigned *ret, ca_error **err);
