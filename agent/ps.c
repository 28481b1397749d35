/* ps: this host's sessions, from the state dir, the cgroup tree and the engine. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "collect.h"
#include "commands.h"
#include "config.h"
#include "options.h"

struct ps_row {
  char id[AG_SESSION_ID_LEN + 1];
  struct ag_registry reg;
  bool have_reg, alive;
  bool have_stats;
  cg_stats stats;
  char *unit; /* the session's systemd scope, NULL without one */
  unsigned containers;
};

int ag_parse_format(const char *cmd, const char *s, bool *ret_json) {
  if (streq(s, "json") || streq(s, "table")) {
    *ret_json = streq(s, "json");
    return 0;
  }
  fprintf(stderr, "cleanup-agent: %s: --format '%s': use table or json\n", cmd, s);
  return -EINVAL;
}

/* Alive means its lease lock is held; probing takes the lock of a dead session for a moment only. */
bool ag_session_alive(struct ag_state *state, const char *id) {
  _cleanup_close_ int fd = -1;
  return ag_session_lock(state, id, false, &fd, NULL) == -EWOULDBLOCK;
}

static void fill_row(struct ps_row *row, const struct ag_env *env, const struct dk_list *containers) {
  _cleanup_error_ ca_error *err = NULL;
  row->alive = ag_session_alive(env->state, row->id);
  if (ag_registry_load(env->state, row->id, &row->reg, &err) == 0)
    row->have_reg = true;
  else if (err && err->code != ENOENT)
    ca_log_warning("%s", err->msg);
  if (env->cg && cg_root_tracking(env->cg) == CG_TRACK_CGROUP) {
    _cleanup_cg_leaf_ cg_leaf *leaf = NULL;
    if (cg_leaf_open(env->cg, row->id, &leaf, NULL) == 0 && cg_leaf_stats(leaf, &row->stats, NULL) == 0)
      row->have_stats = true;
    if (leaf && cg_leaf_unit(leaf))
      row->unit = strdup(cg_leaf_unit(leaf)); /* NULL when out of memory: then not shown */
  }
  for (size_t i = 0; containers && i < containers->n; i++) {
    const char *s = dk_item_label(&containers->items[i], AG_LABEL_SESSION);
    if (s && streq(s, row->id))
      row->containers++;
  }
}

static void format_age(int64_t created, char buf[static 32]) {
  int64_t age = created ? (int64_t)time(NULL) - created : -1;
  if (age < 0)
    snprintf(buf, 32, "-");
  else
    (void)ca_format_duration((uint64_t)age * 1000000u, buf);
}

