/* check's verdicts (check.c) and their two forms (output.c). */
#pragma once

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "agent.h"

#define CHECK_MAX 16

/* One promise of run on this host: whether it holds, what it rests on, and what would make a "no" a "yes". */
struct check_verdict {
  const char *name;  /* the JSON key: tracking, kill, limit_memory, ... */
  const char *title; /* for people */
  bool ok;
  bool required; /* run needs it with its defaults: a "no" makes check exit 3 */
  char *detail;
  char *fix; /* NULL when ok */
};

struct check_report {
  bool ok; /* every required verdict holds */
  uid_t uid;
  char user[64];
  const char *driver, *mode, *tracking; /* NULL when no cgroup root opened */
  const char *mode_text;                /* the mode for people: "cgroup v2, writable root", ... */
  char *cgroup_root;                    /* NULL under process tracking */
  const char *engine, *engine_source;   /* engine_source: "DOCKER_HOST", "docker context 'x'", ..., "default" */
  bool engine_answers;
  char *engine_version;
  char *state_dir;
  bool state_ok;
  struct check_verdict v[CHECK_MAX];
  size_t n;
};

/* Every verdict for this host and user, decided by the code run uses. */
void ag_check_collect(const struct ag_globals *g, struct check_report *rep);
void ag_check_report_done(struct check_report *rep);

void ag_check_print_table(const struct check_report *rep, FILE *f);
void ag_check_print_json(const struct check_report *rep, FILE *f);
