/* gc's options (each but --dry-run and --format also from a CLEANUP_AGENT_* variable, bound by name through
 * options.h) and its usage. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "gc.h"
#include "options.h"

/* gc --help. */
static void gc_usage(void) {
  fputs("Usage: cleanup-agent gc [--older-than DUR] [--dry-run] [--format table|json] [--metrics-file PATH]\n"
        "                        [--parallel N] [--disk-high PCT] [--disk-low PCT] [--build-cache-keep SIZE]\n\n"
        "Removes the containers, networks, volumes, cgroups and registry files of sessions that are provably\n"
        "dead (this host), rebooted away, expired (--ttl, any host) or older than --older-than; images only\n"
        "under --disk-high; never anything without a valid io.cleanup-agent.session label, never\n"
        "io.cleanup-agent.keep=true.\n"
        "Registry files set aside as corrupt go once 7 days old (or older than --older-than).\n"
        "--parallel N: deletes in flight (1 to 64, default 32). Running containers are removed with a forced\n"
        "DELETE: the engine kills them.\n"
        "--disk-high PCT, --disk-low PCT (85% and 80% when only one is given): when the file system of the\n"
        "engine's data root is above the high mark, images built in sessions go, least recently used first,\n"
        "until it is under the low mark: never one a container uses, never keep=true, never an unlabeled one.\n"
        "Only where the data root is visible (a local engine); else one line says so and nothing goes.\n"
        "--build-cache-keep SIZE: prunes the engine's build cache down to SIZE (10G).\n"
        "--dry-run shows the plan: what would go, with sizes, and the usage expected after.\n"
        "Exit 0 when everything collectable went, 1 when something is left.\n",
        stdout);
}

#define gc_usage_error(...) ag_usage_error("gc", AG_EXIT_USAGE, __VA_ARGS__)

/* The options that need a conversion or a check, as given (the variable's, then the flag's). */
struct gc_raw {
  const char *older, *format, *parallel, *high, *low, *cache;
};

/* Converts and checks what the table left as text. */
static int check_values(struct gc_opts *o, const struct gc_raw *v) {
  _cleanup_error_ ca_error *err = NULL;
  uint64_t parallel = AG_GC_DEFAULT_PARALLEL;
  if (v->format && ag_parse_format("gc", v->format, &o->json) < 0)
    return AG_EXIT_USAGE;
  if ((v->older && ca_parse_duration(v->older, &o->older_than_usec, &err) < 0) ||
      (v->parallel && ca_parse_uint(v->parallel, "--parallel", 1, 64, &parallel, &err) < 0) ||
      ag_disk_marks_parse(v->high, v->low, &o->disk, &err) < 0 ||
      (v->cache && !streq(v->cache, "0") && ca_parse_size(v->cache, &o->disk.build_cache_keep, &err) < 0))
    return gc_usage_error("%s", err->msg);
  o->parallel = (unsigned)parallel;
  o->disk.build_cache_set = v->cache != NULL;
  return 0;
}

int ag_gc_parse_opts(int argc, char **argv, struct gc_opts *o) {
  struct gc_raw v = {0};
  /* --dry-run and --format have no variable (cleanup-agent-gc(1)). */
  const struct ag_option table[] = {
      AG_OPT_VALUE("older-than", "CLEANUP_AGENT_OLDER_THAN", &v.older),
      AG_OPT_FLAG("dry-run", NULL, &o->dry_run),
      AG_OPT_VALUE("format", NULL, &v.format),
      AG_OPT_VALUE("metrics-file", "CLEANUP_AGENT_METRICS_FILE", &o->metrics),
      AG_OPT_VALUE("parallel", "CLEANUP_AGENT_PARALLEL", &v.parallel),
      AG_OPT_VALUE("disk-high", "CLEANUP_AGENT_DISK_HIGH", &v.high),
      AG_OPT_VALUE("disk-low", "CLEANUP_AGENT_DISK_LOW", &v.low),
      AG_OPT_VALUE("build-cache-keep", "CLEANUP_AGENT_BUILD_CACHE_KEEP", &v.cache),
      {},
  };
  const struct ag_options spec = {.command = "gc", .options = table, .usage_exit = AG_EXIT_USAGE};
  int next;
  int r = ag_options_parse(&spec, argc, argv, &next);
  if (r == AG_OPTIONS_HELP) {
    gc_usage();
    return -1;
  }
  if (r != 0)
    return r;
  if (next < argc)
    return gc_usage_error("unexpected argument '%s'; see '" AG_PROGRAM " gc --help'", argv[next]);
  return check_values(o, &v);
}
