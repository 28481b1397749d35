/* Session ids from labels, registry file names and the command line (ca_session_id_valid), and the strict UTF-8
 * decoder label values go through (ca_utf8_seq). */
#include <ctype.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_cstr(data, size);
  if (ca_session_id_valid(s)) {
    FUZZ_ASSERT(strlen(s) == 32);
    for (size_t i = 0; i < 32; i++)
      FUZZ_ASSERT(isdigit((unsigned char)s[i]) || (s[i] >= 'a' && s[i] <= 'f'));
  }
  char *b = fuzz_bytes(data, size);
  for (size_t i = 0; i < size;) {
    size_t n = ca_utf8_seq(b + i, size - i);
    FUZZ_ASSERT(n <= 4 && n <= size - i);
    i += n ? n : 1;
  }
  free(b);
  free(s);
  return 0;
}
