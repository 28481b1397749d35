/* The create body rewrite of the Docker proxy: the session's labels spliced into the bytes the client sent.
 *
 * Only the top-level Labels members are replaced, by one merged Labels object at the end of the body; every other byte
 * goes to the engine as the client wrote it, so numbers cJSON cannot hold (2^53 + 1, int64 max, 1e400) and escapes
 * keep their exact text. The engine (Go's encoding/json) matches field names case-insensitively with Unicode folding,
 * lets a later repeated key override an earlier one and resets a map on null: the merge follows the same rules, and the
 * session's labels come last in the object, so nothing the client wrote can override them. */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy.h"
#include "nesting.h" /* label names only: this file links without the session code (the fuzz target) */
#include "session.h"

static size_t skip_ws(const char *s, size_t i, size_t n) {
  while (i < n && (unsigned char)s[i] <= ' ') /* what cJSON skips; what it accepts, the scan accepts */
    i++;
  return i;
}

/* The end (one past the closing quote) of the string token at s[i] == '"', or 0 when it does not end. */
static size_t string_end(const char *s, size_t i, size_t n) {
  for (i++; i < n; i++) {
    if (s[i] == '\\')
      i++;
    else if (s[i] == '"')
      return i + 1;
  }
  return 0;
}

/* The end of the value token at s[i], or 0. The body parsed as JSON already, so brackets balance; the scan stays
 * within n whatever the bytes. */
static size_t value_end(const char *s, size_t i, size_t n) {
  if (i >= n)
    return 0;
  if (s[i] == '"')
    return string_end(s, i, n);
  if (s[i] != '{' && s[i] != '[') {
    size_t j = i;
    while (j < n && (unsigned char)s[j] > ' ' && s[j] != ',' && s[j] != '}' && s[j] != ']')
      j++;
    return j > i ? j : 0;
  }
  size_t depth = 0;
  while (i < n) {
    if (s[i] == '"') {
      i = string_end(s, i, n);
      if (!i)
        return 0;
      continue;
    }
    if (s[i] == '{' || s[i] == '[')
      depth++;
    else if ((s[i] == '}' || s[i] == ']') && --depth == 0)
      return i + 1;
    i++;
  }
  return 0;
}

/* One member of an object: the text from after the separator before it (seg) to the end of its value. */
struct member {
  size_t seg, key, key_end, val, val_end;
};

struct object_scan {
  const char *s;
  size_t n, i;  /* i: just after '{' or after the last member's value */
  size_t close; /* the closing brace, once found */
  bool first;
};

/* Opens the object at s[i]; false when it is not one. */
static bool scan_open(struct object_scan *o, const char *s, size_t i, size_t n) {
  *o = (struct object_scan){.s = s, .n = n, .i = i + 1, .first = true};
  return i < n && s[i] == '{';
}

/* 1 with the next member in m, 0 at the closing brace (o->close), -1 when the text is not an object. */
static int scan_next(struct object_scan *o, struct member *m) {
  const char *s = o->s;
  size_t n = o->n, i = skip_ws(s, o->i, n);
  if (i < n && s[i] == '}') {
    o->close = i;
    return 0;
  }
  m->seg = o->i; /* the first member's text starts with the whitespace after the brace */
  if (!o->first) {
    if (i >= n || s[i] != ',')
      return -1;
    m->seg = ++i;
  }
  m->key = skip_ws(s, i, n);
  if (m->key >= n || s[m->key] != '"' || !(m->key_end = string_end(s, m->key, n)))
    return -1;
  i = skip_ws(s, m->key_end, n);
  if (i >= n || s[i] != ':')
    return -1;
  m->val = skip_ws(s, i + 1, n);
  if (!(m->val_end = value_end(s, m->val, n)))
    return -1;
  o->i = m->val_end;
  o->first = false;
  return 1;
}

/* The text of a string token, unescaped (caller frees), or NULL when it is not a string cJSON reads. */
static char *token_string(const char *s, size_t start, size_t end) {
  _cleanup_json_ cJSON *j = cJSON_ParseWithLength(s + start, end - start);
  return cJSON_IsString(j) ? strdup(j->valuestring) : NULL;
}

/* The engine's match of a field name against want (lowercase ASCII letters): case-insensitive, with Unicode simple
 * folding, under which U+017F (LATIN SMALL LETTER LONG S) is an s and U+212A (KELVIN SIGN) a k. */
static bool engine_name_is(const char *key, const char *want) {
  for (; *want; want++) {
    const unsigned char *k = (const unsigned char *)key;
    if ((*key | 0x20) == *want && *key)
      key++;
    else if (*want == 's' && k[0] == 0xc5 && k[1] == 0xbf)
      key += 2;
    else if (*want == 'k' && k[0] == 0xe2 && k[1] == 0x84 && k[2] == 0xaa)
      key += 3;
    else
      return false;
  }
  return *key == '\0';
}

static bool is_labels_name(const char *key) {
  return engine_name_is(key, "labels");
}

struct labeling {
  const char *session_id;
  const char *const *labels; /* the agent's labels of what this makes: the session's, or a build's (build_labels) */
  const char *cgroup_parent; /* --contain-containers: every container's HostConfig.CgroupParent; NULL: as sent */
  bool nested;               /* a nested session's create: its labels stay as they are */
  bool build;                /* a build's labels: the session is named by built-by, not by the session label */
};

