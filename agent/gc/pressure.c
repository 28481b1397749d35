/* run's pressure check: before the command, a look at the engine's disk (statvfs of the data root that /info named,
 * remembered in the state dir after the first run) and address pools (one network list), made in the background
 * while the session starts when the engine client is lazy; under pressure, gc's collection and disk pass run first,
 * and one line says so. */
#include <stdio.h>

#include "disk.h"

/* "disk /var/lib/docker at 91.2% (high mark 85%)" and/or "31 networks hold address pools (default pools: 31)". */
static void describe(const struct ag_disk_usage *u, bool disk_over, unsigned pools, bool pools_close,
                     const struct ag_disk_marks *m, char *buf, size_t len) {
  int n = 0;
  if (disk_over)
    n = snprintf(buf, len, "disk %s at %.1f%% (high mark %u%%)", u->root, u->pct, m->high);
  if (pools_close)
    snprintf(buf + n, len - (size_t)n, "%s%u networks hold address pools (the default pools are %u)", n ? ", " : "",
             pools, AG_DEFAULT_POOLS);
}

void ag_pressure_look(const struct ag_env *env, struct ag_pressure *p) {
  p->looked = true;
  /* A remote engine's disk is not visible here: only its pools are looked at, and nothing is said every run. */
  p->disk_over = ag_disk_usage_quick(env, &p->usage, NULL) == 0 && p->usage.pct > p->marks->high;
  p->pools_close =
      dk_network_pools_used(env->dk, &p->pools, NULL) == 0 && p->pools + AG_POOLS_MARGIN >= AG_DEFAULT_POOLS;
}

void ag_pressure_check(const struct ag_env *env, struct ag_pressure *p) {
  if (!env->dk || !env->state)
    return;
  /* Once the connection is done, what a look in its thread wrote is ours to read; without an engine the look is made
   * here (the disk of a remembered data root is still seen). */
  (void)dk_client_connect(env->dk, NULL);
  if (!p->looked)
    ag_pressure_look(env, p);
  if (!p->disk_over && !p->pools_close)
    return;
  const struct ag_disk_marks *m = p->marks;
  char why[1024] = "";
  describe(&p->usage, p->disk_over, p->pools, p->pools_close, m, why, sizeof(why));
  struct ag_gc_totals t = {0};
  if (ag_gc_collect(env, m, &t) < 0) {
    ca_log_notice("engine under pressure (%s); another gc is collecting", why);
    return;
  }
  struct ag_disk_usage after = p->usage;
  char now[64] = "";
  if (p->disk_over && ag_disk_usage_quick(env, &after, NULL) == 0)
    snprintf(now, sizeof(now), "; disk now %.1f%%", after.pct);
  ca_log_notice("engine under pressure (%s): collected dead sessions first: removed %u (%u image%s)%s%s", why,
                t.removed + t.images, t.images, t.images == 1 ? "" : "s",
                t.failed ? ", some could not be removed (see gc)" : "", now);
}
