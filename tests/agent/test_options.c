/* Options bound by name: a variable and a flag reach the field their table entry names, whatever the table's order,
 * and the command line overrides the environment. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"

struct opts {
  const char *memory, *report;
  bool proxy;
  const char *labels[8];
  int n_labels;
};

/* A writable argv, as main gets it (getopt may permute it), from literals. */
static char **argv_of(const char *const *a) {
  size_t n = 0;
  while (a[n])
    n++;
  char **v = calloc(n + 1, sizeof(char *));
  for (size_t i = 0; i < n; i++)
    v[i] = strdup(a[i]);
  return v; /* the test process exits soon: not freed */
}
#define ARGV(...) argv_of((const char *const[]){__VA_ARGS__, NULL})

static int add_label(void *userdata, const char *kv, ca_error **err) {
  struct opts *o = userdata;
  if (!strchr(kv, '='))
    return ca_error_set(err, EINVAL, "--label '%s': expected KEY=VALUE", kv);
  o->labels[o->n_labels++] = kv;
  return 0;
}

static int parse(struct opts *o, bool reversed, int argc, char **argv, int *next) {
  const struct ag_option fwd[] = {
      AG_OPT_VALUE("memory", "TEST_OPT_MEMORY", &o->memory),
      AG_OPT_VALUE("report", "TEST_OPT_REPORT", &o->report),
      AG_OPT_FLAG("proxy", "TEST_OPT_PROXY", &o->proxy),
      AG_OPT_EACH("label", NULL, add_label),
      {},
  };
  const struct ag_option rev[] = {
      AG_OPT_EACH("label", NULL, add_label),
      AG_OPT_FLAG("proxy", "TEST_OPT_PROXY", &o->proxy),
      AG_OPT_VALUE("report", "TEST_OPT_REPORT", &o->report),
      AG_OPT_VALUE("memory", "TEST_OPT_MEMORY", &o->memory),
      {},
  };
  const struct ag_options spec = {
      .command = "test", .options = reversed ? rev : fwd, .userdata = o, .stop_at_operand = true, .usage_exit = 125};
  return ag_options_parse(&spec, argc, argv, next);
}

Test(options, bound_by_name_in_any_order) {
  for (int reversed = 0; reversed < 2; reversed++) {
    setenv("TEST_OPT_MEMORY", "1G", 1);
    setenv("TEST_OPT_REPORT", "from-env.json", 1);
    setenv("TEST_OPT_PROXY", "false", 1);
    char **argv = ARGV("test", "--memory", "2G", "--label", "a=1", "--label", "b=2", "--", "cmd", "--memory");
    struct opts o = {0};
    int next = 0;
    cr_assert_eq(parse(&o, reversed, 10, argv, &next), 0);
    cr_assert_str_eq(o.memory, "2G", "the command line overrides the variable");
    cr_assert_str_eq(o.report, "from-env.json");
    cr_assert_not(o.proxy, "TEST_OPT_PROXY=false is false");
    cr_assert_eq(o.n_labels, 2);
    cr_assert_str_eq(o.labels[1], "b=2");
    cr_assert_str_eq(argv[next], "cmd", "options end at '--'; the command's own options are its own");
  }
  unsetenv("TEST_OPT_MEMORY");
  unsetenv("TEST_OPT_REPORT");
  unsetenv("TEST_OPT_PROXY");
}

Test(options, flag_from_variable_or_command_line) {
  char **argv = ARGV("test", "cmd");
  struct opts o = {0};
  int next;
  setenv("TEST_OPT_PROXY", "1", 1);
  cr_assert_eq(parse(&o, false, 2, argv, &next), 0);
  cr_assert(o.proxy);
  setenv("TEST_OPT_PROXY", "", 1); /* empty: unset */
  o.proxy = false;
  char **argv2 = ARGV("test", "--proxy", "cmd");
  cr_assert_eq(parse(&o, false, 3, argv2, &next), 0);
  cr_assert(o.proxy);
  cr_assert_eq(next, 2);
  unsetenv("TEST_OPT_PROXY");
}

/* A flag's variable takes 1/true/yes/on and 0/false/no/off; anything else is a usage error, not "true". */
Test(options, flag_variable_is_parsed_strictly) {
  static const struct {
    const char *value;
    bool want;
  } ok[] = {{"no", false}, {"off", false}, {"0", false}, {"FALSE", false},
            {"yes", true}, {"on", true},   {"1", true},  {"True", true}};
  char **argv = ARGV("test", "cmd");
  int next;
  for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
    struct opts o = {.proxy = !ok[i].want};
    setenv("TEST_OPT_PROXY", ok[i].value, 1);
    cr_assert_eq(parse(&o, false, 2, argv, &next), 0, "TEST_OPT_PROXY=%s", ok[i].value);
    cr_assert_eq(o.proxy, ok[i].want, "TEST_OPT_PROXY=%s", ok[i].value);
  }
  static const char *const bad[] = {"maybe", "2", "nope", "y"};
  for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
    struct opts o = {0};
    setenv("TEST_OPT_PROXY", bad[i], 1);
    cr_assert_eq(parse(&o, false, 2, argv, &next), 125, "TEST_OPT_PROXY=%s was accepted", bad[i]);
    cr_assert_not(o.proxy);
  }
  unsetenv("TEST_OPT_PROXY");
}

Test(options, usage_errors_and_help) {
  struct opts o = {0};
  int next;
  char **unknown = ARGV("test", "--bogus", "cmd");
  cr_assert_eq(parse(&o, false, 3, unknown, &next), 125);
  char **missing = ARGV("test", "--memory");
  cr_assert_eq(parse(&o, false, 2, missing, &next), 125);
  char **bad = ARGV("test", "--label", "nokey", "cmd");
  cr_assert_eq(parse(&o, false, 4, bad, &next), 125);
  char **help = ARGV("test", "--help");
  cr_assert_eq(parse(&o, false, 2, help, &next), AG_OPTIONS_HELP);
  char **h = ARGV("test", "-h");
  cr_assert_eq(parse(&o, false, 2, h, &next), AG_OPTIONS_HELP);
}