/* The outer label among ours ("io.cleanup-agent.outer=<id>": a nested session's proxy), or NULL. */
static const char *outer_label_of(const char *const *labels) {
  for (const char *const *l = labels; *l; l++)
    if (strncmp(*l, AG_LABEL_OUTER "=", sizeof(AG_LABEL_OUTER)) == 0)
      return *l;
  return NULL;
}

/* The outermost session of this proxy's: the outer label's (a nested session's proxy), else our own id. */
static const char *root_of(const char *session_id, const char *const *labels) {
  const char *outer = outer_label_of(labels);
  return outer ? outer + sizeof(AG_LABEL_OUTER) : session_id;
}

/* Whether a session nested in ours made the create (nesting.h): its labels as the engine reads them (every Labels
 * object merged in order, the last of a key winning, a null one resetting them) name our outermost session as the
 * outer one and another valid session (a build's: built-by) as its own. Its labels are that session's: they stay as
 * they are, and anything accepted so still carries our outermost session's id, whose end removes it (but an image,
 * whose outer label the outermost proxy drops: outer_of_build). */
static bool nested_create(const cJSON *root, const struct labeling *l) {
  const char *session_id = l->session_id, *want = root_of(session_id, l->labels);
  const char *own = l->build ? AG_LABEL_BUILT_BY : AG_LABEL_SESSION;
  const cJSON *outer = NULL, *sess = NULL;
  for (const cJSON *it = root->child; it; it = it->next) {
    if (!it->string || !is_labels_name(it->string))
      continue;
    if (!cJSON_IsObject(it))
      outer = sess = NULL; /* null resets them; anything else is refused when the labels are merged */
    for (const cJSON *lb = cJSON_IsObject(it) ? it->child : NULL; lb; lb = lb->next) {
      if (streq(lb->string, AG_LABEL_OUTER))
        outer = lb;
      else if (streq(lb->string, own))
        sess = lb;
    }
  }
  return cJSON_IsString(outer) && streq(outer->valuestring, want) && cJSON_IsString(sess) &&
         ca_session_id_valid(sess->valuestring) && !streq(sess->valuestring, session_id);
}

/* 0 when the client may set label key to the value token s[vs, ve), else -EPERM with err saying why. A nested
 * session's create (nested_create) sets its own session's labels. */
static int check_label(const char *session_id, const char *const *labels, bool nested, const char *key, const char *s,
                       size_t vs, size_t ve, ca_error **err) {
  if (nested || strncmp(key, AG_LABEL_PREFIX, strlen(AG_LABEL_PREFIX)) != 0)
    return 0;
  _cleanup_free_ char *value = token_string(s, vs, ve);
  if (streq(key, AG_LABEL_SESSION) && !(value && streq(value, session_id)))
    return ca_error_set(err, EPERM,
                        "cleanup-agent: label " AG_LABEL_SESSION "=%s names another session than this one (%s): "
                        "what is created through this session's Docker socket belongs to this session; remove the "
                        "label, or set " AG_LABEL_KEEP "=true to keep the object after the session",
                        value ? value : "(not a string)", session_id);
  if (value && streq(key, AG_LABEL_KEEP) && streq(value, "true"))
    return 0;
  for (const char *const *l = labels; value && *l; l++) {
    size_t kl = strlen(key);
    if (strncmp(*l, key, kl) == 0 && (*l)[kl] == '=' && streq(*l + kl + 1, value))
      return 0; /* the session's own label, as a client copying an object's labels sends it: set anyway */
  }
  return ca_error_set(err, EPERM,
                      "cleanup-agent: label %s=%s is in the " AG_LABEL_PREFIX " namespace, which belongs to "
                      "cleanup-agent: through the session's Docker socket a client may set only " AG_LABEL_KEEP
                      "=true (to keep the object after the session); remove the label",
                      key, value ? value : "(not a string)");
}

/* Whether key is the outer label of a nested session's build that leaves the outermost proxy for the engine: dropped
 * there, so that the image (and every container made from it, which inherits its labels) names no session but by
 * built-by, and no session's end removes a container made from it outside the session. */
static bool outer_of_build(const struct labeling *l, const char *key) {
  return l->build && l->nested && streq(key, AG_LABEL_OUTER) && root_of(l->session_id, l->labels) == l->session_id;
}

/* Appends the members of the Labels object at s[vs] to merged (a null resets it, as the engine reads it). */
static int merge_labels(const struct labeling *l, const char *s, size_t n, size_t vs, ca_buf *merged, ca_error **err) {
  if (n - vs >= 4 && memcmp(s + vs, "null", 4) == 0) {
    ca_buf_reset(merged);
    return 0;
  }
  struct object_scan o;
  if (!scan_open(&o, s, vs, n))
    return ca_error_set(err, EINVAL,
                        "cleanup-agent: the create request's Labels is not a JSON object, so the session's Docker "
                        "proxy cannot add the session labels to it");
  struct member m;
  int k;
  while ((k = scan_next(&o, &m)) > 0) {
    _cleanup_free_ char *key = token_string(s, m.key, m.key_end);
    if (!key)
      return ca_error_set(err, EINVAL, "cleanup-agent: a label name of the create request is not a JSON string");
    if (check_label(l->session_id, l->labels, l->nested, key, s, m.val, m.val_end, err) < 0)
      return -EPERM;
    if (outer_of_build(l, key))
      continue;
    if ((merged->len && ca_buf_append(merged, ",", 1, err) < 0) ||
        ca_buf_append(merged, s + m.key, m.val_end - m.key, err) < 0)
      return -ENOMEM;
  }
  return k < 0 ? ca_error_set(err, EINVAL, "cleanup-agent: the create request's Labels is not a JSON object") : 0;
}

