/* common: errors with context, logging, bounded buffers, strict parsers, JSON field helpers and whole-file I/O.
 * The one public header of the module; it knows nothing of Docker or cgroups. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

#include "macro.h"

/* ---- errors ------------------------------------------------------------------------------------------------ */

/* An error: an errno-like code (positive), a module-defined detail (docker_api puts the HTTP status there) and a
 * message that each layer prefixes with its context, so the CLI prints one line that tells the whole story. */
typedef struct ca_error {
  int code;
  int detail;
  char *msg;
} ca_error;

/* Fills *err (replacing an earlier error) and returns -code. code is an errno value (> 0); err may be NULL. */
int ca_error_set(ca_error **err, int code, const char *fmt, ...) _printf_(3, 4);
/* As ca_error_set, with ": strerror(code)" appended to the message. */
int ca_error_set_errno(ca_error **err, int code, const char *fmt, ...) _printf_(3, 4);
/* Prefixes the message of *err with "context: " and returns -code; when *err is NULL returns -EINVAL. */
int ca_error_wrap(ca_error **err, const char *fmt, ...) _printf_(2, 3);
void ca_error_free(ca_error *e);
DEFINE_TRIVIAL_CLEANUP_FUNC(ca_error *, ca_error_free)
#define _cleanup_error_ _cleanup_(ca_error_freep)

/* ---- logging ----------------------------------------------------------------------------------------------- */

/* Only agent/ logs; library modules return errors instead. Lines go to stderr as "cleanup-agent: warning: ...". */
enum ca_log_level { CA_LOG_ERROR = 0, CA_LOG_WARNING, CA_LOG_NOTICE, CA_LOG_INFO, CA_LOG_DEBUG };

void ca_log_set_level(enum ca_log_level level);
enum ca_log_level ca_log_get_level(void);
/* Parses "error", "warning", "notice", "info" or "debug". */
int ca_log_parse_level(const char *s, enum ca_log_level *ret, ca_error **err);
/* Sends log lines to fd instead of stderr (tests). */
void ca_log_set_fd(int fd);
void ca_log(enum ca_log_level level, const char *fmt, ...) _printf_(2, 3);
#define ca_log_error(...) ca_log(CA_LOG_ERROR, __VA_ARGS__)
#define ca_log_warning(...) ca_log(CA_LOG_WARNING, __VA_ARGS__)
#define ca_log_notice(...) ca_log(CA_LOG_NOTICE, __VA_ARGS__)
#define ca_log_info(...) ca_log(CA_LOG_INFO, __VA_ARGS__)
#define ca_log_debug(...) ca_log(CA_LOG_DEBUG, __VA_ARGS__)

/* ---- bounded growable buffer ------------------------------------------------------------------------------- */

/* A byte buffer that grows up to a hard cap and is always NUL-terminated (data may hold NULs too). */
typedef struct ca_buf {
  char *data;
  size_t len;
  size_t cap;
  size_t max;
} ca_buf;

#define CA_BUF_INIT(max_bytes)                                                                                         \
  { .data = NULL, .len = 0, .cap = 0, .max = (max_bytes) }

void ca_buf_init(ca_buf *b, size_t max);
/* Appends len bytes; fails with EMSGSIZE (message names the cap) when the result would exceed max. */
int ca_buf_append(ca_buf *b, const void *data, size_t len, ca_error **err);
int ca_buf_appendf(ca_buf *b, ca_error **err, const char *fmt, ...) _printf_(3, 4);
/* The contents as a C string ("" when empty); valid until the next append or free. */
const char *ca_buf_str(const ca_buf *b);
void ca_buf_reset(ca_buf *b);
/* Hands the data out (NUL-terminated, caller frees) and leaves the buffer empty. */
char *ca_buf_steal(ca_buf *b, size_t *ret_len);
void ca_buf_free(ca_buf *b);

/* ---- parsing ----------------------------------------------------------------------------------------------- */

/* SIZE: plain bytes or a number (decimals allowed) with a binary unit B, K, M, G, T (optionally followed by "B" or
 * "iB", any case), as docker's --memory reads them: "512M", "1.5G", "64k". Rejects garbage, negative, empty, zero
 * and overflow, with a message that quotes the input. Fractions round down to whole bytes. */
int ca_parse_size(const char *s, uint64_t *ret_bytes, ca_error **err);
/* DUR: one or more <number><unit> with units us, ms, s, m, h, d ("250ms", "30s", "1h30m"); returns microseconds.
 * A bare number is rejected (seconds or milliseconds would be a guess). */
int ca_parse_duration(const char *s, uint64_t *ret_usec, ca_error **err);
/* Unsigned decimal integer in [min, max]; what names the value in the message ("--pids"). */
int ca_parse_uint(const char *s, const char *what, uint64_t min, uint64_t max, uint64_t *ret, ca_error **err);
/* Positive finite decimal number such as "1.5" in (0, max]. */
int ca_parse_positive_double(const char *s, const char *what, double max, double *ret, ca_error **err);
/* A boolean as users write it: 1, true, yes, on or 0, false, no, off (any case). Anything else is an error that
 * names what (a variable) and the accepted values; *ret is untouched then. */
int ca_parse_bool(const char *s, const char *what, bool *ret, ca_error **err);

/* True when s is a session id: exactly 32 lowercase hex characters. Ids read back from labels, file names and the
 * registry are untrusted and pass here before they reach a path or a filter. */
bool ca_session_id_valid(const char *s);

