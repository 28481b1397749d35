/* Strict parsers for the values users type: sizes, durations, counts. Garbage is an error that quotes the input. */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common.h"

/* Reads "<digits>[.<digits>]" at *p. The integer part goes to *ret_int (overflow is an error), the fraction to
 * *ret_frac as a numerator over 10^*ret_frac_digits (at most 18 digits kept: below a byte or a microsecond). */
static int parse_decimal(const char **p, uint64_t *ret_int, uint64_t *ret_frac, unsigned *ret_frac_digits) {
  const char *s = *p;
  uint64_t v = 0, frac = 0;
  unsigned digits = 0;
  if (!isdigit((unsigned char)*s))
    return -EINVAL;
  for (; isdigit((unsigned char)*s); s++) {
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -ERANGE;
    v = v * 10 + d;
  }
  if (*s == '.') {
    s++;
    if (!isdigit((unsigned char)*s))
      return -EINVAL;
    for (; isdigit((unsigned char)*s); s++)
      if (digits < 18) {
        frac = frac * 10 + (uint64_t)(*s - '0');
        digits++;
      }
  }
  *p = s;
  *ret_int = v;
  *ret_frac = frac;
  *ret_frac_digits = digits;
  return 0;
}

/* value * mult + frac / 10^digits * mult, rounded down; -ERANGE past UINT64_MAX. */
static int scale(uint64_t value, uint64_t frac, unsigned digits, uint64_t mult, uint64_t *ret) {
  unsigned __int128 total = (unsigned __int128)value * mult;
  unsigned __int128 div = 1;
  for (unsigned i = 0; i < digits; i++)
    div *= 10;
  total += (unsigned __int128)frac * mult / div;
  if (total > UINT64_MAX)
    return -ERANGE;
  *ret = (uint64_t)total;
  return 0;
}

int ca_parse_size(const char *s, uint64_t *ret_bytes, ca_error **err) {
  static const char hint[] = "use bytes or a number with K, M, G or T, such as 512M or 1.5G";
  if (!s || !*s)
    return ca_error_set(err, EINVAL, "empty size: %s", hint);
  if (*s == '-')
    return ca_error_set(err, EINVAL, "invalid size '%s': must not be negative", s);
  const char *p = s;
  uint64_t v, frac, bytes;
  unsigned digits;
  int r = parse_decimal(&p, &v, &frac, &digits);
  if (r == -ERANGE)
    return ca_error_set(err, ERANGE, "invalid size '%s': too large", s);
  if (r < 0)
    return ca_error_set(err, EINVAL, "invalid size '%s': %s", s, hint);

  uint64_t mult = 1;
  switch (tolower((unsigned char)*p)) {
    case 'k':
      mult = UINT64_C(1) << 10;
      p++;
      break;
    case 'm':
      mult = UINT64_C(1) << 20;
      p++;
      break;
    case 'g':
      mult = UINT64_C(1) << 30;
      p++;
      break;
    case 't':
      mult = UINT64_C(1) << 40;
      p++;
      break;
    default:
      break;
  }
  /* Docker also accepts the spelled-out forms "512MiB", "512MB", "512mb": the same binary units. */
  if (mult > 1 && (*p == 'i' || *p == 'I'))
    p++;
  if (*p == 'b' || *p == 'B')
    p++;
  if (*p)
    return ca_error_set(err, EINVAL, "invalid size '%s': %s", s, hint);
  if (mult == 1 && frac)
    return ca_error_set(err, EINVAL, "invalid size '%s': a byte count must be a whole number", s);
  if (scale(v, frac, digits, mult, &bytes) < 0)
    return ca_error_set(err, ERANGE, "invalid size '%s': too large", s);
  if (bytes == 0)
    return ca_error_set(err, EINVAL, "invalid size '%s': must be greater than zero", s);
  *ret_bytes = bytes;
  return 0;
}

int ca_parse_duration(const char *s, uint64_t *ret_usec, ca_error **err) {
  static const char hint[] = "use a number with a unit: ms, s, m, h or d, such as 250ms, 30s or 1h30m";
  static const struct {
    const char *name;
    uint64_t usec;
  } units[] = {
      /* "ms" before "m" so that the longer unit wins. */
      {"ms", 1000},
      {"us", 1},
      {"s", 1000000},
      {"m", 60000000},
      {"h", UINT64_C(3600000000)},
      {"d", UINT64_C(86400000000)},
  };
  if (!s || !*s)
    return ca_error_set(err, EINVAL, "empty duration: %s", hint);
  if (*s == '-')
    return ca_error_set(err, EINVAL, "invalid duration '%s': must not be negative", s);

  uint64_t total = 0;
  const char *p = s;
  while (*p) {
    uint64_t v, frac, part;
    unsigned digits;
    int r = parse_decimal(&p, &v, &frac, &digits);
    if (r == -ERANGE)
      return ca_error_set(err, ERANGE, "invalid duration '%s': too large", s);
    if (r < 0)
      return ca_error_set(err, EINVAL, "invalid duration '%s': %s", s, hint);
    size_t u;
    for (u = 0; u < ELEMENTSOF(units); u++)
      if (strncmp(p, units[u].name, strlen(units[u].name)) == 0)
        break;
    if (u == ELEMENTSOF(units))
      return ca_error_set(err, EINVAL, "invalid duration '%s': %s", s, hint);
    p += strlen(units[u].name);
    if (scale(v, frac, digits, units[u].usec, &part) < 0 || total > UINT64_MAX - part)
      return ca_error_set(err, ERANGE, "invalid duration '%s': too large", s);
    total += part;
  }
  *ret_usec = total;
  return 0;
}