/* Appends the session's labels to merged, last so that they win, each as a JSON string. */
static int append_session_labels(const char *const *labels, ca_buf *merged, ca_error **err) {
  for (const char *const *l = labels; *l; l++) {
    const char *eq = strchr(*l, '=');
    if (!eq)
      continue;
    _cleanup_free_ char *key = strndup(*l, (size_t)(eq - *l));
    _cleanup_json_ cJSON *k = key ? cJSON_CreateString(key) : NULL, *v = cJSON_CreateString(eq + 1);
    _cleanup_free_ char *kt = k ? cJSON_PrintUnformatted(k) : NULL, *vt = v ? cJSON_PrintUnformatted(v) : NULL;
    if (!kt || !vt || ca_buf_appendf(merged, err, "%s%s:%s", merged->len ? "," : "", kt, vt) < 0)
      return ca_error_set(err, ENOMEM, "out of memory");
  }
  return 0;
}

/* ---- volumes a container create implies: HostConfig.Mounts[] of type volume get the session labels in
 * VolumeOptions.Labels (the engine creates a missing volume with them, and leaves an existing one as it is). Each
 * value is rewritten where it stands, every other byte kept. ---- */

/* Appends to out the value at s[vs, ve) rewritten; s[vs] is the value's first byte. */
typedef int (*value_fn)(const struct labeling *l, const char *s, size_t vs, size_t ve, ca_buf *out, ca_error **err);

/* Whether key names member name (ASCII) as the engine matches it (engine_name_is). */
static bool engine_name_is_ascii(const char *key, const char *name) {
  char want[32];
  size_t i = 0;
  for (; name[i] && i + 1 < sizeof(want); i++)
    want[i] = (char)tolower((unsigned char)name[i]);
  want[i] = '\0';
  return engine_name_is(key, want);
}

/* Appends the object at s[os, oe) with the value of every member named name (engine_name_is_ascii) rewritten by fn;
 * when none is there and missing is set, adds "name":missing before the closing brace. */
static int rewrite_members(const struct labeling *l, const char *s, size_t os, size_t oe, const char *name, value_fn fn,
                           const char *missing, ca_buf *out, ca_error **err) {
  struct object_scan o;
  struct member m;
  if (!scan_open(&o, s, os, oe))
    return ca_buf_append(out, s + os, oe - os, err); /* not an object (null, say): the engine reads it as before */
  size_t from = os;
  bool found = false, any = false;
  int k;
  while ((k = scan_next(&o, &m)) > 0) {
    any = true;
    _cleanup_free_ char *key = token_string(s, m.key, m.key_end);
    if (!key || !engine_name_is_ascii(key, name))
      continue;
    found = true;
    int r = ca_buf_append(out, s + from, m.val - from, err);
    if (r < 0 || (r = fn(l, s, m.val, m.val_end, out, err)) < 0)
      return r;
    from = m.val_end;
  }
  if (k < 0)
    return ca_error_set(err, EINVAL, "cleanup-agent: the create request's %s is not a JSON object", name);
  if (ca_buf_append(out, s + from, o.close - from, err) < 0)
    return -ENOMEM;
  if (!found && missing) {
    int r = ca_buf_appendf(out, err, "%s\"%s\":", any ? "," : "", name);
    if (r < 0 || (r = fn(l, missing, 0, strlen(missing), out, err)) < 0)
      return r;
  }
  return ca_buf_append(out, s + o.close, oe - o.close, err);
}

/* VolumeOptions: its Labels merged with the session's (null or absent: the session's alone). */
static int volume_options(const struct labeling *l, const char *s, size_t vs, size_t ve, ca_buf *out, ca_error **err) {
  bool null = ve - vs == 4 && memcmp(s + vs, "null", 4) == 0;
  _cleanup_free_ char *body = NULL;
  size_t len = 0;
  int r = null ? ag_proxy_rewrite_body(l->session_id, l->labels, "{}", 2, &body, &len, err)
               : ag_proxy_rewrite_body(l->session_id, l->labels, s + vs, ve - vs, &body, &len, err);
  return r < 0 ? r : ca_buf_append(out, body, len, err);
}

/* The string value of member name (engine_name_is_ascii) of the object at s[os, oe) (the last one, as the engine
 * reads it), or NULL. */
static char *member_string(const char *s, size_t os, size_t oe, const char *name) {
  struct object_scan o;
  struct member m;
  char *value = NULL;
  if (!scan_open(&o, s, os, oe))
    return NULL;
  while (scan_next(&o, &m) > 0) {
    _cleanup_free_ char *key = token_string(s, m.key, m.key_end);
    if (key && engine_name_is_ascii(key, name)) {
      free(value);
      value = token_string(s, m.val, m.val_end);
    }
  }
  return value;
}

