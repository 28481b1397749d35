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
  fprintf(stderr, AG_PROGRAM ": %s: ", command);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  return exit_code;
}

#define usage_error(spec, ...) ag_usage_error((spec)->command, (spec)->usage_exit, __VA_ARGS__)

/* One value for option o, from its variable or the command line (a flag's value is its variable's, else NULL). */
static int take(const struct ag_options *spec, const struct ag_option *o, const char *value) {
  _cleanup_error_ ca_error *err = NULL;
  switch (o->kind) {
    case AG_OPTION_VALUE:
      *o->value = value;
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
    int r = take(spec, o, v);
    if (r != 0)
      return r;
  }
  return 0;
}

int ag_options_parse(const struct ag_options *spec, int argc, char **argv, int *ret_next) {
  size_t n = 0;
  while (spec->options[n].name)
    n++;
  _cleanup_free_ struct option *longopts = calloc(n + 2, sizeof(*longopts));
  if (!longopts)
    return usage_error(spec, "out of memory");
  for (size_t i = 0; i < n; i++)
    longopts[i] = (struct option){spec->options[i].name,
                                  spec->options[i].kind == AG_OPTION_FLAG ? no_argument : required_argument, NULL,
                                  OPTION_BASE + (int)i};
  longopts[n] = (struct option){"help", no_argument, NULL, 'h'};

  int r = take_environment(spec);
  if (r != 0)
    return r;
  int c;
  optind = 1;
  opterr = 0; /* our own one-line messages instead of getopt's */
  while ((c = getopt_long(argc, argv, spec->stop_at_operand ? "+:h" : ":h", longopts, NULL)) != -1) {
    if (c == 'h')
      return AG_OPTIONS_HELP;
    if (c == ':')
      return usage_error(spec, "option '%s' needs a value; see '" AG_PROGRAM " %s --help'", argv[optind - 1],
                         spec->command);
    if (c < OPTION_BASE || c >= OPTION_BASE + (int)n)
      return usage_error(spec, "unknown option '%s'; see '" AG_PROGRAM " %s --help'", argv[optind - 1], spec->command);
    const struct ag_option *o = &spec->options[c - OPTION_BASE];
    if ((r = take(spec, o, o->kind == AG_OPTION_FLAG ? NULL : optarg)) != 0)
      return r;
  }
  *ret_next = optind;
  return 0;
}
