/* Parsers of the kernel's cgroup and proc files. They take buffers (tests feed literal text), never trust the
 * input, and say which line was wrong. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup-internal.h"

/* Strict unsigned decimal over [s, s+len): digits only, no sign, no overflow. */
static int parse_u64_n(const char *s, size_t len, uint64_t *ret) {
  if (len == 0 || len > 20)
    return -EINVAL;
  uint64_t v = 0;
  for (size_t i = 0; i < len; i++) {
    if (!isdigit((unsigned char)s[i]))
      return -EINVAL;
    uint64_t d = (uint64_t)(s[i] - '0');
    if (v > (UINT64_MAX - d) / 10)
      return -ERANGE;
    v = v * 10 + d;
  }
  *ret = v;
  return 0;
}

int cg_parse_keyed(const char *text, const char *key, uint64_t *ret, ca_error **err) {
  size_t klen = strlen(key);
  bool found = false;
  uint64_t value = 0;
  unsigned lineno = 0;
  for (const char *line = text; *line;) {
    const char *end = strchrnul(line, '\n');
    lineno++;
    if (end > line) {
      const char *sp = memchr(line, ' ', (size_t)(end - line));
      uint64_t v;
      if (!sp || sp == line || parse_u64_n(sp + 1, (size_t)(end - sp - 1), &v) < 0)
        return ca_error_set(err, EINVAL, "line %u is not \"key number\": \"%.*s\"", lineno, (int)CA_MIN(end - line, 80),
                            line);
      if ((size_t)(sp - line) == klen && memcmp(line, key, klen) == 0) {
        if (found)
          return ca_error_set(err, EINVAL, "key \"%s\" appears twice", key);
        found = true;
        value = v;
      }
    }
    line = *end ? end + 1 : end;
  }
  if (!found)
    return ca_error_set(err, ENOENT, "no \"%s\" line", key);
  *ret = value;
  return 0;
}

/* Like cg_parse_keyed, with a missing key read as 0 (the rest must still be well formed). */
static int keyed_or_zero(const char *text, const char *key, uint64_t *ret, ca_error **err) {
  _cleanup_error_ ca_error *e = NULL;
  int r = cg_parse_keyed(text, key, ret, &e);
  if (r == -ENOENT) {
    *ret = 0;
    return 0;
  }
  if (r < 0) {
    if (err) {
      ca_error_free(*err);
      *err = TAKE_PTR(e);
    }
    return r;
  }
  return 0;
}

int cg_parse_events(const char *text, cg_events *ret, ca_error **err) {
  uint64_t populated;
  if (cg_parse_keyed(text, "populated", &populated, err) < 0)
    return ca_error_wrap(err, "cgroup.events");
  if (populated > 1)
    return ca_error_set(err, EINVAL, "cgroup.events: populated must be 0 or 1");
  ret->populated = populated;
  return 0;
}

int cg_parse_memory_events(const char *text, cg_memory_events *ret, ca_error **err) {
  cg_memory_events m = {0};
  if (cg_parse_keyed(text, "oom_kill", &m.oom_kill, err) < 0)
    return ca_error_wrap(err, "memory events");
  *ret = m;
  return 0;
}

int cg_parse_cpu_stat(const char *text, cg_cpu_stat *ret, ca_error **err) {
  cg_cpu_stat c = {0};
  uint64_t throttled_ns = 0;
  _cleanup_error_ ca_error *e = NULL;
  int r = cg_parse_keyed(text, "usage_usec", &c.usage_usec, &e);
  if (r == -ENOENT) {
    /* v1 cpu.stat: no usage (that is cpuacct's), throttling in nanoseconds. */
    r = cg_parse_keyed(text, "nr_throttled", &c.nr_throttled, err);
    if (r < 0)
      return ca_error_wrap(err, "cpu.stat: neither usage_usec (v2) nor nr_throttled (v1)");
    if (keyed_or_zero(text, "throttled_time", &throttled_ns, err) < 0)
      return ca_error_wrap(err, "cpu.stat");
    c.throttled_usec = throttled_ns / 1000;
  } else if (r < 0) {
    if (err) {
      ca_error_free(*err);
      *err = TAKE_PTR(e);
    }
    return ca_error_wrap(err, "cpu.stat");
  } else if (keyed_or_zero(text, "nr_throttled", &c.nr_throttled, err) < 0 ||
             keyed_or_zero(text, "throttled_usec", &c.throttled_usec, err) < 0) {
    return ca_error_wrap(err, "cpu.stat");
  }
  *ret = c;
  return 0;
}