/* Mounts: each element of type volume gets the session labels in VolumeOptions.Labels. */
static int mounts(const struct labeling *l, const char *s, size_t vs, size_t ve, ca_buf *out, ca_error **err) {
  if (s[vs] != '[')
    return ca_buf_append(out, s + vs, ve - vs, err);
  size_t i = skip_ws(s, vs + 1, ve), from = vs;
  while (i < ve && s[i] != ']') {
    size_t end = value_end(s, i, ve);
    if (!end)
      return ca_error_set(err, EINVAL, "cleanup-agent: the create request's HostConfig.Mounts is not a JSON array");
    _cleanup_free_ char *type = member_string(s, i, end, "Type");
    if (type && streq(type, "volume")) {
      int r = ca_buf_append(out, s + from, i - from, err);
      if (r < 0 || (r = rewrite_members(l, s, i, end, "VolumeOptions", volume_options, "null", out, err)) < 0)
        return r;
      from = end;
    }
    i = skip_ws(s, end, ve);
    if (i < ve && s[i] == ',')
      i = skip_ws(s, i + 1, ve);
  }
  return ca_buf_append(out, s + from, ve - from, err);
}

/* Whether the engine puts a container with cgroup parent value inside the session's cgroup parent: the same path or
 * one below it (a session nested in this one that contains its containers too). */
static bool parent_inside(const char *value, const char *parent) {
  size_t n = strlen(parent);
  return strncmp(value, parent, n) == 0 && (value[n] == '\0' || value[n] == '/' || parent[n - 1] == '/');
}

/* CgroupParent: the session's, unless the client's already lies inside it; a non-empty one outside is refused. */
static int cgroup_parent(const struct labeling *l, const char *s, size_t vs, size_t ve, ca_buf *out, ca_error **err) {
  _cleanup_free_ char *value = token_string(s, vs, ve);
  if (value && value[0] && parent_inside(value, l->cgroup_parent))
    return ca_buf_append(out, s + vs, ve - vs, err);
  if (value && value[0])
    return ca_error_set(err, EPERM,
                        "cleanup-agent: this session runs with --contain-containers, which puts every container it "
                        "creates in the session's cgroup (%s) so that the session's --memory, --pids and --cpus bound "
                        "it; the create asks for its own cgroup parent (HostConfig.CgroupParent \"%.200s\"): the "
                        "request is refused; drop --cgroup-parent (CgroupParent) from the create, or run the session "
                        "without --contain-containers",
                        l->cgroup_parent, value);
  _cleanup_json_ cJSON *j = cJSON_CreateString(l->cgroup_parent);
  _cleanup_free_ char *text = j ? cJSON_PrintUnformatted(j) : NULL;
  return text ? ca_buf_append(out, text, strlen(text), err) : ca_error_set(err, ENOMEM, "out of memory");
}

/* A container's HostConfig: volume mounts labeled (not a nested session's: it labeled them itself), and with a cgroup
 * parent to set, every CgroupParent member set (added when none is there; a null HostConfig becomes one). */
static int host_config(const struct labeling *l, const char *s, size_t vs, size_t ve, ca_buf *out, ca_error **err) {
  if (!l->cgroup_parent)
    return rewrite_members(l, s, vs, ve, "Mounts", mounts, NULL, out, err);
  ca_buf tmp = CA_BUF_INIT(2 * (ve - vs) + 64 * 1024);
  bool null = ve - vs == 4 && memcmp(s + vs, "null", 4) == 0;
  int r = null ? ca_buf_append(&tmp, "{}", 2, err)
          : s[vs] != '{'
              ? ca_error_set(err, EINVAL, "cleanup-agent: the create request's HostConfig is not a JSON object")
          : l->nested ? ca_buf_append(&tmp, s + vs, ve - vs, err)
                      : rewrite_members(l, s, vs, ve, "Mounts", mounts, NULL, &tmp, err);
  if (r >= 0)
    r = rewrite_members(l, tmp.data, 0, tmp.len, "CgroupParent", cgroup_parent, "\"\"", out, err);
  ca_buf_free(&tmp);
  return r;
}

/* Appends a top-level member other than Labels: as it was, but for a HostConfig's volume mounts (a nested session's
 * create carries its own session's labels there) and cgroup parent, and for volume mounts at the top level, where
 * an engine of API 1.41 reads HostConfig's fields when the create has no HostConfig. */
static int copy_member(const struct labeling *l, const char *key, const char *s, const struct member *m, ca_buf *out,
                       ca_error **err) {
  bool host = key && engine_name_is(key, "hostconfig") && !(l->nested && !l->cgroup_parent);
  bool top_mounts = key && engine_name_is(key, "mounts") && !l->nested;
  if (!host && !top_mounts)
    return ca_buf_append(out, s + m->seg, m->val_end - m->seg, err);
  if (ca_buf_append(out, s + m->seg, m->val - m->seg, err) < 0)
    return -ENOMEM;
  return host ? host_config(l, s, m->val, m->val_end, out, err) : mounts(l, s, m->val, m->val_end, out, err);
}

