/* container-seq helpers: results, the checkpoint file, the host-load sampler and the JUnit report.
 * Parsers take buffers, not paths, so that unit tests feed them literal text. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common.h"

/* ---- results ----------------------------------------------------------------------------------------------- */

enum seq_outcome { SEQ_PENDING = 0, SEQ_PASS, SEQ_FAIL };
enum seq_reason { SEQ_REASON_EXIT = 0, SEQ_REASON_TIMEOUT, SEQ_REASON_OOM };

/* What one test file did. Strings are owned by the result. */
struct seq_result {
  enum seq_outcome outcome;
  enum seq_reason reason;
  int exit_code;
  uint64_t duration_usec;
  char *message; /* FAIL: "exit 1", "timeout after 3s", "OOM-killed at 64M"; NULL for PASS */
  char *tail;    /* the last lines of the test's output; NULL when it printed nothing */
};
void seq_result_done(struct seq_result *r);

/* ---- checkpoint -------------------------------------------------------------------------------------------- */

/* A 64-bit FNV-1a hash of the working directory and the file list, in 16 hex digits: names the default checkpoint.
 * Not a security boundary: the checkpoint itself records the list and is checked against it. */
void seq_files_hash(const char *cwd, const char *const *files, size_t n, char ret[static 17]);

/* Serialises the file list and the results (caller frees). */
char *seq_checkpoint_format(const char *const *files, size_t n, const struct seq_result *results, const char *session);
/* Parses a checkpoint into results (n zeroed slots). ESTALE when it was made for another file list (the message
 * says how the lists differ), EINVAL when it is not a checkpoint. Results are only filled on success. */
int seq_checkpoint_parse(const char *text, size_t len, const char *const *files, size_t n,
                         struct seq_result *ret_results, ca_error **err);

/* ---- host load --------------------------------------------------------------------------------------------- */

/* Busy and total jiffies of the "cpu" line of /proc/stat (busy = total - idle - iowait). */
struct seq_cpu_times {
  uint64_t busy, total;
};
int seq_parse_proc_stat(const char *text, struct seq_cpu_times *ret, ca_error **err);
/* MemTotal and MemAvailable of /proc/meminfo, in KiB. */
int seq_parse_meminfo(const char *text, uint64_t *ret_total_kib, uint64_t *ret_available_kib, ca_error **err);
/* The avg10 of the "some" or "full" line of a /proc/pressure file, in percent. */
int seq_parse_psi(const char *text, const char *line, double *ret_avg10, ca_error **err);

/* Where the sampler reads; every path is a runtime parameter so tests can feed it files. */
struct seq_load_paths {
  const char *proc_stat;  /* /proc/stat */
  const char *meminfo;    /* /proc/meminfo */
  const char *psi_memory; /* /proc/pressure/memory; absence is fine (kernels without PSI) */
};
/* The session's own test while it runs: its container's main process and what that container's cgroup used. Its
 * load is the suite's own, not the host's: self-protection judges what is left. */
struct seq_own {
  pid_t pid; /* 0: no test runs, or its usage cannot be read */
  uint64_t cpu_usec;
  uint64_t anon_bytes;
  bool has_memory; /* anon_bytes is known */
};
struct seq_load {
  struct seq_load_paths paths;
  struct seq_cpu_times prev;
  bool have_prev;
  struct seq_own own_prev;
  /* The last sample, without the session's own test. cpu_pct is over the interval since the previous sample (0 on the
   * first). */
  double cpu_pct, mem_pct, mem_stall_pct;
  bool have_psi;
};
/* The CPU busy percent of an interval that was not own_usec (the session's test's CPU time in the interval):
 * busy and total are /proc/stat clock ticks, ticks_per_sec converts. Never below 0. */
double seq_load_outside_cpu_pct(const struct seq_cpu_times *delta, uint64_t own_usec, long ticks_per_sec);
/* Takes a sample: CPU busy percent since the last call, memory in use (100 - MemAvailable/MemTotal), both without
 * own (NULL: the whole host), and the PSI memory "full" avg10 when the kernel has it. */
int seq_load_sample(struct seq_load *l, const struct seq_own *own, ca_error **err);

/* ---- JUnit ------------------------------------------------------------------------------------------------- */

/* Writes a JUnit report: one testsuite, a testcase per file (PENDING ones as skipped), a failure element with the
 * reason and the tail of the output. Written atomically. */
int seq_junit_write(const char *path, const char *suite_name, const char *const *files, size_t n,
                    const struct seq_result *results, uint64_t timestamp_s, ca_error **err);
