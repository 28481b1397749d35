/* Command options bound by name: each option names its long form, its CLEANUP_AGENT_* variable and where its value
 * goes, so that reordering a table never rebinds a flag or a variable. The environment is read first and the command
 * line overrides it; an empty variable counts as unset. */
#pragma once

#include <stdbool.h>

#include "common.h"

enum ag_option_kind {
  AG_OPTION_VALUE, /* takes a value: *value holds the last one given (the variable's, then the command line's) */
  AG_OPTION_FLAG,  /* takes no value: *flag is true when given; its variable is 1/true/yes/on or 0/false/no/off */
  AG_OPTION_EACH,  /* takes a value, handed to each() every time it is given (repeatable options) */
};

struct ag_option {
  const char *name; /* long name without "--"; NULL ends the table */
  char letter;      /* its one-letter form ('V' for -V), or 0 */
  const char *env;  /* its CLEANUP_AGENT_* variable, or NULL */
  enum ag_option_kind kind;
  const char **value; /* AG_OPTION_VALUE; left alone when neither the variable nor the flag gives one */
  const char **from;  /* AG_OPTION_VALUE, optional: env when *value came from the variable, NULL from the flag */
  bool *flag;         /* AG_OPTION_FLAG; left alone when neither gives one */
  /* AG_OPTION_EACH: takes one value; a failure is a usage error whose message is err's. */
  int (*each)(void *userdata, const char *value, ca_error **err);
};

#define AG_OPT_VALUE(n, e, p)                                                                                          \
  { .name = (n), .env = (e), .kind = AG_OPTION_VALUE, .value = (p) }
#define AG_OPT_VALUE_FROM(n, e, p, f)                                                                                  \
  { .name = (n), .env = (e), .kind = AG_OPTION_VALUE, .value = (p), .from = (f) }
#define AG_OPT_FLAG(n, e, p)                                                                                           \
  { .name = (n), .env = (e), .kind = AG_OPTION_FLAG, .flag = (p) }
#define AG_OPT_EACH(n, e, f)                                                                                           \
  { .name = (n), .env = (e), .kind = AG_OPTION_EACH, .each = (f) }

struct ag_options {
  const char *command;             /* "run": names the command in messages; NULL: the global options */
  const struct ag_option *options; /* ends with {NULL} */
  void *userdata;                  /* passed to each() */
  bool stop_at_operand;            /* options end at the first operand (run: the command's own options follow) */
  int usage_exit;                  /* exit code of a usage error */
};

/* -h or --help was given: the caller prints its usage and exits 0. */
#define AG_OPTIONS_HELP (-1)

/* Parses the options of argv[1..argc): 0 with *ret_next the index of the first operand; AG_OPTIONS_HELP; or, after
 * one line on stderr ("cleanup-agent: CMD: unknown option '--x'; see 'cleanup-agent CMD --help'"; without CMD for
 * the global options), usage_exit. */
int ag_options_parse(const struct ag_options *spec, int argc, char **argv, int *ret_next);

/* One line on stderr, "cleanup-agent: COMMAND: <what>" ("cleanup-agent: <what>" when command is NULL), and returns
 * exit_code: a usage error. */
int ag_usage_error(const char *command, int exit_code, const char *fmt, ...) _printf_(3, 4);
