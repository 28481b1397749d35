/* Demultiplexer of the Tty=false log stream: [stream u8][0 0 0][length u32 big-endian][payload]. The stream arrives in
 * arbitrary chunks, so this is a state machine that keeps the partial header and forwards payload as it comes. */
#include <errno.h>
#include <string.h>

#include "docker-internal.h"

/* An in-band error message is short; anything longer is cut at this size in the error. */
#define SYSERR_MAX 4096

void dk_demux_init(struct dk_demux *d, dk_log_fn fn, void *userdata) {
  *d = (struct dk_demux){.fn = fn, .userdata = userdata, .want_stdout = true, .want_stderr = true};
  ca_buf_init(&d->syserr, SYSERR_MAX);
}

void dk_demux_done(struct dk_demux *d) {
  ca_buf_free(&d->syserr);
}

static int syserr_result(struct dk_demux *d, ca_error **err) {
  return ca_error_set(err, EIO, "engine reported an error in the log stream: %s", ca_buf_str(&d->syserr));
}

int dk_demux_feed(struct dk_demux *d, const char *data, size_t len, ca_error **err) {
  while (len > 0 && !d->stopped) {
    if (d->remaining == 0) {
      size_t take = CA_MIN(len, sizeof(d->hdr) - d->hdr_len);
      memcpy(d->hdr + d->hdr_len, data, take);
      d->hdr_len += take;
      data += take;
      len -= take;
      if (d->hdr_len < sizeof(d->hdr))
        return 0;
      d->hdr_len = 0;
      if (d->hdr[0] > 3 || d->hdr[1] || d->hdr[2] || d->hdr[3])
        return ca_error_set(err, EBADMSG,
                            "log stream: bad frame header %02x %02x %02x %02x (container created with a TTY?)",
                            d->hdr[0], d->hdr[1], d->hdr[2], d->hdr[3]);
      d->stream = d->hdr[0];
      d->remaining = (uint32_t)d->hdr[4] << 24 | (uint32_t)d->hdr[5] << 16 | (uint32_t)d->hdr[6] << 8 | d->hdr[7];
      if (d->stream == 3)
        ca_buf_reset(&d->syserr);
      if (d->remaining == 0 && d->stream == 3)
        return syserr_result(d, err);
      continue;
    }
    size_t take = CA_MIN(len, (size_t)d->remaining);
    if (d->stream == 3) {
      size_t room = d->syserr.max - d->syserr.len;
      if (room > 0)
        (void)ca_buf_append(&d->syserr, data, CA_MIN(take, room), NULL); /* fits: room was computed */
    } else if ((d->stream == DK_STDOUT && d->want_stdout) || (d->stream != DK_STDOUT && d->want_stderr)) {
      /* stream 0 (stdin echo) never occurs with logs; treat it as stderr rather than dropping it */
      if (d->fn && d->fn(d->userdata, d->stream == DK_STDOUT ? DK_STDOUT : DK_STDERR, data, take) != 0)
        d->stopped = true;
    }
    data += take;
    len -= take;
    d->remaining -= (uint32_t)take;
    if (d->remaining == 0 && d->stream == 3)
      return syserr_result(d, err);
  }
  return 0;
}

int dk_demux_finish(struct dk_demux *d, ca_error **err) {
  if (d->stopped)
    return 0;
  if (d->hdr_len > 0 || d->remaining > 0)
    return ca_error_set(err, EBADMSG, "log stream ended inside a frame (%u bytes missing)",
                        d->remaining ? d->remaining : (unsigned)(sizeof(d->hdr) - d->hdr_len));
  return 0;
}
