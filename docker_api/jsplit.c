/* Splits an engine's list answer into its elements as the bytes arrive, so that a list of any length is parsed one
 * element at a time: the whole answer is never held, nor its cJSON tree. The splitter only finds where each value
 * ends (strings and their escapes, nesting depth); cJSON then parses each element, and every byte outside the
 * elements is checked here: the answer as a whole is valid JSON or an error. */
#include <errno.h>
#include <string.h>

#include "docker-internal.h"

enum split_state {
  SP_START,     /* before the top-level value */
  SP_ARR_FIRST, /* after '[': an element or ']' */
  SP_ARR_NEXT,  /* after ',': an element */
  SP_ARR_AFTER, /* after an element: ',' or ']' */
  SP_OBJ_FIRST, /* volumes: after '{', a key or '}' */
  SP_OBJ_KEY,   /* volumes: after ',', a key */
  SP_OBJ_COLON, /* volumes: after a key */
  SP_OBJ_VALUE, /* volumes: after ':' */
  SP_OBJ_AFTER, /* volumes: after a member: ',' or '}' */
  SP_END,       /* after the top-level value: only white space */
};

enum split_capture { CAP_ELEMENT, CAP_KEY, CAP_MEMBER };

void dk_split_init(struct dk_split *s, enum dk_split_mode mode, size_t max_value, dk_split_fn fn, void *userdata) {
  memset(s, 0, sizeof(*s));
  s->mode = mode;
  s->fn = fn;
  s->userdata = userdata;
  ca_buf_init(&s->value, max_value ? max_value : DK_SPLIT_MAX_VALUE);
}

void dk_split_done(struct dk_split *s) {
  ca_buf_free(&s->value);
}

static bool is_ws(char ch) {
  return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r';
}

static int split_error(struct dk_split *s, ca_error **err, const char *what) {
  s->failed = true;
  return ca_error_set(err, EBADMSG, "list answer: %s at byte %zu", what, s->offset);
}

static void capture_start(struct dk_split *s, enum split_capture what) {
  ca_buf_reset(&s->value);
  s->capturing = true;
  s->capture = what;
  s->depth = 0;
  s->in_string = false;
  s->escape = false;
}

/* The captured value as JSON, all of it (cJSON alone would stop early and ignore the rest of "nullx"). */
static cJSON *parse_whole(const ca_buf *b) {
  const char *end = NULL;
  cJSON *j = cJSON_ParseWithLengthOpts(b->data, b->len, &end, false);
  if (j && end != b->data + b->len) {
    cJSON_Delete(j);
    return NULL;
  }
  return j;
}

/* A member of the volumes object other than "Volumes" (Warnings): small; checked, then dropped. A "Volumes" that is
 * not an array must be null. Warnings other than null or [] name a driver the engine could not ask (a volume plugin
 * that is down): the volumes it holds are missing, and the answer proves nothing gone. */
static int member_done(struct dk_split *s, ca_error **err) {
  _cleanup_json_ cJSON *j = parse_whole(&s->value);
  if (!j)
    return split_error(s, err, "a member that is not JSON");
  if (s->key_is_volumes && !cJSON_IsNull(j))
    return split_error(s, err, "Volumes is not an array");
  if (s->key_is_warnings && !cJSON_IsNull(j) && !(cJSON_IsArray(j) && !j->child)) {
    const cJSON *w = cJSON_IsArray(j) ? j->child : j;
    char warning[300] = "(a warning that is not a string)";
    if (cJSON_IsString(w))
      dk_excerpt(w->valuestring, strlen(w->valuestring), warning, sizeof(warning));
    s->failed = true;
    return ca_error_set(err, EIO, "the engine's list of volumes is incomplete, it warned: %s%s", warning,
                        cJSON_IsArray(j) && j->child->next ? " (and more)" : "");
  }
  return 0;
}

static int key_done(struct dk_split *s, ca_error **err) {
  _cleanup_json_ cJSON *j = parse_whole(&s->value);
  if (!j || !cJSON_IsString(j))
    return split_error(s, err, "a key that is not a string");
  s->key_is_volumes = streq(j->valuestring, "Volumes");
  s->key_is_warnings = streq(j->valuestring, "Warnings");
  return 0;
}

/* The value being captured ended; hands it on and moves to the state after it. */
static int capture_end(struct dk_split *s, ca_error **err) {
  s->capturing = false;
  int k = 0;
  switch ((enum split_capture)s->capture) {
    case CAP_ELEMENT:
      s->state = SP_ARR_AFTER;
      k = s->fn(s->userdata, s->value.data, s->value.len, err);
      s->elements++;
      if (k < 0)
        s->failed = true;
      break;
    case CAP_KEY:
      s->state = SP_OBJ_COLON;
      k = key_done(s, err);
      break;
    case CAP_MEMBER:
      s->state = SP_OBJ_AFTER;
      k = member_done(s, err);
      break;
  }
  ca_buf_reset(&s->value);
  return k;
}

