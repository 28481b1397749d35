/* Query encoding and label checks: what we send is built from user input (labels, names), so it is validated here
 * and escaped, never pasted into a URL. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "docker-internal.h"

#define LABEL_KEY_MAX 255
#define LABEL_VALUE_MAX 4096

char *dk_escape(const char *s) {
  static const char hex[] = "0123456789ABCDEF";
  size_t n = strlen(s);
  char *out = malloc(n * 3 + 1);
  if (!out)
    return NULL;
  char *o = out;
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    unsigned char ch = *p;
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
        ch == '_' || ch == '~') {
      *o++ = (char)ch;
    } else {
      *o++ = '%';
      *o++ = hex[ch >> 4];
      *o++ = hex[ch & 15];
    }
  }
  *o = '\0';
  return out;
}

int dk_filters_encode(const struct dk_filter *f, char **ret, ca_error **err) {
  if (!f || !f->key) {
    *ret = strdup("");
    return *ret ? 0 : ca_error_set(err, ENOMEM, "out of memory");
  }
  _cleanup_json_ cJSON *j = cJSON_CreateObject();
  if (!j)
    return ca_error_set(err, ENOMEM, "out of memory");
  for (; f->key; f++) {
    if (!f->key[0] || !f->value)
      return ca_error_set(err, EINVAL, "filter with an empty key or no value");
    cJSON *arr = cJSON_GetObjectItemCaseSensitive(j, f->key);
    if (!arr) {
      arr = cJSON_AddArrayToObject(j, f->key);
      if (!arr)
        return ca_error_set(err, ENOMEM, "out of memory");
    }
    cJSON *s = cJSON_CreateString(f->value);
    if (!s || !cJSON_AddItemToArray(arr, s)) {
      cJSON_Delete(s);
      return ca_error_set(err, ENOMEM, "out of memory");
    }
  }
  _cleanup_free_ char *text = cJSON_PrintUnformatted(j);
  if (!text)
    return ca_error_set(err, ENOMEM, "out of memory");
  char *esc = dk_escape(text);
  if (!esc)
    return ca_error_set(err, ENOMEM, "out of memory");
  *ret = esc;
  return 0;
}

int dk_label_validate(const char *kv, ca_error **err) {
  if (!kv)
    return ca_error_set(err, EINVAL, "label: missing");
  const char *eq = strchr(kv, '=');
  if (!eq)
    return ca_error_set(err, EINVAL, "label \"%.80s\": expected key=value", kv);
  size_t klen = (size_t)(eq - kv);
  if (klen == 0)
    return ca_error_set(err, EINVAL, "label \"%.80s\": empty key", kv);
  if (klen > LABEL_KEY_MAX)
    return ca_error_set(err, EINVAL, "label \"%.40s...\": key longer than %d bytes", kv, LABEL_KEY_MAX);
  for (size_t i = 0; i < klen; i++) {
    unsigned char ch = (unsigned char)kv[i];
    if (ch <= 0x20 || ch >= 0x7f)
      return ca_error_set(err, EINVAL, "label \"%.*s\": key may hold only printable ASCII without spaces", (int)klen,
                          kv);
  }
  const unsigned char *v = (const unsigned char *)eq + 1;
  size_t vlen = strlen((const char *)v);
  if (vlen > LABEL_VALUE_MAX)
    return ca_error_set(err, EINVAL, "label %.*s: value longer than %d bytes", (int)klen, kv, LABEL_VALUE_MAX);
  for (size_t i = 0; i < vlen;) {
    if (v[i] < 0x20 || v[i] == 0x7f)
      return ca_error_set(err, EINVAL, "label %.*s: value holds a control character", (int)klen, kv);
    size_t n = ca_utf8_seq((const char *)v + i, vlen - i);
    if (n == 0)
      return ca_error_set(err, EINVAL, "label %.*s: value is not valid UTF-8", (int)klen, kv);
    i += n;
  }
  return 0;
}
