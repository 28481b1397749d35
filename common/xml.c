/* XML text for the JUnit reports of container-seq and run: character data and attribute values. */
#include <stdio.h>
#include <string.h>

#include "common.h"

/* Length of a UTF-8 sequence XML can carry at s: a strict one (ca_utf8_seq), less U+FFFE and U+FFFF, which XML does
 * not allow either; 0 when it is not one. */
static size_t xml_utf8_len(const unsigned char *s, size_t len) {
  size_t n = ca_utf8_seq((const char *)s, len);
  if (n == 3 && s[0] == 0xef && s[1] == 0xbf && (s[2] == 0xbe || s[2] == 0xbf))
    return 0;
  return n;
}

int ca_xml_escape(ca_buf *b, const char *s, size_t len, ca_error **err) {
  const unsigned char *p = (const unsigned char *)s;
  size_t i = 0;
  while (i < len) {
    unsigned char c = p[i];
    const char *ent = NULL;
    char hex[8];
    switch (c) {
      case '&':
        ent = "&amp;";
        break;
      case '<':
        ent = "&lt;";
        break;
      case '>':
        ent = "&gt;";
        break;
      case '"':
        ent = "&quot;";
        break;
      case '\'':
        ent = "&apos;";
        break;
      default:
        break;
    }
    int r;
    if (ent) {
      r = ca_buf_append(b, ent, strlen(ent), err);
      i++;
    } else if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f) {
      /* XML 1.0 cannot carry these even as character references: show them as the escapes a reader expects. */
      snprintf(hex, sizeof(hex), "\\x%02x", c);
      r = ca_buf_append(b, hex, strlen(hex), err);
      i++;
    } else {
      size_t n = xml_utf8_len(p + i, len - i);
      if (n == 0) {
        snprintf(hex, sizeof(hex), "\\x%02x", c);
        r = ca_buf_append(b, hex, strlen(hex), err);
        i++;
      } else {
        r = ca_buf_append(b, p + i, n, err);
        i += n;
      }
    }
    if (r < 0)
      return r;
  }
  return 0;
}
