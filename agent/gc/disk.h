/* Images and disk (issue 23): the image policy of a session (--images=remove), gc's disk budget (--disk-high,
 * --disk-low, --build-cache-keep) and run's pressure check. images.c removes a session's images, disk.c measures the
 * engine's data root and plans what goes, pressure.c is run's check at its start. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "collect.h"

#define AG_DISK_HIGH_DEFAULT 85
#define AG_DISK_LOW_DEFAULT 80
/* The engine's default address pools: 172.17-31.0.0/16 (15) and 192.168.0.0/16 in /20s (16). */
#define AG_DEFAULT_POOLS 31
/* "Close to the pools": this many or fewer pools left. */
#define AG_POOLS_MARGIN 3

/* The disk marks (percent of the data root's file system) and the build cache's budget. */
struct ag_disk_marks {
  unsigned high, low;
  uint64_t build_cache_keep;
  bool disk_set;        /* --disk-high or --disk-low given: gc's disk pass runs */
  bool build_cache_set; /* --build-cache-keep given */
};
/* "85%" or "85", 1 to 100, into *ret; the error names what (--disk-high). */
int ag_parse_percent(const char *s, const char *what, unsigned *ret, ca_error **err);
/* Reads --disk-high and --disk-low (either may be NULL: its default) into m, low not above high. */
int ag_disk_marks_parse(const char *high, const char *low, struct ag_disk_marks *m, ca_error **err);

/* The engine's data root and how full its file system is. */
struct ag_disk_usage {
  char root[512];
  uint64_t total, used; /* bytes, as df counts them: used = size - free, total = used + available to users */
  double pct;           /* 100 * used / total: df's Use% */
};
/* Measures the data root of the engine dk (host: its URL): only when the agent sees it, i.e. the engine is on a Unix
 * socket and <root>/image/<driver> is a directory here; else -EREMOTE or the error, with a message saying why. */
int ag_disk_usage(struct dk_client *dk, const char *host, struct ag_disk_usage *ret, ca_error **err);
/* The same for run's pressure check, without /info when <state>/disk-root remembers this engine's data root (written
 * here after each /info; a remembered root that is no longer a data root here is asked again). */
int ag_disk_usage_quick(const struct ag_env *env, struct ag_disk_usage *ret, ca_error **err);

/* The session that built image im through its proxy: its io.cleanup-agent.built-by label when that is a valid session
 * id, else NULL. Images carry no session label of the agent's (a container made from one inherits its labels). */
const char *ag_image_built_by(const struct dk_image *im);
/* The images the engine lists with built-by=<id> (*ret: dk_images_free); the caller re-checks each (ag_image_built_by):
 * the filter is the engine's, the decision ours. */
int ag_images_list_built_by(struct dk_client *dk, const char *id, struct dk_images **ret, ca_error **err);
/* Removes the images session id built (built-by=<id>, not keep=true) that no container uses; an image the engine
 * refuses stays, and one line says which and why. Never fails the collection. *ret_removed counts what went. */
void ag_images_remove_session(struct dk_client *dk, const char *id, unsigned *ret_removed);

/* A gc's disk pass, after its collection: what was removed or would be, and the usage before and after. */
struct ag_disk_item {
  char *id;
  char session[33];
  uint64_t size; /* bytes it frees, as the engine counts them (its own layers) */
  int64_t last;  /* unix seconds: last tagged or created */
  bool done;     /* removed (a dry run: would be) */
  char *error;   /* why the engine refused */
};
struct ag_disk_pass {
  bool ran;      /* the data root was measured */
  bool over;     /* above the high mark */
  char *skipped; /* why there was no disk pass (the data root not visible, ...); NULL when it ran */
  struct ag_disk_usage before;
  double pct_after; /* measured, or expected in a dry run */
  struct ag_disk_item *items;
  size_t n;
  unsigned removed, failed;
  uint64_t pruned;      /* build cache bytes reclaimed (a dry run: at least this many would be) */
  uint64_t build_cache; /* a dry run: the build cache as the engine counts it, before */
  char *prune_error;
};
/* Runs the disk pass with env's engine: above m->high, session images (built-by a session not alive here; never
 * keep=true, never one a container uses) least recently used first until under m->low; then the build cache beyond
 * m->build_cache_keep. going_containers (NULL-terminated or NULL): in a dry run, the containers gc's collection would
 * remove first: they use no image then, and their writable layers count as freed. */
void ag_disk_pass_run(const struct ag_env *env, const struct ag_disk_marks *m, bool dry_run,
                      const char *const *going_containers, struct ag_disk_pass *ret);
void ag_disk_pass_done(struct ag_disk_pass *p);
/* The pass as text on stdout (after gc's table), or into gc's JSON object as "disk". */
void ag_disk_pass_print(const struct ag_disk_pass *p, const struct ag_disk_marks *m, bool dry_run);
void ag_disk_pass_json(const struct ag_disk_pass *p, const struct ag_disk_marks *m, bool dry_run, void *json_object);

/* run's pressure check: the look (a statvfs of the data root, or one /info the first time, and one network list),
 * then what it saw. */
struct ag_pressure {
  const struct ag_disk_marks *marks;
  bool looked; /* ag_pressure_look ran */
  bool disk_over, pools_close;
  struct ag_disk_usage usage;
  unsigned pools;
};
/* The look alone, in any thread that may use env->dk (run makes it the lazy client's first call, in the background
 * while the session starts). */
void ag_pressure_look(const struct ag_env *env, struct ag_pressure *p);
/* When the engine's disk is above p->marks->high or its networks hold all but AG_POOLS_MARGIN of the default pools
 * (looked now unless p->looked), collects as gc does (its rules and its disk pass) and says so in one line. */
void ag_pressure_check(const struct ag_env *env, struct ag_pressure *p);

/* gc.c: gc's collection and disk pass with env's state dir, engine and cgroup root (borrowed), quietly; the totals
 * of what went. Skipped (-EWOULDBLOCK) while another gc runs. */
struct ag_gc_totals {
  unsigned removed, failed, images;
};
int ag_gc_collect(const struct ag_env *env, const struct ag_disk_marks *m, struct ag_gc_totals *ret);