int ca_parse_uint(const char *s, const char *what, uint64_t min, uint64_t max, uint64_t *ret, ca_error **err) {
  if (!s || !*s)
    return ca_error_set(err, EINVAL, "%s: empty value: expected a whole number", what);
  uint64_t v = 0;
  for (const char *p = s; *p; p++) {
    if (!isdigit((unsigned char)*p))
      return ca_error_set(err, EINVAL, "%s: invalid number '%s': expected a whole number", what, s);
    unsigned d = (unsigned)(*p - '0');
    if (v > (UINT64_MAX - d) / 10)
      return ca_error_set(err, ERANGE, "%s: '%s' is too large (at most %" PRIu64 ")", what, s, max);
    v = v * 10 + d;
  }
  if (v < min || v > max)
    return ca_error_set(err, ERANGE, "%s: %s is out of range (%" PRIu64 " to %" PRIu64 ")", what, s, min, max);
  *ret = v;
  return 0;
}

int ca_parse_positive_double(const char *s, const char *what, double max, double *ret, ca_error **err) {
  if (!s || !*s)
    return ca_error_set(err, EINVAL, "%s: empty value: expected a number such as 1.5", what);
  /* Only plain decimals: strtod would also take "inf", "nan", hex floats and leading blanks. */
  size_t dots = 0;
  for (const char *p = s; *p; p++) {
    if (*p == '.')
      dots++;
    else if (!isdigit((unsigned char)*p))
      return ca_error_set(err, EINVAL, "%s: invalid number '%s': expected a number such as 1.5", what, s);
  }
  if (dots > 1 || s[0] == '.' || s[strlen(s) - 1] == '.')
    return ca_error_set(err, EINVAL, "%s: invalid number '%s': expected a number such as 1.5", what, s);
  double v = strtod(s, NULL);
  if (!isfinite(v) || v <= 0)
    return ca_error_set(err, EINVAL, "%s: %s must be greater than zero", what, s);
  if (v > max)
    return ca_error_set(err, ERANGE, "%s: %s is too large (at most %g)", what, s, max);
  *ret = v;
  return 0;
}

bool ca_session_id_valid(const char *s) {
  if (!s)
    return false;
  size_t i = 0;
  for (; s[i]; i++)
    if (i >= 32 || !(isdigit((unsigned char)s[i]) || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return i == 32;
}

int ca_parse_bool(const char *s, const char *what, bool *ret, ca_error **err) {
  static const char *const words[] = {"1", "true", "yes", "on", "0", "false", "no", "off"};
  for (size_t i = 0; s && i < ELEMENTSOF(words); i++)
    if (strcasecmp(s, words[i]) == 0) {
      *ret = i < 4;
      return 0;
    }
  return ca_error_set(err, EINVAL, "%s='%s': use 1, true, yes, on or 0, false, no, off", what, s ? s : "");
}

size_t ca_utf8_seq(const char *s, size_t left) {
  const unsigned char *p = (const unsigned char *)s;
  if (left == 0)
    return 0;
  unsigned char c = p[0];
  if (c < 0x80)
    return 1;
  size_t n;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (left < n)
    return 0;
  for (size_t i = 1; i < n; i++) {
    if ((p[i] & 0xc0) != 0x80)
      return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

const char *ca_format_size(uint64_t bytes, char buf[static 32]) {
  static const char units[] = "KMGT";
  int u = -1;
  uint64_t div = 1;
  /* Up a unit while the value would print as 1024.0 or more at one decimal: 1048575 is "1.0M", not "1024.0K". */
  while (u < 3 && (double)bytes >= (double)div * 1023.95) {
    div *= 1024;
    u++;
  }
  if (u < 0)
    snprintf(buf, 32, "%" PRIu64 "B", bytes);
  else if (bytes % div == 0)
    snprintf(buf, 32, "%" PRIu64 "%c", bytes / div, units[u]);
  else
    snprintf(buf, 32, "%.1f%c", (double)bytes / (double)div, units[u]);
  return buf;
}

const char *ca_format_duration(uint64_t usec, char buf[static 32]) {
  if (usec == 0) {
    snprintf(buf, 32, "0s");
    return buf;
  }
  if (usec < 1000000) {
    if (usec % 1000 == 0)
      snprintf(buf, 32, "%" PRIu64 "ms", usec / 1000);
    else
      snprintf(buf, 32, "%" PRIu64 "us", usec);
    return buf;
  }
  uint64_t sec = usec / 1000000, h = sec / 3600, m = sec % 3600 / 60, s = sec % 60;
  uint64_t tenths = usec % 1000000 / 100000;
  int n = 0;
  if (h)
    n += snprintf(buf + n, 32 - (size_t)n, "%" PRIu64 "h", h);
  if (m)
    n += snprintf(buf + n, 32 - (size_t)n, "%" PRIu64 "m", m);
  if (s || tenths) {
    if (tenths && !h)
      n += snprintf(buf + n, 32 - (size_t)n, "%" PRIu64 ".%" PRIu64 "s", s, tenths);
    else
      n += snprintf(buf + n, 32 - (size_t)n, "%" PRIu64 "s", s);
  }
  return buf;
}