/* Whether a shell takes arg as one word as it is. */
static bool shell_plain(const char *arg) {
  return arg[0] && arg[strspn(arg, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_@%+=:,./-")] == '\0';
}

/* One argument as a shell would take it back: as it is, in '...', or, with a control character (a script's
 * newlines), in $'...' with \n, \t and \xHH, so that a command stays on its line. */
static void append_quoted(ca_buf *b, const char *arg) {
  if (shell_plain(arg)) {
    (void)ca_buf_appendf(b, NULL, "%s", arg); /* cut below at the cap on purpose */
    return;
  }
  bool control = false;
  for (const unsigned char *p = (const unsigned char *)arg; *p; p++)
    control = control || *p < 0x20 || *p == 0x7f;
  (void)ca_buf_appendf(b, NULL, "%s", control ? "$'" : "'");
  for (const unsigned char *p = (const unsigned char *)arg; *p; p++) {
    if (!control)
      (void)ca_buf_appendf(b, NULL, "%s", *p == '\'' ? "'\\''" : (char[]){(char)*p, 0});
    else if (*p == '\n' || *p == '\t')
      (void)ca_buf_appendf(b, NULL, "%s", *p == '\n' ? "\\n" : "\\t");
    else if (*p < 0x20 || *p == 0x7f)
      (void)ca_buf_appendf(b, NULL, "\\x%02x", *p);
    else
      (void)ca_buf_appendf(b, NULL, "%s%c", *p == '\'' || *p == '\\' ? "\\" : "", *p);
  }
  (void)ca_buf_appendf(b, NULL, "'");
}

void ag_ps_command_line(const char *const *argv, size_t width, char *ret, size_t size) {
  ca_buf b = CA_BUF_INIT(64 * 1024);
  for (const char *const *a = argv; a && *a && b.len <= width; a++) {
    if (a != argv)
      (void)ca_buf_appendf(&b, NULL, " ");
    append_quoted(&b, *a);
  }
  const char *s = ca_buf_str(&b);
  if (b.len > width) /* cut where it does not fit, and say so */
    snprintf(ret, size, "%.*s...", (int)(width > 3 ? width - 3 : 0), s);
  else
    snprintf(ret, size, "%s", s);
  ca_buf_free(&b);
}

/* The UNIT column, only where some session has a systemd scope. */
static int unit_width(const struct ps_row *rows, size_t n) {
  int w = 0;
  for (size_t i = 0; i < n; i++)
    if (rows[i].unit)
      w = CA_MAX(w, (int)strlen(rows[i].unit));
  return w ? CA_MAX(w, 4) : 0;
}

static void print_table(struct ps_row *rows, size_t n) {
  int uw = unit_width(rows, n);
  printf("%-32s  %-13s  %-7s  %-5s  %-8s  %5s  %-8s  %10s  ", "SESSION", "MODE", "PID", "ALIVE", "AGE", "PROCS",
         "MEMORY", "CONTAINERS");
  if (uw)
    printf("%-*s  ", uw, "UNIT");
  printf("COMMAND\n");
  for (size_t i = 0; i < n; i++) {
    struct ps_row *r = &rows[i];
    char age[32], mem[32] = "-", pid[16] = "-", procs[16] = "-";
    format_age(r->have_reg ? r->reg.created : 0, age);
    if (r->have_reg)
      snprintf(pid, sizeof(pid), "%d", (int)r->reg.owner.pid);
    if (r->have_stats) {
      snprintf(procs, sizeof(procs), "%llu", (unsigned long long)r->stats.nr_processes);
      if (r->stats.has_memory)
        ca_format_size(r->stats.memory_current, mem);
    }
    char cmd[AG_PS_COMMAND_WIDTH + 1];
    ag_ps_command_line(r->have_reg ? (const char *const *)r->reg.command : NULL, AG_PS_COMMAND_WIDTH, cmd, sizeof(cmd));
    printf("%-32s  %-13s  %-7s  %-5s  %-8s  %5s  %-8s  %10u  ", r->id, r->have_reg ? r->reg.mode : "?", pid,
           r->alive ? "yes" : "no", age, procs, mem, r->containers);
    if (uw)
      printf("%-*s  ", uw, r->unit ? r->unit : "-");
    printf("%s\n", cmd);
  }
}

static void print_json(struct ps_row *rows, size_t n) {
  cJSON *arr = cJSON_CreateArray();
  for (size_t i = 0; arr && i < n; i++) {
    struct ps_row *r = &rows[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(arr, o);
    cJSON_AddStringToObject(o, "session", r->id);
    cJSON_AddBoolToObject(o, "alive", r->alive);
    cJSON_AddNumberToObject(o, "containers", r->containers);
    if (r->unit)
      cJSON_AddStringToObject(o, "unit", r->unit);
    if (r->have_reg) {
      cJSON_AddStringToObject(o, "mode", r->reg.mode);
      cJSON_AddNumberToObject(o, "owner_pid", r->reg.owner.pid);
      cJSON_AddNumberToObject(o, "created", (double)r->reg.created);
      cJSON_AddNumberToObject(o, "age_seconds", (double)((int64_t)time(NULL) - r->reg.created));
      cJSON *cmd = cJSON_AddArrayToObject(o, "command");
      for (char **a = r->reg.command; a && *a; a++)
        cJSON_AddItemToArray(cmd, cJSON_CreateString(*a));
    }
    if (r->have_stats) {
      cJSON_AddNumberToObject(o, "processes", (double)r->stats.nr_processes);
      if (r->stats.has_memory)
        cJSON_AddNumberToObject(o, "memory_bytes", (double)r->stats.memory_current);
    }
  }
  char *text = cJSON_Print(arr);
  if (text)
    printf("%s\n", text);
  free(text);
  cJSON_Delete(arr);
}

/* One line per file set aside in the state dir: what it is, since when, and when gc removes it. */
static void name_aside(struct ag_state *state) {
  _cleanup_free_ struct ag_aside *v = NULL;
  size_t n = 0;
  _cleanup_error_ ca_error *err = NULL;
  if (ag_state_list_aside(state, &v, &n, &err) < 0) {
    ca_log_warning("ps: %s", err->msg);
    return;
  }
  char keep[32];
  (void)ca_format_duration((uint64_t)AG_ASIDE_KEEP_SECONDS * 1000000u, keep);
  for (size_t i = 0; i < n; i++) {
    char age[32];
    format_age(v[i].since, age);
    ca_log_notice("ps: %s/%s: %s of session %s, set aside %s ago; gc removes it once %s old", state->sessions,
                  v[i].name, streq(v[i].why, "corrupt") ? "a corrupt registry" : "a symbolic link planted in the place",
                  v[i].id, age, keep);
  }
}

int ag_ps_parse_opts(int argc, char **argv, bool *ret_json) {
  const char *format = NULL;
  /* --format has no variable (cleanup-agent-ps(1)): the output's reader chooses it, not the environment. */
  const struct ag_option table[] = {AG_OPT_VALUE("format", NULL, &format), {}};
  const struct ag_options spec = {.command = "ps", .options = table, .usage_exit = AG_EXIT_USAGE};
  int next;
  int r = ag_options_parse(&spec, argc, argv, &next);
  if (r == AG_OPTIONS_HELP)
    printf("Usage: " AG_PROGRAM " ps [--format table|json]\n\nLists this host's sessions.\n");
  if (r != 0)
    return r;
  if (next < argc)
    return ag_usage_error("ps", AG_EXIT_USAGE, "unexpected argument '%s'; see '" AG_PROGRAM " ps --help'", argv[next]);
  if (format && ag_parse_format("ps", format, ret_json) < 0)
    return AG_EXIT_USAGE;
  return 0;
}

int ag_cmd_ps(const struct ag_globals *g, int argc, char **argv) {
  bool json = false;
  int r = ag_ps_parse_opts(argc, argv, &json);
  if (r != 0)
    return r == AG_OPTIONS_HELP ? AG_EXIT_OK : r;

  _cleanup_error_ ca_error *err = NULL;
  struct ag_env env = {0};
  int rc = AG_EXIT_FAILED;
  _cleanup_strv_free_ char **ids = NULL;
  _cleanup_(dk_list_freep) struct dk_list *containers = NULL;
  struct ps_row *rows = NULL;
  size_t n = 0;
  /* ps changes nothing: no state dir or cgroup root made, no registry set aside, no process moved. */
  if (ag_state_open_flags(g->state_dir, AG_STATE_READ_ONLY, &env.state, &err) < 0 ||
      ag_state_list_sessions(env.state, &ids, &err) < 0) {
    ca_log_error("ps: %s", err->msg);
    goto out;
  }
  cg_root_options copts = {.root = g->cgroup_root, .allow_process = true, .open_existing = true};
  AG_CGROUP_NAMES(copts);
  if (cg_root_open(&copts, &env.cg, NULL) < 0)
    env.cg = NULL; /* no cgroup: processes and memory show as "-" */
  struct dk_client_options dopts = {.host = g->docker_host};
  if (ids[0] && dk_client_new(&dopts, &env.dk, NULL) == 0) {
    /* One list call for every session's containers. */
    const struct dk_filter f[] = {{"label", AG_LABEL_SESSION}, {NULL, NULL}};
    if (dk_list(env.dk, DK_CONTAINER, f, &containers, &err) < 0) {
      ca_log_warning("ps: %s", err->msg);
      ca_error_free(TAKE_PTR(err));
    }
  }
  while (ids[n])
    n++;
  rows = calloc(n + 1, sizeof(*rows));
  if (!rows)
    goto out;
  for (size_t i = 0; i < n; i++) {
    memcpy(rows[i].id, ids[i], sizeof(rows[i].id));
    fill_row(&rows[i], &env, containers);
  }
  if (json)
    print_json(rows, n);
  else
    print_table(rows, n);
  name_aside(env.state);
  rc = AG_EXIT_OK;
out:
  for (size_t i = 0; rows && i < n; i++) {
    ag_registry_done(&rows[i].reg);
    free(rows[i].unit);
  }
  free(rows);
  dk_client_free(env.dk);
  cg_root_free(env.cg);
  ag_state_free(env.state);
  return rc;
}
