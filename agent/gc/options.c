/* gc's options, each also from a CLEANUP_AGENT_* variable, and its usage. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "gc.h"

/* A variable that is set and not empty (an empty one counts as unset, as for every command). */
static const char *env_set(const char *name) {
  const char *v = getenv(name);
  return v && *v ? v : NULL;
}

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

int ag_gc_parse_opts(int argc, char **argv, struct gc_opts *o) {
  enum { OPT_OLDER = 0x100, OPT_DRY, OPT_FORMAT, OPT_METRICS, OPT_PARALLEL, OPT_HIGH, OPT_LOW, OPT_CACHE };
  static const struct option options[] = {
      {"older-than", required_argument, NULL, OPT_OLDER},
      {"dry-run", no_argument, NULL, OPT_DRY},
      {"format", required_argument, NULL, OPT_FORMAT},
      {"metrics-file", required_argument, NULL, OPT_METRICS},
      {"parallel", required_argument, NULL, OPT_PARALLEL},
      {"disk-high", required_argument, NULL, OPT_HIGH},
      {"disk-low", required_argument, NULL, OPT_LOW},
      {"build-cache-keep", required_argument, NULL, OPT_CACHE},
      {"help", no_argument, NULL, 'h'},
      {},
  };
  _cleanup_error_ ca_error *err = NULL;
  uint64_t parallel = AG_GC_DEFAULT_PARALLEL;
  const char *older = getenv("CLEANUP_AGENT_OLDER_THAN"), *par = getenv("CLEANUP_AGENT_PARALLEL");
  o->metrics = getenv("CLEANUP_AGENT_METRICS_FILE");
  const char *high = env_set("CLEANUP_AGENT_DISK_HIGH"), *low = env_set("CLEANUP_AGENT_DISK_LOW"),
             *cache = env_set("CLEANUP_AGENT_BUILD_CACHE_KEEP");
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
    switch (c) {
      case OPT_OLDER:
        older = optarg;
        break;
      case OPT_DRY:
        o->dry_run = true;
        break;
      case OPT_FORMAT:
        if (ag_parse_format("gc", optarg, &o->json) < 0)
          return AG_EXIT_USAGE;
        break;
      case OPT_METRICS:
        o->metrics = optarg;
        break;
      case OPT_PARALLEL:
        par = optarg;
        break;
      case OPT_HIGH:
        high = optarg;
        break;
      case OPT_LOW:
        low = optarg;
        break;
      case OPT_CACHE:
        cache = optarg;
        break;
      case 'h':
        gc_usage();
        return -1;
      case ':':
        fprintf(stderr, "cleanup-agent: gc: option '%s' needs a value\n", argv[optind - 1]);
        return AG_EXIT_USAGE;
      default:
        fprintf(stderr, "cleanup-agent: gc: unknown option '%s'; see 'cleanup-agent gc --help'\n", argv[optind - 1]);
        return AG_EXIT_USAGE;
    }
  }
  if (optind < argc) {
    fprintf(stderr, "cleanup-agent: gc: unexpected argument '%s'\n", argv[optind]);
    return AG_EXIT_USAGE;
  }
  if ((older && ca_parse_duration(older, &o->older_than_usec, &err) < 0) ||
      (par && ca_parse_uint(par, "--parallel", 1, 64, &parallel, &err) < 0) ||
      ag_disk_marks_parse(high, low, &o->disk, &err) < 0 ||
      (cache && !streq(cache, "0") && ca_parse_size(cache, &o->disk.build_cache_keep, &err) < 0)) {
    fprintf(stderr, "cleanup-agent: gc: %s\n", err->msg);
    return AG_EXIT_USAGE;
  }
  o->parallel = (unsigned)parallel;
  o->disk.build_cache_set = cache != NULL;
  return 0;
}