/* ag_proxy_rewrite_body, and with l->cgroup_parent the container's cgroup parent (ag_proxy_rewrite_container_body). */
static int rewrite_body(struct labeling *l, const char *s, size_t n, char **ret_body, size_t *ret_len, ca_error **err) {
  /* cJSON reads it first: a body it cannot read (not JSON, or nested deeper than it goes) is refused, not guessed at.
   */
  _cleanup_json_ cJSON *root = cJSON_ParseWithLength(s, n);
  size_t start = n >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0 ? 3 : 0; /* cJSON skips a byte order mark */
  struct object_scan o;
  if (!root || !scan_open(&o, s, skip_ws(s, start, n), n))
    return ca_error_set(err, EINVAL,
                        "cleanup-agent: the create request's body is not a JSON object the session's Docker proxy can "
                        "read (%s), so it cannot add the session labels: the request is refused",
                        root ? "not an object" : "invalid JSON, or nested deeper than 1000 levels");
  bool nested = l->nested = nested_create(root, l);
  ca_buf out = CA_BUF_INIT(2 * n + 64 * 1024), merged = CA_BUF_INIT(n + 64 * 1024);
  int r = ca_buf_append(&out, s, o.i, err); /* up to and with the opening brace */
  size_t last = o.i;
  bool kept = false, host_config_seen = false;
  struct member m;
  int k = 0;
  while (r >= 0 && (k = scan_next(&o, &m)) > 0) {
    last = m.val_end;
    _cleanup_free_ char *key = token_string(s, m.key, m.key_end);
    if (key && is_labels_name(key)) {
      r = merge_labels(l, s, n, m.val, &merged, err);
      continue;
    }
    host_config_seen |= key && engine_name_is(key, "hostconfig");
    r = (kept ? ca_buf_append(&out, ",", 1, err) : 0) < 0 ? -ENOMEM : copy_member(l, key, s, &m, &out, err);
    kept = true;
  }
  if (r >= 0 && (k < 0 || skip_ws(s, o.close + 1, n) != n))
    r = ca_error_set(err, EINVAL, "cleanup-agent: the create request's body is not one JSON object");
  if (r >= 0 && !nested)
    r = append_session_labels(l->labels, &merged, err);
  if (r >= 0 && l->cgroup_parent && !host_config_seen) {
    r = ca_buf_appendf(&out, err, "%s\"HostConfig\":", kept ? "," : "");
    if (r >= 0)
      r = host_config(l, "{}", 0, 2, &out, err);
    kept = true;
  }
  if (r >= 0)
    r = ca_buf_appendf(&out, err, "%s\"Labels\":{%s}", kept ? "," : "", ca_buf_str(&merged));
  if (r >= 0)
    r = ca_buf_append(&out, s + last, n - last, err);
  ca_buf_free(&merged);
  if (r < 0) {
    ca_buf_free(&out);
    return r == -EPERM || r == -EINVAL ? r : -ENOMEM;
  }
  *ret_body = ca_buf_steal(&out, ret_len);
  return 0;
}

int ag_proxy_rewrite_body(const char *session_id, const char *const *labels, const char *s, size_t n, char **ret_body,
                          size_t *ret_len, ca_error **err) {
  struct labeling l = {.session_id = session_id, .labels = labels};
  return rewrite_body(&l, s, n, ret_body, ret_len, err);
}

int ag_proxy_rewrite_container_body(const char *session_id, const char *const *labels, const char *cgroup_parent,
                                    const char *s, size_t n, char **ret_body, size_t *ret_len, ca_error **err) {
  struct labeling l = {.session_id = session_id, .labels = labels, .cgroup_parent = cgroup_parent};
  if (cgroup_parent && !cgroup_parent[0])
    l.cgroup_parent = NULL;
  return rewrite_body(&l, s, n, ret_body, ret_len, err);
}

/* A volume name as the engine accepts one in a bind: [a-zA-Z0-9][a-zA-Z0-9_.-]+ */
static bool volume_name(const char *s, size_t n) {
  if (n < 2 || !isalnum((unsigned char)s[0]))
    return false;
  for (size_t i = 1; i < n; i++)
    if (!isalnum((unsigned char)s[i]) && !strchr("_.-", s[i]))
      return false;
  return true;
}

/* Calls fn for every Binds array the engine may read in root: each member named Binds (engine_name_is) of each
 * HostConfig, every one of those counted (the engine merges an object given twice), and at the top level, where an
 * engine of API 1.41 reads HostConfig's fields when the create has no HostConfig. A superset: a volume made for a
 * bind the engine did not read is the session's, and goes with it. */
static int each_binds(const cJSON *root, int (*fn)(const cJSON *binds, void *ctx), void *ctx) {
  for (const cJSON *it = root ? root->child : NULL; it; it = it->next) {
    if (it->string && engine_name_is(it->string, "binds") && cJSON_IsArray(it) && fn(it, ctx) < 0)
      return -ENOMEM;
    if (!it->string || !engine_name_is(it->string, "hostconfig"))
      continue;
    for (const cJSON *b = cJSON_IsObject(it) ? it->child : NULL; b; b = b->next)
      if (b->string && engine_name_is(b->string, "binds") && cJSON_IsArray(b) && fn(b, ctx) < 0)
        return -ENOMEM;
  }
  return 0;
}

