/* The Tty=false log stream demultiplexer (dk_demux_*). The first byte sets the chunk size the stream is fed in
 * (as curl hands arbitrary pieces) and which streams are wanted; the callback checks every piece it gets lies inside
 * the input and sums the bytes, which must equal the payload of the stdout/stderr frames. */
#include "docker-internal.h"
#include "fuzz.h"

struct sink {
  const char *begin, *end;
  size_t bytes, calls, stop_after;
};

static int on_log(void *userdata, enum dk_stream stream, const char *data, size_t len) {
  struct sink *s = userdata;
  FUZZ_ASSERT(stream == DK_STDOUT || stream == DK_STDERR);
  FUZZ_ASSERT(len > 0 && data >= s->begin && data + len <= s->end);
  s->bytes += len;
  return ++s->calls == s->stop_after;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1)
    return 0;
  size_t chunk = (data[0] & 0x1f) + 1;
  char *buf = fuzz_bytes(data + 1, size - 1);
  size_t len = size - 1;
  struct sink s = {.begin = buf, .end = buf + len, .stop_after = data[0] & 0x80 ? 3 : 0};
  struct dk_demux d;
  dk_demux_init(&d, on_log, &s);
  d.want_stderr = !(data[0] & 0x40);
  ca_error *e = NULL;
  int r = 0;
  for (size_t pos = 0; pos < len && r == 0 && !d.stopped; pos += chunk)
    r = dk_demux_feed(&d, buf + pos, CA_MIN(chunk, len - pos), &e);
  fuzz_check_result(r, &e);
  if (r == 0) {
    r = dk_demux_finish(&d, &e);
    fuzz_check_result(r, &e);
  }
  dk_demux_done(&d);
  FUZZ_ASSERT(s.bytes <= len);
  free(buf);
  return 0;
}
