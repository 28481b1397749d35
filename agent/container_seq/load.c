/* Host load for container-seq's self-protection: CPU from /proc/stat, memory from MemAvailable, memory stalls from
 * PSI. MemAvailable is the kernel's own estimate of what can be allocated without swapping, which is what "the host
 * is about to run out of memory" means; PSI "full" says tasks are already stalled on memory (thrashing). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "seq.h"

#define PROC_FILE_MAX (1024 * 1024)

int seq_parse_proc_stat(const char *text, struct seq_cpu_times *ret, ca_error **err) {
  if (strncmp(text, "cpu ", 4) != 0)
    return ca_error_set(err, EBADMSG, "/proc/stat: first line is not the \"cpu\" line");
  const char *p = text + 4;
  uint64_t v[10] = {0};
  size_t n = 0;
  while (n < ELEMENTSOF(v)) {
    while (*p == ' ')
      p++;
    if (*p < '0' || *p > '9')
      break;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(p, &end, 10);
    if (errno)
      return ca_error_set(err, EBADMSG, "/proc/stat: value out of range");
    v[n++] = x;
    p = end;
  }
  if (n < 4)
    return ca_error_set(err, EBADMSG, "/proc/stat: the \"cpu\" line has %zu fields, expected at least 4", n);
  /* guest and guest_nice (8, 9) are already counted in user and nice. A sum past 64 bits (no kernel's) would wrap and
   * read as more busy time than there was. */
  uint64_t total = 0;
  for (size_t i = 0; i < n && i < 8; i++)
    if (__builtin_add_overflow(total, v[i], &total))
      return ca_error_set(err, EBADMSG, "/proc/stat: the \"cpu\" line's times add up past 64 bits");
  uint64_t idle = v[3] + v[4];
  ret->total = total;
  ret->busy = total - idle;
  return 0;
}

static int meminfo_field(const char *text, const char *key, uint64_t *ret) {
  size_t klen = strlen(key);
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (strncmp(p, key, klen) != 0 || p[klen] != ':')
      continue;
    char *end;
    errno = 0;
    unsigned long long x = strtoull(p + klen + 1, &end, 10);
    if (errno || end == p + klen + 1)
      return -EBADMSG;
    *ret = x;
    return 0;
  }
  return -ENOENT;
}

int seq_parse_meminfo(const char *text, uint64_t *ret_total_kib, uint64_t *ret_available_kib, ca_error **err) {
  uint64_t total, avail;
  if (meminfo_field(text, "MemTotal", &total) < 0 || total == 0)
    return ca_error_set(err, EBADMSG, "/proc/meminfo: no usable MemTotal");
  if (meminfo_field(text, "MemAvailable", &avail) < 0)
    return ca_error_set(err, EBADMSG, "/proc/meminfo: no MemAvailable (kernel older than 3.14?)");
  *ret_total_kib = total;
  *ret_available_kib = CA_MIN(avail, total);
  return 0;
}

int seq_parse_psi(const char *text, const char *line, double *ret_avg10, ca_error **err) {
  size_t llen = strlen(line);
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
    if (strncmp(p, line, llen) != 0 || p[llen] != ' ')
      continue;
    const char *a = strstr(p, "avg10=");
    const char *eol = strchr(p, '\n');
    if (!a || (eol && a > eol))
      break;
    char *end;
    double x = strtod(a + 6, &end);
    if (end == a + 6 || x < 0 || x > 100)
      break;
    *ret_avg10 = x;
    return 0;
  }
  return ca_error_set(err, EBADMSG, "pressure file: no usable \"%s\" line", line);
}

double seq_load_outside_cpu_pct(const struct seq_cpu_times *delta, uint64_t own_usec, long ticks_per_sec) {
  if (delta->total == 0 || ticks_per_sec <= 0)
    return 0;
  double own_ticks = (double)own_usec * (double)ticks_per_sec / 1e6;
  double outside = (double)delta->busy - own_ticks;
  return outside <= 0 ? 0 : CA_MIN(100.0, 100.0 * outside / (double)delta->total);
}

/* The CPU time own used since the previous sample: all of it for a test that started since. */
static uint64_t own_cpu_delta(const struct seq_own *prev, const struct seq_own *own) {
  if (!own || !own->pid)
    return 0;
  if (own->pid == prev->pid && own->cpu_usec >= prev->cpu_usec)
    return own->cpu_usec - prev->cpu_usec;
  return own->cpu_usec;
}

int seq_load_sample(struct seq_load *l, const struct seq_own *own, ca_error **err) {
  _cleanup_free_ char *stat = NULL, *mem = NULL;
  int r;
  if ((r = ca_read_file(l->paths.proc_stat, PROC_FILE_MAX, &stat, NULL, err)) < 0)
    return r;
  if ((r = ca_read_file(l->paths.meminfo, PROC_FILE_MAX, &mem, NULL, err)) < 0)
    return r;
  struct seq_cpu_times now;
  uint64_t total, avail;
  if ((r = seq_parse_proc_stat(stat, &now, err)) < 0 || (r = seq_parse_meminfo(mem, &total, &avail, err)) < 0)
    return r;
  l->cpu_pct = 0;
  if (l->have_prev && now.total > l->prev.total && now.busy >= l->prev.busy) {
    struct seq_cpu_times delta = {.busy = now.busy - l->prev.busy, .total = now.total - l->prev.total};
    l->cpu_pct = seq_load_outside_cpu_pct(&delta, own_cpu_delta(&l->own_prev, own), sysconf(_SC_CLK_TCK));
  }
  l->prev = now;
  l->have_prev = true;
  l->own_prev = own ? *own : (struct seq_own){0};
  if (own && own->pid && own->has_memory)
    avail = CA_MIN(total, avail + own->anon_bytes / 1024);
  l->mem_pct = 100.0 - 100.0 * (double)avail / (double)total;

  l->have_psi = false;
  _cleanup_free_ char *psi = NULL;
  if (l->paths.psi_memory && ca_read_file(l->paths.psi_memory, PROC_FILE_MAX, &psi, NULL, NULL) == 0 &&
      seq_parse_psi(psi, "full", &l->mem_stall_pct, NULL) == 0)
    l->have_psi = true; /* PSI is optional: kernels before 4.20 or booted with psi=0 have no such file */
  return 0;
}
