/* run's pressure check: before the command, a look at the engine's disk (statvfs of the data root that /info named,
 * remembered in the state dir after the first run) and address pools (one network list); under pressure, gc's
 * collection and disk pass run first, and one line says so. */
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

void ag_pressure_check(const struct ag_env *env, const struct ag_disk_marks *m) {
  if (!env->dk || !env->state)
    return;
  struct ag_disk_usage u = {0};
  unsigned pools = 0;
  /* A remote engine's disk is not visible here: only its pools are looked at, and nothing is said every run. */
  bool disk_over = ag_disk_usage_quick(env, &u, NULL) == 0 && u.pct > m->high;
  bool pools_close = dk_network_pools_used(env->dk, &pools, NULL) == 0 && pools + AG_POOLS_MARGIN >= AG_DEFAULT_POOLS;
  if (!disk_over && !pools_close)
    return;
  char why[1024] = "";
  describe(&u, disk_over, pools, pools_close, m, why, sizeof(why));
  struct ag_gc_totals t = {0};
  if (ag_gc_collect(env, m, &t) < 0) {
    ca_log_notice("engine under pressure (%s); another gc is collecting", why);
    return;
  }
  struct ag_disk_usage after = u;
  char now[64] = "";
  if (disk_over && ag_disk_usage_quick(env, &after, NULL) == 0)
    snprintf(now, sizeof(now), "; disk now %.1f%%", after.pct);
  ca_log_notice("engine under pressure (%s): collected dead sessions first: removed %u (%u image%s)%s%s", why,
                t.removed + t.images, t.images, t.images == 1 ? "" : "s",
                t.failed ? ", some could not be removed (see gc)" : "", now);
}
