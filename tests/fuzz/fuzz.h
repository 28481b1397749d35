/* Shared by the fuzz targets (README.md): the libFuzzer entry point and helpers to turn its bytes into the shapes the
 * parsers take. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A malloc'ed NUL-terminated copy of the input (an embedded NUL ends the string early, as it would for a file read
 * with ca_read_file); aborts on out of memory, which libFuzzer reports. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (!s)
    abort();
  if (size)
    memcpy(s, data, size);
  s[size] = '\0';
  return s;
}

/* A malloc'ed copy of exactly size bytes, without a terminator, so ASan sees any read past the end of a
 * length-delimited buffer. malloc(0) is avoided. */
static inline char *fuzz_bytes(const uint8_t *data, size_t size) {
  char *s = malloc(size ? size : 1);
  if (!s)
    abort();
  if (size)
    memcpy(s, data, size);
  return s;
}

/* Checks an invariant the parser promises; a violation aborts, which both libFuzzer and the replay test report. */
#define FUZZ_ASSERT(cond)                                                                                              \
  do {                                                                                                                 \
    if (!(cond))                                                                                                       \
      fuzz_fail(__FILE__, __LINE__, #cond);                                                                            \
  } while (0)

_Noreturn void fuzz_fail(const char *file, int line, const char *cond);

/* The result of a parser: 0 with no error, or -code with an error whose code matches and whose message is a
 * non-empty line (what a user would read). Frees the error. */
void fuzz_check_result(int r, ca_error **e);