/* One byte of a captured value. *ret_again is set when the byte ended a bare scalar and belongs to what follows. */
static int capture_byte(struct dk_split *s, char ch, bool *ret_again, ca_error **err) {
  *ret_again = false;
  if (s->value.len > 0 && s->depth == 0 && !s->in_string && (is_ws(ch) || ch == ',' || ch == ']' || ch == '}')) {
    *ret_again = true; /* only a bare scalar (null, true, a number) is still open at depth 0 outside a string */
    return capture_end(s, err);
  }
  if (s->value.max && s->value.len + 1 >= s->value.max) {
    s->failed = true;
    return ca_error_set(err, EMSGSIZE, "list answer: a value over %zu bytes at byte %zu", s->value.max, s->offset);
  }
  if (ca_buf_append(&s->value, &ch, 1, NULL) < 0)
    return split_error(s, err, "out of memory");
  if (s->in_string) {
    if (s->escape)
      s->escape = false;
    else if (ch == '\\')
      s->escape = true;
    else if (ch == '"' && (s->in_string = false, s->depth == 0))
      return capture_end(s, err);
    return 0;
  }
  if (ch == '"') {
    s->in_string = true;
  } else if (ch == '{' || ch == '[') {
    if (++s->depth > DK_SPLIT_MAX_DEPTH)
      return split_error(s, err, "nesting too deep");
  } else if (ch == '}' || ch == ']') {
    if (s->depth == 0)
      return split_error(s, err, "an unexpected bracket");
    if (--s->depth == 0)
      return capture_end(s, err);
  }
  return 0;
}

/* One byte between the values: the array's and the volumes object's punctuation. */
static int structure_byte(struct dk_split *s, char ch, ca_error **err) {
  bool again; /* never set by a value's first byte */
  if (is_ws(ch))
    return 0;
  switch ((enum split_state)s->state) {
    case SP_START:
      if (s->mode == DK_SPLIT_ARRAY && ch == '[')
        s->state = SP_ARR_FIRST;
      else if (s->mode == DK_SPLIT_VOLUMES && ch == '{')
        s->state = SP_OBJ_FIRST;
      else
        return split_error(s, err, s->mode == DK_SPLIT_ARRAY ? "expected an array" : "expected an object");
      return 0;
    case SP_ARR_FIRST:
    case SP_ARR_NEXT:
      if (ch == ']' && s->state == SP_ARR_FIRST)
        return s->state = s->in_volumes ? SP_OBJ_AFTER : SP_END, 0;
      if (ch != '{')
        return split_error(s, err, "an element that is not an object");
      capture_start(s, CAP_ELEMENT);
      return capture_byte(s, ch, &again, err);
    case SP_ARR_AFTER:
      if (ch == ',')
        return s->state = SP_ARR_NEXT, 0;
      if (ch == ']')
        return s->state = s->in_volumes ? SP_OBJ_AFTER : SP_END, 0;
      return split_error(s, err, "expected ',' or ']'");
    case SP_OBJ_FIRST:
    case SP_OBJ_KEY:
      if (ch == '}' && s->state == SP_OBJ_FIRST)
        return s->state = SP_END, 0;
      if (ch != '"')
        return split_error(s, err, "expected a key");
      capture_start(s, CAP_KEY);
      s->in_string = true;
      return ca_buf_append(&s->value, &ch, 1, NULL) < 0 ? split_error(s, err, "out of memory") : 0;
    case SP_OBJ_COLON:
      return ch == ':' ? (s->state = SP_OBJ_VALUE, 0) : split_error(s, err, "expected ':'");
    case SP_OBJ_VALUE:
      if (s->key_is_volumes && ch == '[') {
        if (s->seen_volumes)
          return split_error(s, err, "Volumes twice");
        s->seen_volumes = s->in_volumes = true;
        return s->state = SP_ARR_FIRST, 0;
      }
      s->in_volumes = false;
      capture_start(s, CAP_MEMBER);
      return capture_byte(s, ch, &again, err);
    case SP_OBJ_AFTER:
      s->in_volumes = false;
      if (ch == ',')
        return s->state = SP_OBJ_KEY, 0;
      if (ch == '}')
        return s->state = SP_END, 0;
      return split_error(s, err, "expected ',' or '}'");
    case SP_END:
      return split_error(s, err, "bytes after the answer");
  }
  return split_error(s, err, "a bad state");
}

int dk_split_feed(struct dk_split *s, const char *data, size_t len, ca_error **err) {
  if (s->failed)
    return ca_error_set(err, EBADMSG, "list answer: fed after an error");
  for (size_t i = 0; i < len; i++, s->offset++) {
    int k;
    bool again = false;
    if (s->capturing) {
      if ((k = capture_byte(s, data[i], &again, err)) < 0)
        return k;
      if (!again)
        continue;
    }
    /* a byte outside any value, or the one that ended a bare scalar */
    if ((k = structure_byte(s, data[i], err)) < 0)
      return k;
  }
  return 0;
}

int dk_split_finish(struct dk_split *s, ca_error **err) {
  if (s->failed)
    return ca_error_set(err, EBADMSG, "list answer: fed after an error");
  if (s->capturing || s->state != SP_END)
    return split_error(s, err, s->offset == 0 ? "empty" : "truncated");
  return 0;
}