/* Length (1 to 4) of the UTF-8 sequence at s, which has len bytes left; 0 when it is not one: strict, so
 * overlongs, surrogates and values above U+10FFFF are refused. */
size_t ca_utf8_seq(const char *s, size_t len);
/* Appends s as XML character data or attribute text: markup characters become entities, control characters that
 * XML 1.0 cannot carry and invalid UTF-8 become visible escapes ("\x1b"). */
int ca_xml_escape(ca_buf *b, const char *s, size_t len, ca_error **err);

/* Human-readable forms for messages: "512M", "1.5G", "30s", "1h30m", "250ms". buf must hold 32 bytes. */
const char *ca_format_size(uint64_t bytes, char buf[static 32]);
const char *ca_format_duration(uint64_t usec, char buf[static 32]);

/* ---- files ------------------------------------------------------------------------------------------------- */

/* Writes data to path atomically: a temp file in the same directory (O_NOFOLLOW, O_CLOEXEC, the given mode),
 * write, fsync, rename over path, fsync of the directory. A failure leaves the old file intact and no temp file. */
int ca_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode, ca_error **err);
/* Flags of ca_write_file_atomic_flags. */
enum {
  /* Skip the fsync of the directory after the rename: readers see the new file at once either way; only a crash of
   * the machine may bring back the old one (or none). For files that mean nothing after a reboot. */
  CA_WRITE_NO_DIR_SYNC = 1 << 0,
};
int ca_write_file_atomic_flags(const char *path, const void *data, size_t len, mode_t mode, unsigned flags,
                               ca_error **err);
/* Reads a whole file (O_NOFOLLOW, O_CLOEXEC) of at most max bytes; the result is NUL-terminated, caller frees.
 * A file larger than max is an EFBIG error that names the cap. */
int ca_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len, ca_error **err);
/* As ca_read_file, for name relative to dirfd (AT_FDCWD: relative to the working directory). */
int ca_read_file_at(int dirfd, const char *name, size_t max, char **ret_data, size_t *ret_len, ca_error **err);
/* As ca_read_file_at, into the caller's buf of size bytes (NUL-terminated), for small files read often (cgroupfs,
 * procfs); returns the length. A file of size bytes or more is an EFBIG error. */
int ca_read_file_buf(int dirfd, const char *name, char *buf, size_t size, ca_error **err);

/* Writes all len bytes to fd, retrying short writes and EINTR; returns 0 or -errno. On a socket the write is a
 * send(MSG_NOSIGNAL): a peer that is gone gives -EPIPE, never SIGPIPE. */
int ca_write_all(int fd, const void *data, size_t len);

/* ---- JSON (cJSON) ------------------------------------------------------------------------------------------ */

DEFINE_TRIVIAL_CLEANUP_FUNC(cJSON *, cJSON_Delete)
#define _cleanup_json_ _cleanup_(cJSON_Deletep)

/* Parses len bytes of untrusted JSON; the value must fill the text (white space aside). EBADMSG errors name what. */
int ca_json_parse(const char *text, size_t len, const char *what, cJSON **ret, ca_error **err);
/* "a string", "a number", "an object", ... for messages. */
const char *ca_json_type_name(const cJSON *j);
/* The member key of obj; NULL when obj is not an object, or the member is absent or null. */
const cJSON *ca_json_field(const cJSON *obj, const char *key);
/* EBADMSG ("field owner_pid is missing") unless every key of the NULL-terminated list is present and not null. */
int ca_json_require(const cJSON *obj, const char *const *keys, ca_error **err);

/* Field readers. An absent or null field leaves *ret untouched and returns 0 (ca_json_require makes fields
 * mandatory); a field of another type, or a number out of [min, max], is an EBADMSG error that names the field. */
int ca_json_string(const cJSON *obj, const char *key, const char **ret, ca_error **err);
/* As ca_json_string, with a copy the caller frees. */
int ca_json_strdup(const cJSON *obj, const char *key, char **ret, ca_error **err);
/* An array of strings as a NULL-terminated list the caller frees (ca_strv_free); absent or null gives an empty
 * list, unlike the other readers. */
int ca_json_strv(const cJSON *obj, const char *key, char ***ret, ca_error **err);
/* A whole number: 1.5, 1e300 and values out of [min, max] are refused. */
int ca_json_int(const cJSON *obj, const char *key, int64_t min, int64_t max, int64_t *ret, ca_error **err);
int ca_json_double(const cJSON *obj, const char *key, double min, double max, double *ret, ca_error **err);
int ca_json_bool(const cJSON *obj, const char *key, bool *ret, ca_error **err);
int ca_json_object(const cJSON *obj, const char *key, const cJSON **ret, ca_error **err);
int ca_json_array(const cJSON *obj, const char *key, const cJSON **ret, ca_error **err);

/* Adds a whole number written digit for digit; false when out of memory. cJSON_AddNumberToObject prints 15
 * significant digits whenever they read back within its relative epsilon, which drops the last digit of integers
 * from about 2^52 (4.5e15) up: an expiry of 6433333333333331 came back as 6433333333333330 (found by fuzz_registry). */
bool ca_json_add_int(cJSON *obj, const char *key, int64_t v);

/* ---- time -------------------------------------------------------------------------------------------------- */

/* CLOCK_MONOTONIC and CLOCK_REALTIME in microseconds. */
uint64_t ca_now_monotonic_usec(void);
uint64_t ca_now_realtime_usec(void);
