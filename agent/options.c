/* Command options bound by name (options.h). getopt_long does the scanning; the table entry an option came from is
 * found by its position in the table built here, never by an enum the command keeps. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "config.h"
#include "options.h"

#define OPTION_BASE 0x100 /* getopt_long's val of table entry i: above every short option character */

int ag_usage_error(const char *command, int exit_code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, AG_PROGRAM ": ");
  if (command)
    fprintf(stderr, "%s: ", command);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return exit_code;
}

#define usage_error(spec, ...) ag_usage_error((spec)->command, (spec)->usage_exit, __VA_ARGS__)

/* One value for option o, from its variable (from: its name) or the command line (from: NULL; a flag's value is NULL
 * there). */
static int take(const struct ag_options *spec, const struct ag_option *o, const char *value, const char *from) {
  _cleanup_error_ ca_error *err = NULL;
  switch (o->kind) {
    case AG_OPTION_VALUE:
      *o->value = value;
      if (o->from)
        *o->from = from;
      return 0;
    case AG_OPTION_FLAG:
      if (!value)
        *o->flag = true;
      else if (ca_parse_bool(value, o->env, o->flag, &err) < 0)
        return usage_error(spec, "%s", err ? err->msg : "out of memory");
      return 0;
    case AG_OPTION_EACH:
      if (o->each(spec->userdata, value, &err) < 0)
        return usage_error(spec, "%s", err ? err->msg : "out of memory");
      return 0;
  }
  return 0;
}

/* The environment first, so that the command line overrides it. */
static int take_environment(const struct ag_options *spec) {
  for (const struct ag_option *o = spec->options; o->name; o++) {
    const char *v = o->env ? getenv(o->env) : NULL;
    if (!v || !*v)
      continue;
    int r = take(spec, o, v, o->env);
    if (r != 0)
      return r;
  }
  return 0;
}

/* The entry getopt_long's c stands for: OPTION_BASE + its index for the long form, its letter for the short one. */
static const struct ag_option *option_of(const struct ag_options *spec, size_t n, int c) {
  if (c >= OPTION_BASE && c < OPTION_BASE + (int)n)
    return &spec->options[c - OPTION_BASE];
  for (size_t i = 0; i < n; i++)
    if (spec->options[i].letter && c == spec->options[i].letter)
      return &spec->options[i];
  return NULL;
}

/* getopt_long's tables for spec's n options: -h and --help, then each option's long and one-letter forms. */
static int build_getopt(const struct ag_options *spec, size_t n, struct option **ret_longopts, char **ret_shortopts) {
  _cleanup_free_ struct option *longopts = calloc(n + 2, sizeof(*longopts));
  _cleanup_free_ char *shortopts = calloc(2 * n + 4, 1);
  if (!longopts || !shortopts)
    return -ENOMEM;
  char *p = stpcpy(shortopts, spec->stop_at_operand ? "+:h" : ":h");
  for (size_t i = 0; i < n; i++) {
    const struct ag_option *o = &spec->options[i];
    bool has_arg = o->kind != AG_OPTION_FLAG;
    longopts[i] = (struct option){o->name, has_arg ? required_argument : no_argument, NULL, OPTION_BASE + (int)i};
    if (o->letter) {
      *p++ = o->letter;
      if (has_arg)
        *p++ = ':';
    }
  }
  longopts[n] = (struct option){"help", no_argument, NULL, 'h'};
  *ret_longopts = TAKE_PTR(longopts);
  *ret_shortopts = TAKE_PTR(shortopts);
  return 0;
}

int ag_options_parse(const struct ag_options *spec, int argc, char **argv, int *ret_next) {
  size_t n = 0;
  while (spec->options[n].name)
    n++;
  _cleanup_free_ struct option *longopts = NULL;
  _cleanup_free_ char *shortopts = NULL;
  if (build_getopt(spec, n, &longopts, &shortopts) < 0)
    return usage_error(spec, "out of memory");
  char help[64]; /* where to look: the command's --help, or the global one */
  snprintf(help, sizeof(help), AG_PROGRAM "%s%s --help", spec->command ? " " : "", spec->command ? spec->command : "");

  int r = take_environment(spec);
  if (r != 0)
    return r;
  int c;
  optind = 1;
  opterr = 0; /* our own one-line messages instead of getopt's */
  while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
    if (c == 'h')
      return AG_OPTIONS_HELP;
    if (c == ':')
      return usage_error(spec, "option '%s' needs a value; see '%s'", argv[optind - 1], help);
    const struct ag_option *o = option_of(spec, n, c);
    if (!o)
      return usage_error(spec, "unknown option '%s'; see '%s'", argv[optind - 1], help);
    if ((r = take(spec, o, o->kind == AG_OPTION_FLAG ? NULL : optarg, NULL)) != 0)
      return r;
  }
  *ret_next = optind;
  return 0;
}