static int count_binds(const cJSON *binds, void *ctx) {
  *(size_t *)ctx += (size_t)cJSON_GetArraySize(binds);
  return 0;
}

struct bind_names {
  char **names;
  size_t n;
};

/* Adds the volume names among binds to ctx's names, once each. */
static int add_bind_names(const cJSON *binds, void *ctx) {
  struct bind_names *v = ctx;
  const cJSON *b;
  cJSON_ArrayForEach(b, binds) {
    const char *colon = cJSON_IsString(b) ? strchr(b->valuestring, ':') : NULL;
    /* A source that is not a volume name is a host path (or an error the engine reports itself). */
    if (!colon || !volume_name(b->valuestring, (size_t)(colon - b->valuestring)))
      continue;
    bool seen = false;
    for (size_t i = 0; i < v->n && !seen; i++)
      seen = strncmp(v->names[i], b->valuestring, (size_t)(colon - b->valuestring)) == 0 &&
             v->names[i][colon - b->valuestring] == '\0';
    if (!seen && !(v->names[v->n++] = strndup(b->valuestring, (size_t)(colon - b->valuestring))))
      return -ENOMEM;
  }
  return 0;
}

int ag_proxy_bind_volumes(const char *body, size_t len, char ***ret, ca_error **err) {
  _cleanup_json_ cJSON *root = cJSON_ParseWithLength(body, len);
  size_t max = 0;
  (void)each_binds(root, count_binds, &max);
  struct bind_names v = {.names = calloc(max + 1, sizeof(char *))};
  if (!v.names || each_binds(root, add_bind_names, &v) < 0) {
    ca_strv_free(v.names);
    return ca_error_set(err, ENOMEM, "out of memory");
  }
  *ret = v.names;
  return 0;
}

bool ag_proxy_body_keeps(const char *body, size_t len) {
  _cleanup_json_ cJSON *root = cJSON_ParseWithLength(body, len);
  const cJSON *keep = NULL;
  for (const cJSON *it = root ? root->child : NULL; it; it = it->next) {
    const cJSON *k =
        it->string && is_labels_name(it->string) ? cJSON_GetObjectItemCaseSensitive(it, AG_LABEL_KEEP) : NULL;
    if (it->string && is_labels_name(it->string) && cJSON_IsNull(it))
      keep = NULL; /* a null Labels resets the map, as the engine reads it */
    else if (k)
      keep = k;
  }
  return cJSON_IsString(keep) && streq(keep->valuestring, "true");
}

/* ---- images the session builds: POST /build's labels query parameter ---- */

/* The engine's parser (Go's url.ParseQuery) skips a parameter with a ';' or a '%' without two hex digits after it. */
static int unreadable_param(ca_error **err) {
  return ca_error_set(err, EINVAL,
                      "cleanup-agent: a build parameter with a ';' or a '%%' not followed by two hex digits, which "
                      "the engine skips and the session's Docker proxy does not rewrite: encode it");
}

/* A query's name or value, decoded as Go's url.QueryUnescape does ('+' is a space): 0, -EINVAL (unreadable_param) or
 * -ENOMEM. */
static int url_decode(const char *s, size_t n, ca_buf *out, ca_error **err) {
  for (size_t i = 0; i < n; i++) {
    char c = s[i] == '+' ? ' ' : s[i];
    if (s[i] == '%') {
      if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) || !isxdigit((unsigned char)s[i + 2]))
        return unreadable_param(err);
      char hex[3] = {s[i + 1], s[i + 2], 0};
      c = (char)strtol(hex, NULL, 16);
      i += 2;
    }
    if (ca_buf_append(out, &c, 1, err) < 0)
      return -ENOMEM;
  }
  return 0;
}

static int url_encode(const char *s, size_t n, ca_buf *out, ca_error **err) {
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    int r = isalnum(c) || strchr("-._~", c) ? ca_buf_append(out, s + i, 1, err) : ca_buf_appendf(out, err, "%%%02X", c);
    if (r < 0)
      return -ENOMEM;
  }
  return 0;
}

/* The labels parameter's JSON (NULL: none) merged with the agent's label of a built image, built-by=<session>, alone
 * of the session's labels: the engine copies an image's labels into every container made from it, also outside the
 * session, and no session label may name a container the session did not create. A nested session's proxy adds the
 * outer label too, for the proxies in front of it (nested_create), and the outermost one drops it (outer_of_build).
 * URL-encoded, appended to out. */
static int build_labels(const char *session_id, const char *const *labels, const char *json, ca_buf *out,
                        ca_error **err) {
  char built_by[sizeof(AG_LABEL_BUILT_BY) + AG_SESSION_ID_LEN + 2];
  snprintf(built_by, sizeof(built_by), AG_LABEL_BUILT_BY "=%s", session_id);
  const char *own[] = {built_by, outer_label_of(labels), NULL};
  struct labeling l = {.session_id = session_id, .labels = own, .build = true};
  ca_buf wrapped = CA_BUF_INIT(AG_PROXY_BODY_MAX);
  int r = ca_buf_appendf(&wrapped, err, "{\"Labels\":%s}", json && *json ? json : "{}");
  _cleanup_free_ char *merged = NULL;
  size_t len = 0;
  if (r >= 0)
    r = rewrite_body(&l, wrapped.data, wrapped.len, &merged, &len, err);
  ca_buf_free(&wrapped);
  if (r < 0)
    return r;
  /* merged is {"Labels":{...}}: the object alone goes into the parameter. */
  static const char prefix[] = "{\"Labels\":";
  if (len < sizeof(prefix) || memcmp(merged, prefix, sizeof(prefix) - 1) != 0)
    return ca_error_set(err, EINVAL, "cleanup-agent: the build's labels parameter is not a JSON object");
  return url_encode(merged + sizeof(prefix) - 1, len - sizeof(prefix), out, err);
}

