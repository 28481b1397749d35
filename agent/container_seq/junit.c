/* The JUnit XML report of container-seq: the schema Jenkins, GitLab and GitHub's test reporters read. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "seq.h"

#define JUNIT_MAX (64 * 1024 * 1024)

static int esc(ca_buf *b, const char *s, ca_error **err) {
  return ca_xml_escape(b, s, strlen(s), err);
}

int seq_junit_write(const char *path, const char *suite_name, const char *const *files, size_t n,
                    const struct seq_result *results, uint64_t timestamp_s, ca_error **err) {
  size_t failures = 0, skipped = 0;
  double total = 0;
  for (size_t i = 0; i < n; i++) {
    failures += results[i].outcome == SEQ_FAIL;
    skipped += results[i].outcome == SEQ_PENDING;
    total += (double)results[i].duration_usec / 1e6;
  }
  char stamp[32] = "";
  time_t t = (time_t)timestamp_s;
  struct tm tm;
  if (gmtime_r(&t, &tm))
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

  ca_buf b = CA_BUF_INIT(JUNIT_MAX);
  int r = ca_buf_appendf(&b, err, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"");
  if (r >= 0)
    r = esc(&b, suite_name, err);
  if (r >= 0)
    r = ca_buf_appendf(&b, err,
                       "\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"%zu\" time=\"%.3f\" "
                       "timestamp=\"%s\">\n",
                       n, failures, skipped, total, stamp);
  for (size_t i = 0; i < n && r >= 0; i++) {
    const struct seq_result *res = &results[i];
    r = ca_buf_appendf(&b, err, "  <testcase classname=\"");
    if (r >= 0)
      r = esc(&b, suite_name, err);
    if (r >= 0)
      r = ca_buf_appendf(&b, err, "\" name=\"");
    if (r >= 0)
      r = esc(&b, files[i], err);
    if (r >= 0)
      r = ca_buf_appendf(&b, err, "\" time=\"%.3f\"", (double)res->duration_usec / 1e6);
    if (r < 0)
      break;
    if (res->outcome == SEQ_PASS) {
      r = ca_buf_appendf(&b, err, "/>\n");
      continue;
    }
    if (res->outcome == SEQ_PENDING) {
      r = ca_buf_appendf(&b, err,
                         ">\n    <skipped message=\"not run: the run was stopped before it\"/>\n"
                         "  </testcase>\n");
      continue;
    }
    static const char *const types[] = {
        [SEQ_REASON_EXIT] = "exit", [SEQ_REASON_TIMEOUT] = "timeout", [SEQ_REASON_OOM] = "oom"};
    r = ca_buf_appendf(&b, err, ">\n    <failure type=\"%s\" message=\"", types[res->reason]);
    if (r >= 0)
      r = esc(&b, res->message ? res->message : "failed", err);
    if (r >= 0)
      r = ca_buf_appendf(&b, err, "\">");
    if (r >= 0)
      r = esc(&b, res->message ? res->message : "failed", err);
    if (r >= 0 && res->tail) {
      r = ca_buf_appendf(&b, err, "\n--- last lines of output ---\n");
      if (r >= 0)
        r = esc(&b, res->tail, err);
    }
    if (r >= 0)
      r = ca_buf_appendf(&b, err, "</failure>\n  </testcase>\n");
  }
  if (r >= 0)
    r = ca_buf_appendf(&b, err, "</testsuite>\n");
  if (r >= 0)
    r = ca_write_file_atomic(path, b.data, b.len, 0644, err);
  ca_buf_free(&b);
  return r < 0 ? ca_error_wrap(err, "--junit %s", path) : 0;
}