/* Next space-separated token of [*p, end); NULL when there is none. */
static const char *next_token(const char **p, const char *end, size_t *ret_len) {
  const char *s = *p;
  while (s < end && *s == ' ')
    s++;
  if (s >= end)
    return NULL;
  const char *e = s;
  while (e < end && *e != ' ')
    e++;
  *ret_len = (size_t)(e - s);
  *p = e;
  return s;
}

int cg_parse_proc_stat(const char *text, cg_proc_stat *ret, ca_error **err) {
  const char *end = text + strlen(text);
  while (end > text && (end[-1] == '\n' || end[-1] == ' '))
    end--;
  /* comm is between the first '(' and the LAST ')': it may contain both. */
  const char *open = memchr(text, '(', (size_t)(end - text));
  const char *close = NULL;
  for (const char *q = end; q > text; q--)
    if (q[-1] == ')') {
      close = q - 1;
      break;
    }
  if (!open || !close || close < open)
    return ca_error_set(err, EINVAL, "/proc/<pid>/stat: no \"(comm)\"");
  uint64_t pid;
  size_t plen = (size_t)(open - text);
  while (plen > 0 && text[plen - 1] == ' ')
    plen--;
  if (parse_u64_n(text, plen, &pid) < 0 || pid == 0 || pid > INT_MAX)
    return ca_error_set(err, EINVAL, "/proc/<pid>/stat: bad pid field");
  cg_proc_stat s = {.pid = (pid_t)pid};
  size_t clen = CA_MIN((size_t)(close - open - 1), sizeof(s.comm) - 1);
  memcpy(s.comm, open + 1, clen);
  s.comm[clen] = '\0';

  const char *p = close + 1;
  for (int field = 3; field <= 22; field++) {
    size_t len;
    const char *tok = next_token(&p, end, &len);
    if (!tok)
      return ca_error_set(err, EINVAL, "/proc/<pid>/stat: ends at field %d, before field 22 (starttime)", field);
    uint64_t v = 0;
    switch (field) {
      case 3:
        if (len != 1 || !isalpha((unsigned char)tok[0]))
          return ca_error_set(err, EINVAL, "/proc/<pid>/stat: bad state field");
        s.state = tok[0];
        break;
      case 4:
      case 5:
      case 22:
        if (parse_u64_n(tok, len, &v) < 0 || (field != 22 && v > INT_MAX))
          return ca_error_set(err, EINVAL, "/proc/<pid>/stat: field %d is not a number: \"%.*s\"", field,
                              (int)CA_MIN(len, 40), tok);
        if (field == 4)
          s.ppid = (pid_t)v;
        else if (field == 5)
          s.pgrp = (pid_t)v;
        else
          s.start_time = v;
        break;
      default:
        break;
    }
  }
  *ret = s;
  return 0;
}

void cg_proc_cgroup_done(cg_proc_cgroup *c) {
  if (!c)
    return;
  free(c->unified);
  free(c->v1_memory);
  free(c->v1_pids);
  free(c->v1_cpu);
  *c = (cg_proc_cgroup){0};
}

static bool list_has(const char *list, size_t len, const char *word) {
  size_t wl = strlen(word);
  for (const char *p = list, *end = list + len; p < end;) {
    const char *comma = memchr(p, ',', (size_t)(end - p));
    const char *e = comma ? comma : end;
    if ((size_t)(e - p) == wl && memcmp(p, word, wl) == 0)
      return true;
    p = e + 1;
  }
  return false;
}

int cg_parse_proc_cgroup(const char *text, cg_proc_cgroup *ret, ca_error **err) {
  cg_proc_cgroup c = {0};
  unsigned lineno = 0;
  for (const char *line = text; *line;) {
    const char *end = strchrnul(line, '\n');
    lineno++;
    if (end > line) {
      const char *c1 = memchr(line, ':', (size_t)(end - line));
      const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
      uint64_t hid;
      if (!c1 || !c2 || parse_u64_n(line, (size_t)(c1 - line), &hid) < 0 || c2 + 1 >= end || c2[1] != '/') {
        cg_proc_cgroup_done(&c);
        return ca_error_set(err, EINVAL, "/proc/<pid>/cgroup: line %u is not \"id:controllers:/path\"", lineno);
      }
      const char *ctl = c1 + 1;
      size_t ctl_len = (size_t)(c2 - ctl);
      char **slot = NULL;
      if (hid == 0 && ctl_len == 0)
        slot = &c.unified;
      else if (list_has(ctl, ctl_len, "memory"))
        slot = &c.v1_memory;
      else if (list_has(ctl, ctl_len, "pids"))
        slot = &c.v1_pids;
      else if (list_has(ctl, ctl_len, "cpu"))
        slot = &c.v1_cpu;
      if (slot && !*slot) {
        *slot = strndup(c2 + 1, (size_t)(end - c2 - 1));
        if (!*slot) {
          cg_proc_cgroup_done(&c);
          return ca_error_set(err, ENOMEM, "out of memory");
        }
      }
    }
    line = *end ? end + 1 : end;
  }
  *ret = c;
  return 0;
}