/* One parameter of a query: its name and value decoded, as the engine reads them. */
struct param {
  const char *raw; /* as sent, n bytes */
  size_t n;
  ca_buf key, value;
};

/* Reads the parameter of url[*i, len) up to the next '&' into p and moves *i past it: 1, or 0 at the end of the
 * query, -EINVAL for one the engine would skip (unreadable_param), -ENOMEM. An empty one (&&) reads as an empty
 * name. */
static int next_param(const char *url, size_t len, size_t *i, struct param *p, ca_error **err) {
  if (*i > len)
    return 0;
  const char *s = url + *i, *amp = memchr(s, '&', len - *i);
  size_t n = amp ? (size_t)(amp - s) : len - *i, eq = strcspn(s, "=&");
  eq = eq < n ? eq : n;
  *i += n + 1;
  p->raw = s;
  p->n = n;
  ca_buf_reset(&p->key);
  ca_buf_reset(&p->value);
  if (memchr(s, ';', n))
    return unreadable_param(err);
  int r = url_decode(s, eq, &p->key, err);
  if (r >= 0 && eq < n)
    r = url_decode(s + eq + 1, n - eq - 1, &p->value, err);
  return r < 0 ? r : 1;
}

static bool param_is(const struct param *p, const char *name) {
  return p->key.len == strlen(name) && memcmp(p->key.data, name, p->key.len) == 0;
}

static const char *param_value(const struct param *p) {
  return p->value.len ? ca_buf_str(&p->value) : "";
}

/* What the engine reads of a build's query that decides its step containers: the first value of each name, as
 * httputils reads them. */
struct build_query {
  bool classic;     /* not version=2: BuildKit makes no step containers */
  bool quiet;       /* q: the build's output names no step container */
  bool rm;          /* rm, true when absent: the step containers of a build that succeeds are removed */
  bool forcerm_set; /* forcerm given */
  bool forcerm;     /* forcerm: every step container is removed, whatever happens (rm then too) */
};

/* The engine's reading of a boolean query value (httputils.BoolValue): false only for "", 0, no, false, none, in any
 * case and between white space. A value with a byte beyond ASCII, which Go may trim as Unicode white space, reads as
 * unsure: the reading that keeps what the proxy cannot name. */
static bool query_true(const char *v, size_t n, bool unsure) {
  static const char *const no[] = {"0", "no", "false", "none"};
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)v[i] >= 0x80)
      return unsure;
  for (; n > 0 && isspace((unsigned char)v[n - 1]); n--)
    ;
  for (; n > 0 && isspace((unsigned char)*v); v++, n--)
    ;
  for (size_t i = 0; i < ELEMENTSOF(no); i++)
    if (strlen(no[i]) == n && strncasecmp(v, no[i], n) == 0)
      return false;
  return n > 0;
}

static int scan_build_query(const char *url, size_t len, struct build_query *bq, ca_error **err) {
  const char *q = memchr(url, '?', len);
  struct param p = {.key = CA_BUF_INIT(len + 1), .value = CA_BUF_INIT(len + 1)};
  bool version_seen = false, quiet_seen = false, rm_seen = false;
  int k;
  *bq = (struct build_query){.classic = true, .rm = true};
  for (size_t i = q ? (size_t)(q - url) + 1 : len + 1; (k = next_param(url, len, &i, &p, err)) > 0;) {
    const char *v = param_value(&p);
    if (param_is(&p, "version") && !version_seen)
      bq->classic = !streq(v, "2");
    else if (param_is(&p, "q") && !quiet_seen)
      bq->quiet = query_true(v, p.value.len, true);
    else if (param_is(&p, "rm") && !rm_seen) /* empty reads as absent (the engine tests FormValue("rm") == "") */
      bq->rm = p.value.len == 0 || query_true(v, p.value.len, false);
    else if (param_is(&p, "forcerm") && !bq->forcerm_set)
      bq->forcerm = query_true(v, p.value.len, false);
    version_seen |= param_is(&p, "version");
    quiet_seen |= param_is(&p, "q");
    rm_seen |= param_is(&p, "rm");
    bq->forcerm_set |= param_is(&p, "forcerm");
  }
  ca_buf_free(&p.key);
  ca_buf_free(&p.value);
  return k;
}

/* Whether a classic build gets forcerm=1 in place of the client's: the engine makes its step containers without any
 * label, and the proxy can name them only from the build's "Running in <id>" lines. When the client said nothing of
 * them (a failed step would leave its container), and when it keeps them all (rm false) but is quiet: a quiet build
 * that succeeds names none (one that fails gives its output then). Any other build goes as it is, and its step
 * containers are recorded (ag_proxy_build_keeps_steps). */
