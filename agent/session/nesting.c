/* Nesting (nesting.h). An inner session labels what it creates with its own session label and with
 * io.cleanup-agent.outer=<the outermost session>: the outer proxies let such creates through unchanged (the inner
 * session's labels are a session's), and the outermost session's end removes whatever carries its id in either label,
 * so nothing of an inner session outlives the outer one. An inner agent that runs inside its parent's cgroup leaf
 * puts its own leaves inside that leaf: killing the outer session's tree kills the inner trees with it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cgroup.h"
#include "nesting.h"

/* Whether path (a v2 cgroup path) ends in run-<parent>; one ending in run-<parent>/CG_COMMAND_CGROUP (run
 * --contain-containers on a pure v2 host with cgroupfs) is cut back to the leaf. */
static bool in_parent_leaf(char *path, const char *parent) {
  char *last = strrchr(path, '/');
  if (last && streq(last + 1, CG_COMMAND_CGROUP)) {
    *last = '\0';
    last = strrchr(path, '/');
  }
  return last && strncmp(last + 1, "run-", 4) == 0 && streq(last + 5, parent);
}

/* The parent's leaf when /proc/self/cgroup's v2 path is in it, as <cgroup2 mount><path>; else NULL. */
static char *parent_leaf(const char *proc, const char *parent) {
  cg_mounts m = {0};
  char path[256], *dir = NULL;
  _cleanup_free_ char *text = NULL;
  cg_proc_cgroup pc = {0};
  snprintf(path, sizeof(path), "%s/self/cgroup", proc ? proc : "/proc");
  if (cg_mounts_read(proc, &m, NULL) == 0 && m.unified && ca_read_file(path, 65536, &text, NULL, NULL) == 0 &&
      cg_parse_proc_cgroup(text, &pc, NULL) == 0 && pc.unified) {
    if (in_parent_leaf(pc.unified, parent) && asprintf(&dir, "%s%s", m.unified, pc.unified) < 0)
      dir = NULL;
  }
  cg_proc_cgroup_done(&pc);
  cg_mounts_done(&m);
  return dir;
}

void ag_nesting_detect(const char *proc, struct ag_nesting *ret) {
  *ret = (struct ag_nesting){0};
  const char *parent = getenv(AG_ENV_SESSION), *root = getenv(AG_ENV_OUTER);
  if (!parent || !ca_session_id_valid(parent))
    return;
  if (!root || !ca_session_id_valid(root))
    root = parent; /* started by an agent that did not say its root: the parent is the outermost we know */
  snprintf(ret->parent, sizeof(ret->parent), "%s", parent);
  snprintf(ret->root, sizeof(ret->root), "%s", root);
  snprintf(ret->outer_label, sizeof(ret->outer_label), AG_LABEL_OUTER "=%s", root);
  ret->cgroup_dir = parent_leaf(proc, parent);
  const char *engine = getenv(AG_ENV_ENGINE);
  ret->engine = engine && *engine ? engine : NULL;
}

const char *ag_nesting_engine(const struct ag_nesting *n, const char *docker_host) {
  return n->engine ? n->engine : docker_host;
}

void ag_nesting_done(struct ag_nesting *n) {
  free(n->cgroup_dir);
  n->cgroup_dir = NULL;
}

const char *ag_nesting_root(const struct ag_nesting *n, const char *id) {
  return n->root[0] ? n->root : id;
}
