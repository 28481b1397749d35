/* gc's options (options.c), parsed apart from the collection (gc.c) so that tests reach them without an engine. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "disk.h"

/* Requests in flight by default: the engine removes running containers faster the more it gets at once (the docker
 * CLI sends them all); 16 was measured at 2.7x the CLI's time for 200 containers, 50 on par with it. */
#define AG_GC_DEFAULT_PARALLEL 32

struct gc_opts {
  uint64_t older_than_usec;
  bool dry_run, json;
  const char *metrics;
  unsigned parallel;
  struct ag_disk_marks disk;
};

/* Parses gc's options (argv[0] is "gc"): 0; -1 after --help printed its usage on stdout; or, after one line on
 * stderr, the exit code of a usage error. o points into argv afterwards. */
int ag_gc_parse_opts(int argc, char **argv, struct gc_opts *o);
