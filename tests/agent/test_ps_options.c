/* ps's options: --format sets the output, has no variable, and each bad input is one line on stderr and exit 2
 * before anything is read. No state dir, no engine: ag_ps_parse_opts alone. */
#include <criterion/criterion.h>
#include <stdbool.h>
#include <string.h>

#include "commands.h"
#include "options.h"
#include "said.h"

static char out[4096], err[4096];

/* ps's options of the NULL-terminated args (without "ps"), with CLEANUP_AGENT_FORMAT from format_var (NULL: unset);
 * what it says in out and err. */
static int parse(const char *format_var, const char *const *args, bool *ret_json) {
  static const char *const names[] = {"CLEANUP_AGENT_FORMAT"};
  said_env(names, 1, (const char *const[]){format_var, NULL});
  int argc;
  char **argv = said_argv("ps", args, &argc);
  struct said s;
  said_begin(&s);
  int r = ag_ps_parse_opts(argc, argv, ret_json);
  said_end(&s, out, err, sizeof(out));
  return r;
}
#define PARSE(var, json, ...) parse((var), (const char *const[]){__VA_ARGS__, NULL}, (json))

Test(ps_options, format_chooses_table_or_json) {
  static const struct {
    const char *args[5];
    bool json;
  } cases[] = {
      {{0}, false},
      {{"--format", "json"}, true},
      {{"--format=json"}, true},
      {{"--format", "table"}, false},
      {{"--format", "json", "--format", "table"}, false}, /* the last one given counts, as for every option */
      {{"--form", "json"}, true},                         /* an unambiguous prefix, as getopt_long takes it */
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
    bool json = false;
    cr_expect_eq(parse(NULL, cases[i].args, &json), 0, "case %zu: %s", i, err);
    cr_expect_eq(json, cases[i].json, "case %zu", i);
    cr_expect_str_empty(out, "case %zu", i);
    cr_expect_str_empty(err, "case %zu", i);
  }
}

/* --format has no variable (cleanup-agent-ps(1)): a script reading ps's table gets it whatever its environment. */
Test(ps_options, format_has_no_variable) {
  bool json = false;
  cr_assert_eq(PARSE("CLEANUP_AGENT_FORMAT=json", &json, NULL), 0, "%s", err);
  cr_expect_not(json);
  cr_assert_eq(PARSE("CLEANUP_AGENT_FORMAT=xml", &json, NULL), 0, "%s", err);
  cr_expect_str_empty(err);
}

Test(ps_options, help_is_the_usage_on_stdout) {
  static const char *const helps[][3] = {{"--help"}, {"-h"}, {"--format", "xml", "--help"}, {"--help", "--bogus"}};
  for (size_t i = 0; i < sizeof(helps) / sizeof(helps[0]); i++) {
    bool json = false;
    cr_expect_eq(parse(NULL, helps[i], &json), AG_OPTIONS_HELP, "case %zu", i);
    cr_expect_str_eq(out, "Usage: cleanup-agent ps [--format table|json]\n\nLists this host's sessions.\n");
    cr_expect_str_empty(err, "case %zu", i);
  }
}

#define HELP_HINT "; see 'cleanup-agent ps --help'"

/* Each bad input: exactly this one line on stderr, nothing on stdout, exit 2. */
Test(ps_options, each_bad_input_is_one_line_and_exit_2) {
  static const struct {
    const char *args[4];
    const char *line;
  } bad[] = {
      {{"--format"}, "option '--format' needs a value" HELP_HINT},
      {{"--format", "xml"}, "--format 'xml': use table or json"},
      {{"--format", ""}, "--format '': use table or json"},
      {{"--format="}, "--format '': use table or json"},
      {{"--format", "JSON"}, "--format 'JSON': use table or json"},
      {{"--bogus"}, "unknown option '--bogus'" HELP_HINT},
      {{"-x"}, "unknown option '-x'" HELP_HINT},
      {{"--bogus", "--help"}, "unknown option '--bogus'" HELP_HINT},
      {{"--log-level", "debug"}, "unknown option '--log-level'" HELP_HINT}, /* a global option: before ps */
      {{"extra"}, "unexpected argument 'extra'" HELP_HINT},
      {{"--format", "json", "extra"}, "unexpected argument 'extra'" HELP_HINT},
      {{"--format", "xml", "extra"}, "unexpected argument 'extra'" HELP_HINT}, /* the shape first, then values */
  };
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    bool json = false;
    int r = parse(NULL, bad[i].args, &json);
    char want[256];
    snprintf(want, sizeof(want), "cleanup-agent: ps: %s\n", bad[i].line);
    cr_expect_eq(r, 2, "case %zu (%s): exit %d", i, bad[i].args[0], r);
    cr_expect_str_eq(err, want, "case %zu (%s)", i, bad[i].args[0]);
    cr_expect_str_empty(out, "case %zu", i);
  }
}