static bool build_forced(const struct build_query *bq) {
  if (!bq->classic || bq->forcerm)
    return false;
  return (!bq->forcerm_set && bq->rm) || (bq->quiet && !bq->rm);
}

int ag_proxy_rewrite_build_url(const char *session_id, const char *const *labels, const char *url, size_t len,
                               char **ret_url, ca_error **err) {
  const char *q = memchr(url, '?', len);
  size_t path_len = q ? (size_t)(q - url) : len;
  ca_buf out = CA_BUF_INIT(2 * len + 64 * 1024);
  struct param p = {.key = CA_BUF_INIT(len + 1), .value = CA_BUF_INIT(len + 1)};
  struct build_query bq;
  int r = scan_build_query(url, len, &bq, err);
  bool has_labels = false, forced = r >= 0 && build_forced(&bq);
  char sep = '?';
  int k = 0;
  if (r >= 0)
    r = ca_buf_append(&out, url, path_len, err);
  for (size_t i = path_len + 1; q && r >= 0 && (k = next_param(url, len, &i, &p, err)) > 0;) {
    if (p.n == 0 || (forced && param_is(&p, "forcerm")))
      continue;
    if (param_is(&p, "labels")) { /* every one gets built-by, whichever the engine reads */
      has_labels = true;
      if ((r = ca_buf_appendf(&out, err, "%clabels=", sep)) >= 0)
        r = build_labels(session_id, labels, p.value.len ? ca_buf_str(&p.value) : NULL, &out, err);
    } else if ((r = ca_buf_append(&out, &sep, 1, err)) >= 0) {
      r = ca_buf_append(&out, p.raw, p.n, err);
    }
    sep = '&';
  }
  if (k < 0)
    r = k;
  if (r >= 0 && !has_labels && (r = ca_buf_appendf(&out, err, "%clabels=", sep)) >= 0) {
    r = build_labels(session_id, labels, NULL, &out, err);
    sep = '&';
  }
  if (r >= 0 && forced)
    r = ca_buf_appendf(&out, err, "%cforcerm=1", sep);
  ca_buf_free(&p.key);
  ca_buf_free(&p.value);
  if (r < 0) {
    ca_buf_free(&out);
    return r == -EPERM || r == -EINVAL ? r : -ENOMEM;
  }
  *ret_url = ca_buf_steal(&out, NULL);
  return 0;
}

/* ---- images the session commits: POST /commit ---- */

/* The agent's labels that name a session or its owner. The engine copies a container's labels into the image it
 * commits, and an image's into every container made from it, also outside the session. */
static const char *const owner_label_keys[] = {
    AG_LABEL_SESSION, AG_LABEL_OUTER,     AG_LABEL_MANAGED,     AG_LABEL_HOST,    AG_LABEL_MACHINE, AG_LABEL_BOOT_ID,
    AG_LABEL_PIDNS,   AG_LABEL_OWNER_PID, AG_LABEL_OWNER_START, AG_LABEL_CREATED, AG_LABEL_EXPIRES, AG_LABEL_MODE};

/* Appends one changes parameter, "LABEL key="value"", URL-encoded, to the query in out. */
static int append_label_change(ca_buf *out, const char *key, const char *value, ca_error **err) {
  char change[128];
  if ((size_t)snprintf(change, sizeof(change), "LABEL %s=\"%s\"", key, value) >= sizeof(change))
    return ca_error_set(err, EINVAL, "label %s does not fit a change", key); /* not with the agent's names */
  if (ca_buf_append(out, "&changes=", 9, err) < 0)
    return -ENOMEM;
  return url_encode(change, strlen(change), out, err);
}

int ag_proxy_rewrite_commit_url(const char *session_id, const char *url, size_t len, char **ret_url, ca_error **err) {
  ca_buf out = CA_BUF_INIT(len + 8192);
  int r = ca_buf_append(&out, url, len, err);
  if (r >= 0 && !memchr(url, '?', len))
    r = ca_buf_append(&out, "?", 1, err);
  /* After the client's changes: the engine applies them in order, the last label of a name winning. One label in
   * each, as Podman reads a LABEL change (its value is the rest of the line). Docker joins them with newlines into one
   * Dockerfile, where a client's change that ends in an escape character swallows the line after it: the first is
   * one that may go, overridden at the end. */
  if (r >= 0)
    r = append_label_change(&out, AG_LABEL_BUILT_BY, "", err);
  for (size_t i = 0; r >= 0 && i < ELEMENTSOF(owner_label_keys); i++)
    r = append_label_change(&out, owner_label_keys[i], "", err);
  if (r >= 0)
    r = append_label_change(&out, AG_LABEL_BUILT_BY, session_id, err);
  if (r < 0) {
    ca_buf_free(&out);
    return -ENOMEM;
  }
  *ret_url = ca_buf_steal(&out, NULL);
  return 0;
}

bool ag_proxy_build_keeps_steps(const char *url, size_t len) {
  struct build_query bq;
  if (scan_build_query(url, len, &bq, NULL) < 0)
    return true; /* recording ids of nothing is harmless */
  return bq.classic && !bq.forcerm && !build_forced(&bq);
}
