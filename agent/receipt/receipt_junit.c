/* The receipt as JUnit XML (run --junit): one testcase per leaked resource or process, named by its creator, each
 * failing with what happened to it, so that CI pages show leaks next to the tests. */
#include <stdio.h>
#include <string.h>

#include "receipt.h"

#define JUNIT_MAX (64 * 1024 * 1024)

static int esc(ca_buf *b, const char *s, ca_error **err) {
  return ca_xml_escape(b, s, strlen(s), err);
}

/* <testcase classname="cleanup-agent.leaks" name="NAME"><failure type="TYPE" message="MSG">MSG</failure></testcase> */
static int testcase(ca_buf *b, const char *name, const char *type, const char *msg, ca_error **err) {
  int r = ca_buf_appendf(b, err, "  <testcase classname=\"cleanup-agent.leaks\" name=\"");
  if (r >= 0)
    r = esc(b, name, err);
  if (r >= 0)
    r = ca_buf_appendf(b, err, "\" time=\"0\">\n    <failure type=\"%s\" message=\"", type);
  if (r >= 0)
    r = esc(b, msg, err);
  if (r >= 0)
    r = ca_buf_appendf(b, err, "\">");
  if (r >= 0)
    r = esc(b, msg, err);
  return r < 0 ? r : ca_buf_appendf(b, err, "</failure>\n  </testcase>\n");
}

static int resource_case(ca_buf *b, const struct ag_receipt_resource *res, ca_error **err) {
  char creator[256], name[512], msg[1024], cmd[256] = "";
  ag_receipt_creator_name(&res->creator, creator, sizeof(creator));
  const char *kind = ag_receipt_kind_name(res->kind);
  snprintf(name, sizeof(name), "%s: %s %s", creator, kind, res->name ? res->name : res->id);
  if (res->creator.cmdline_len)
    ag_receipt_cmdline_text(res->creator.cmdline, res->creator.cmdline_len, cmd, sizeof(cmd));
  const char *how = res->outcome == AG_RECEIPT_KEPT          ? "was kept (io.cleanup-agent.keep=true)"
                    : res->outcome == AG_RECEIPT_NOT_REMOVED ? "could not be removed"
                                                             : "was left for the session's end to remove";
  bool named_by_pid = !res->creator.compose_project && !res->creator.tc_session; /* the name has the command */
  snprintf(msg, sizeof(msg), "%s %s (image %s) %s%s%s; created by %s%s%s", kind, res->id, res->image ? res->image : "-",
           how, res->error ? ": " : "", res->error ? res->error : "", creator, *cmd && !named_by_pid ? ", " : "",
           *cmd && !named_by_pid ? cmd : "");
  return testcase(b, name, ag_receipt_outcome_name(res->outcome), msg, err);
}

static int process_case(ca_buf *b, const struct ag_receipt_process *p, ca_error **err) {
  char cmd[160] = "", name[256], msg[512];
  if (p->cmdline_len)
    ag_receipt_cmdline_text(p->cmdline, p->cmdline_len, cmd, sizeof(cmd));
  snprintf(name, sizeof(name), "pid %d (%s): process", (int)p->pid, *cmd ? cmd : p->comm);
  snprintf(msg, sizeof(msg), "process %d (%s) outlived the command and was killed by %s", (int)p->pid,
           p->exe ? p->exe : p->comm, p->killed_by);
  return testcase(b, name, "process", msg, err);
}

int ag_receipt_junit(const struct ag_receipt *r, const char *session_id, ca_buf *out, ca_error **err) {
  size_t n = ag_receipt_count_leaked(r) - r->resources_unlisted - r->processes_unlisted;
  int k = ca_buf_appendf(out, err,
                         "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuite name=\"cleanup-agent leaks of "
                         "session %s\" tests=\"%zu\" failures=\"%zu\" errors=\"0\" skipped=\"0\" time=\"0\">\n",
                         session_id, n, n);
  for (size_t i = 0; k >= 0 && i < r->n_resources; i++)
    if (ag_receipt_resource_leaked(&r->resources[i]))
      k = resource_case(out, &r->resources[i], err);
  for (size_t i = 0; k >= 0 && i < r->n_processes; i++)
    if (ag_receipt_process_leaked(&r->processes[i]))
      k = process_case(out, &r->processes[i], err);
  return k < 0 ? k : ca_buf_appendf(out, err, "</testsuite>\n");
}

int ag_receipt_junit_write(const struct ag_receipt *r, const char *session_id, const char *path, ca_error **err) {
  ca_buf b = CA_BUF_INIT(JUNIT_MAX);
  int k = ag_receipt_junit(r, session_id, &b, err);
  if (k >= 0)
    k = ca_write_file_atomic(path, b.data, b.len, 0644, err);
  ca_buf_free(&b);
  return k < 0 ? ca_error_wrap(err, "--junit %s", path) : 0;
}