int cg_parse_procs(const char *text, const char *path, pid_t **pids, size_t *n, size_t *cap, ca_error **err) {
  for (const char *p = text; *p;) {
    char *end;
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || errno || v <= 0 || v > INT32_MAX || (*end != '\n' && *end != '\0'))
      return ca_error_set(err, EINVAL, "%s: unexpected content \"%.20s\"", path, p);
    if (*n == *cap) {
      size_t nc = *cap ? *cap * 2 : 64;
      pid_t *grown = realloc(*pids, nc * sizeof(pid_t));
      if (!grown)
        return ca_error_set(err, ENOMEM, "out of memory");
      *pids = grown;
      *cap = nc;
    }
    (*pids)[(*n)++] = (pid_t)v;
    p = *end ? end + 1 : end;
  }
  return 0;
}

void cg_mounts_done(cg_mounts *m) {
  if (!m)
    return;
  free(m->unified);
  free(m->v1_memory);
  free(m->v1_pids);
  free(m->v1_cpu);
  *m = (cg_mounts){0};
}

/* Copies a mountinfo path, decoding the kernel's \ooo octal escapes (space, tab, newline, backslash). */
static char *unescape_path(const char *s, size_t len) {
  char *out = malloc(len + 1);
  if (!out)
    return NULL;
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    if (s[i] == '\\' && i + 3 < len && s[i + 1] >= '0' && s[i + 1] <= '3' && s[i + 2] >= '0' && s[i + 2] <= '7' &&
        s[i + 3] >= '0' && s[i + 3] <= '7') {
      out[o++] = (char)((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out[o++] = s[i];
    }
  }
  out[o] = '\0';
  return out;
}

int cg_parse_mountinfo(const char *text, cg_mounts *ret, ca_error **err) {
  cg_mounts m = {0};
  unsigned lineno = 0;
  for (const char *line = text; *line;) {
    const char *end = strchrnul(line, '\n');
    lineno++;
    if (end > line) {
      /* id parent major:minor root mountpoint options [optional...] - fstype source superoptions */
      const char *p = line, *tok[5];
      size_t len[5];
      for (int i = 0; i < 5; i++) {
        tok[i] = next_token(&p, end, &len[i]);
        if (!tok[i]) {
          cg_mounts_done(&m);
          return ca_error_set(err, EINVAL, "mountinfo line %u: fewer than 6 fields", lineno);
        }
      }
      size_t l;
      const char *t;
      bool sep = false;
      while ((t = next_token(&p, end, &l)))
        if (l == 1 && t[0] == '-') {
          sep = true;
          break;
        }
      size_t fl = 0, sl = 0, ol = 0;
      const char *fstype = sep ? next_token(&p, end, &fl) : NULL;
      const char *source = fstype ? next_token(&p, end, &sl) : NULL;
      const char *opts = source ? next_token(&p, end, &ol) : NULL;
      if (!opts) {
        cg_mounts_done(&m);
        return ca_error_set(err, EINVAL, "mountinfo line %u: no \"- fstype source options\" part", lineno);
      }
      char **slots[4] = {NULL}; /* unified, or up to three v1 controllers */
      int n = 0;
      bool v2 = fl == 7 && memcmp(fstype, "cgroup2", 7) == 0;
      bool v1 = fl == 6 && memcmp(fstype, "cgroup", 6) == 0;
      if (v2 && !m.unified)
        slots[n++] = &m.unified;
      if (v1) {
        m.v1_count++;
        if (list_has(opts, ol, "memory") && !m.v1_memory)
          slots[n++] = &m.v1_memory;
        if (list_has(opts, ol, "pids") && !m.v1_pids)
          slots[n++] = &m.v1_pids;
        if (list_has(opts, ol, "cpu") && !m.v1_cpu)
          slots[n++] = &m.v1_cpu;
      }
      for (int i = 0; i < n; i++) {
        *slots[i] = unescape_path(tok[4], len[4]);
        if (!*slots[i]) {
          cg_mounts_done(&m);
          return ca_error_set(err, ENOMEM, "out of memory");
        }
      }
    }
    line = *end ? end + 1 : end;
  }
  *ret = m;
  return 0;
}
