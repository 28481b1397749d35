/* Images and disk (issue 23) against a private engine whose data root is a small ext4 file system of the test's own
 * (a loop-mounted image under the test's temp dir), filled with images built FROM the test image with a layer of
 * random data: gc --disk-high removes the least recently used session images until under --disk-low and nothing
 * else, --dry-run only says so, --build-cache-keep prunes, run --images=remove removes what its command built unless
 * a container uses it, and run's pressure check collects first when the disk is over its mark. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "private_engine.h"
#include "scenario.h"
#include "scenario_engine.h"
#include "test_label.h"

#define IMAGE "cleanup-test/busybox:latest"
#define DEAD "dddddddddddddddddddddddddddddddd"
#define BLOB_MB 20
#define AG_TEST_LABEL_SESSION "io.cleanup-agent.session"

static struct scenario sc;
static char data[128];
static bool mounted;

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...) {
  char cmd[2048];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof(cmd), fmt, ap);
  va_end(ap);
  cr_assert_eq(system(cmd), 0, "failed: %s", cmd);
}

/* A private engine on a file system of size_mb (0: the temp dir's own). */
static void engine_on_disk(unsigned size_mb) {
  char dir[96];
  snprintf(dir, sizeof(dir), "%s/engine", sc.dir);
  cr_assert_eq(mkdir(dir, 0700), 0);
  snprintf(data, sizeof(data), "%s/data", dir);
  if (size_mb) {
    cr_assert_eq(mkdir(data, 0700), 0);
    sh("truncate -s %uM %s/disk.img && mkfs.ext4 -q -F %s/disk.img && mount -o loop %s/disk.img %s", size_mb, sc.dir,
       sc.dir, sc.dir, data);
    mounted = true;
  }
  snprintf(sc.docker_host, sizeof(sc.docker_host), "unix://%s/docker.sock", dir);
  sc.dockerd = private_engine_start(dir, sc.docker_host);
  sh("docker save " IMAGE " | docker -H %s load -q >/dev/null", sc.docker_host);
  dk_client_free(sc.dk);
  sc.dk = NULL;
  struct dk_client_options o = {.host = sc.docker_host};
  cr_assert_eq(dk_client_new(&o, &sc.dk, NULL), 0);
}

static void setup(void) {
  scenario_setup(&sc);
  mounted = false;
}

static void teardown(void) {
  dk_client_free(sc.dk);
  sc.dk = NULL;
  private_engine_stop(&sc.dockerd); /* nothing when there is none */
  if (mounted)
    (void)umount2(data, MNT_DETACH);
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "rm -rf --one-file-system '%s/engine' '%s/disk.img'", sc.dir, sc.dir);
  (void)!system(cmd);
  scenario_teardown(&sc);
}

TestSuite(disk, .init = setup, .fini = teardown, .timeout = 600 * AG_TIMEOUT_SCALE);

/* df's Use% of the data root's file system. */
static double usage(void) {
  struct statvfs v;
  cr_assert_eq(statvfs(data, &v), 0);
  double used = (double)(v.f_blocks - v.f_bfree), avail = (double)v.f_bavail;
  return 100.0 * used / (used + avail);
}

/* Builds an image FROM the test image with mb MB of random data and the labels (" --label k=v ..."); its id. */
static void build(const char *tag, unsigned mb, const char *labels, char id[static 80]) {
  char cmd[1024];
  snprintf(cmd, sizeof(cmd),
           "printf 'FROM " IMAGE "\\nRUN dd if=/dev/urandom of=/blob bs=1048576 count=%u 2>/dev/null\\n' | "
           "DOCKER_BUILDKIT=0 docker -H %s build --no-cache -q --network none --label %s -t %s %s - 2>/dev/null",
           mb, sc.docker_host, sc.test_label, tag, labels);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  cr_assert_not_null(fgets(id, 80, p), "build %s failed", tag);
  cr_assert_eq(pclose(p), 0, "build %s failed", tag);
  id[strcspn(id, "\n")] = '\0';
  sleep(1); /* last use has a resolution of a second: the order must be clear */
}

static bool image_exists(const char *id) {
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "docker -H %s image inspect %s >/dev/null 2>&1", sc.docker_host, id);
  return system(cmd) == 0;
}

static int run_agent(const char *const *args) {
  return scenario_run(&sc, args);
}

Test(disk, gc_removes_the_least_recently_used_session_images_until_under_the_low_mark) {
  engine_on_disk(512);
  char a[80], b[80], c[80], d[80], unlabeled[80], old[80], kept[80], used[80];
  const char *s = "--label io.cleanup-agent.built-by=" DEAD;
  double before = usage();
  build("s-a", BLOB_MB, s, a);
  double one = usage() - before; /* what one image takes on this file system */
  build("s-b", BLOB_MB, s, b);
  build("s-c", BLOB_MB, s, c);
  build("s-d", BLOB_MB, s, d);
  build("unlabeled", BLOB_MB, "", unlabeled);
  /* As the proxy labeled a build before built-by: the session label alone makes no session image. */
  build("old", BLOB_MB, "--label io.cleanup-agent.session=" DEAD, old);
  build("kept", BLOB_MB, "--label io.cleanup-agent.built-by=" DEAD " --label io.cleanup-agent.keep=true", kept);
  build("used", BLOB_MB, s, used);
  sh("docker -H %s create --network none --label %s %s true >/dev/null", sc.docker_host, sc.test_label, used);
  double full = usage();
  char high[16], low[16];
  snprintf(high, sizeof(high), "%d%%", (int)full - 1);
  snprintf(low, sizeof(low), "%d", (int)(full - 1.5 * one) + 1); /* two images must go, not one */
  cr_log_info("usage %.1f%%, one image %.1f%%: --disk-high %s --disk-low %s", full, one, high, low);

  int rc = run_agent((const char *[]){"gc", "--dry-run", "--disk-high", high, "--disk-low", low, NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  const char *out = scenario_read_text(strcat(strcpy((char[160]){0}, sc.dir), "/out"));
  char a12[16];
  snprintf(a12, sizeof(a12), "%.12s", a + 7);
  cr_assert(strstr(out, a12) && strstr(out, "would-remove"), "the plan names the oldest image: %s", out);
  cr_assert(strstr(scenario_stderr(&sc), "would remove") && strstr(scenario_stderr(&sc), "expected"), "%s",
            scenario_stderr(&sc));
  const char *all[] = {a, b, c, d, unlabeled, old, kept, used};
  for (size_t i = 0; i < 8; i++)
    cr_assert(image_exists(all[i]), "the dry run removed %s", all[i]);

  rc = run_agent((const char *[]){"gc", "--disk-high", high, "--disk-low", low, NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  cr_assert(!image_exists(a) && !image_exists(b), "the two least recently used went: %s", scenario_stderr(&sc));
  cr_assert(image_exists(c) && image_exists(d), "only as many as needed went: %s", scenario_stderr(&sc));
  cr_assert(image_exists(unlabeled) && image_exists(old) && image_exists(kept) && image_exists(used),
            "never unlabeled (or labeled with a session alone), keep or used");
  cr_assert_lt(usage(), atof(low), "under the low mark after: %.1f%%", usage());
}

/* Builds an image FROM the test image with mb MB of random data with BuildKit, whose records are the engine's build
 * cache (the legacy builder keeps none): POST /build?version=2 with the context as a tar, as this host's docker CLI
 * has no buildx. */
static void build_kit(const char *tag, unsigned mb) {
  char log[128];
  snprintf(log, sizeof(log), "%s/build-%s.log", sc.dir, tag);
  sh("d=%s/ctx-%s && mkdir $d && printf 'FROM " IMAGE "\\nRUN dd if=/dev/urandom of=/blob bs=1048576 count=%u "
     "2>/dev/null\\n' >$d/Dockerfile && tar -C $d -cf - Dockerfile | curl -sS --unix-socket %s -X POST -H "
     "'Content-Type: application/x-tar' --data-binary @- 'http://engine/v1.41/build?version=2&networkmode=none&t=%s' "
     ">%s; grep -q '\"Successfully tagged %s:latest' %s || { cat %s; false; }",
     sc.dir, tag, mb, sc.docker_host + strlen("unix://"), tag, log, tag, log, log);
}

/* The build cache as the engine counts it for a prune's keep-storage and as `docker system df` shows it: the sizes of
 * its records that no image shares; and those an image shares (its layers, which a prune leaves). Read from
 * /system/df here, not through the agent's parser. */
struct cache {
  int64_t own, shared;
};
static struct cache cache_now(void) {
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "curl -sS --unix-socket %s http://engine/v1.41/system/df",
           sc.docker_host + strlen("unix://"));
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  static char text[1 << 20];
  size_t n = fread(text, 1, sizeof(text) - 1, p);
  cr_assert_eq(pclose(p), 0, "GET /system/df");
  text[n] = '\0';
  cJSON *df = cJSON_Parse(text), *rec;
  cr_assert_not_null(df, "GET /system/df: %s", text);
  struct cache c = {0};
  cJSON_ArrayForEach(rec, cJSON_GetObjectItem(df, "BuildCache")) {
    int64_t size = (int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(rec, "Size"));
    *(cJSON_IsTrue(cJSON_GetObjectItem(rec, "Shared")) ? &c.shared : &c.own) += size;
  }
  cJSON_Delete(df);
  return c;
}

static const char *size_text(int64_t bytes) {
  static char buf[4][32];
  static unsigned i;
  return ca_format_size((uint64_t)bytes, buf[i++ % 4]);
}

/* A BuildKit build cache of images removed since (as run --images=remove leaves it) next to an image that stays, whose
 * layers are records too, shared: they are no build cache to keep or prune. gc --build-cache-keep plans and prunes
 * the cache down to SIZE as the engine counts it, and never the image. */
Test(disk, gc_build_cache_keep_prunes_the_build_cache) {
  engine_on_disk(0);
  build_kit("kept", 4);
  build_kit("gone-a", 6);
  build_kit("gone-b", 3);
  sh("docker -H %s rmi gone-a gone-b >/dev/null", sc.docker_host);
  struct cache before = cache_now();
  cr_log_info("build cache %s, shared with images %s", size_text(before.own), size_text(before.shared));
  cr_assert_geq(before.own, 9 << 20, "the removed images' layers are build cache: %s", size_text(before.own));
  cr_assert_geq(before.shared, 4 << 20, "the kept image's layers are records it shares: %s", size_text(before.shared));

  /* The plan: at least what goes beyond 1M (the engine prunes whole records, least recently used first). */
  int rc = run_agent((const char *[]){"gc", "--build-cache-keep", "1M", "--dry-run", "--format", "json", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  const char *out = scenario_read_text(strcat(strcpy((char[160]){0}, sc.dir), "/out"));
  cJSON *j = cJSON_Parse(out), *disk = cJSON_GetObjectItem(j, "disk");
  cr_assert_not_null(disk, "%s", out);
  cr_assert_eq((int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(disk, "build_cache_pruned_bytes")),
               before.own - (1 << 20), "%s", out);
  cr_assert_eq((int64_t)cJSON_GetNumberValue(cJSON_GetObjectItem(disk, "build_cache_bytes")), before.own, "%s", out);
  cJSON_Delete(j);

  rc = run_agent((const char *[]){"gc", "--build-cache-keep", "1M", "--dry-run", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  char want[160];
  snprintf(want, sizeof(want), "gc: build cache: %s, would prune at least %s beyond 1M", size_text(before.own),
           size_text(before.own - (1 << 20)));
  cr_assert(strstr(scenario_stderr(&sc), want), "want '%s': %s", want, scenario_stderr(&sc));
  cr_assert_eq(cache_now().own, before.own, "the dry run pruned nothing");

  /* A keep above the cache (though below the cache and the image's layers): nothing to prune, and nothing goes. */
  char keep[32];
  snprintf(keep, sizeof(keep), "%dM", (int)(before.own >> 20) + 2);
  cr_assert_lt((int64_t)atoi(keep) << 20, before.own + before.shared);
  rc = run_agent((const char *[]){"gc", "--build-cache-keep", keep, "--dry-run", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  snprintf(want, sizeof(want), "gc: build cache: %s, would prune 0B beyond %s", size_text(before.own), keep);
  cr_assert(strstr(scenario_stderr(&sc), want), "want '%s': %s", want, scenario_stderr(&sc));
  rc = run_agent((const char *[]){"gc", "--build-cache-keep", keep, NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  snprintf(want, sizeof(want), "gc: build cache: pruned 0B beyond %s", keep);
  cr_assert(strstr(scenario_stderr(&sc), want), "want '%s': %s", want, scenario_stderr(&sc));
  cr_assert_eq(cache_now().own, before.own, "a keep above the cache pruned nothing");

  /* Down to 4M: what goes is said, and the cache is under it after. */
  rc = run_agent((const char *[]){"gc", "--build-cache-keep", "4M", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  struct cache after = cache_now();
  cr_assert_leq(after.own, 4 << 20, "the cache is under the keep after: %s", size_text(after.own));
  snprintf(want, sizeof(want), "gc: build cache: pruned %s beyond 4M", size_text(before.own - after.own));
  cr_assert(strstr(scenario_stderr(&sc), want), "want '%s': %s", want, scenario_stderr(&sc));

  /* 0 prunes it all; another removed image makes sure there is some to prune. */
  build_kit("gone-c", 2);
  sh("docker -H %s rmi gone-c >/dev/null", sc.docker_host);
  before = cache_now();
  rc = run_agent((const char *[]){"gc", "--build-cache-keep", "0", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  after = cache_now();
  cr_assert_eq(after.own, 0, "keep 0 prunes the whole cache: %s left", size_text(after.own));
  snprintf(want, sizeof(want), "gc: build cache: pruned %s beyond 0B", size_text(before.own));
  cr_assert_geq(before.own, 2 << 20);
  cr_assert(strstr(scenario_stderr(&sc), want), "want '%s': %s", want, scenario_stderr(&sc));
  cr_assert(image_exists("kept"), "an image's layers are no build cache to prune");
  cr_assert_geq(after.shared, 4 << 20, "the kept image's records stay: %s", size_text(after.shared));

  rc = run_agent((const char *[]){"gc", "--build-cache-keep", "lots", NULL});
  cr_assert_eq(rc, 2, "a size that is not one is a usage error: %s", scenario_stderr(&sc));
}

Test(disk, run_images_remove_removes_what_it_built_unless_a_container_uses_it) {
  engine_on_disk(0);
  const char *script = scenario_script(
      &sc, "build.sh",
      "set -e\n"
      "for t in gone kept; do\n"
      "  printf 'FROM " IMAGE "\\nRUN echo %s > /f\\n' $t | DOCKER_BUILDKIT=0 docker build -q --network none -t $t - \n"
      "done\n"
      /* The session's own container of its image goes at its end, before the image. */
      "docker create --network none --name own gone true >/dev/null\n"
      /* One made straight on the engine is not the session's (the image carries no session label to inherit): it
       * stays, and holds its image. */
      "docker -H \"$CLEANUP_AGENT_ENGINE\" create --network none --label \"$TEST_LABEL\" --name user kept "
      "true >/dev/null\n");
  int rc = run_agent((const char *[]){"run", "--images=remove", "--", "sh", script, NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "docker -H %s container inspect own >/dev/null 2>&1", sc.docker_host);
  cr_assert_neq(system(cmd), 0, "the session's container of its image went at its end");
  snprintf(cmd, sizeof(cmd), "docker -H %s container inspect user >/dev/null 2>&1", sc.docker_host);
  cr_assert_eq(system(cmd), 0, "the container made outside the session stays");
  cr_assert(!image_exists("gone"), "the image the run built went at its end: %s", scenario_stderr(&sc));
  cr_assert(image_exists("kept"), "the one a container uses stays");
  cr_assert(strstr(scenario_stderr(&sc), "kept 1 image"), "one line says so: %s", scenario_stderr(&sc));
  sh("docker -H %s rm -f user >/dev/null", sc.docker_host);
  /* keep (the default) leaves them labeled, as build cache */
  rc =
      run_agent((const char *[]){"run", "--", "sh", "-c",
                                 "printf 'FROM " IMAGE "\\nRUN echo cache > /f\\n' | DOCKER_BUILDKIT=0 docker build -q "
                                 "--network none -t cache - >/dev/null",
                                 NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  cr_assert(image_exists("cache"), "--images=keep is the default");
}

Test(disk, run_collects_first_when_the_disk_is_over_the_high_mark) {
  engine_on_disk(512);
  char a[80], b[80];
  build("s-a", BLOB_MB, "--label io.cleanup-agent.built-by=" DEAD, a);
  build("s-b", BLOB_MB, "--label io.cleanup-agent.built-by=" DEAD, b);
  /* A leftover of an expired session, which no start collects by itself (it has no registry here). */
  sh("docker -H %s create --network none --label %s --label io.cleanup-agent.session=" DEAD
     " --label io.cleanup-agent.expires=1 --name leftover " IMAGE " true >/dev/null",
     sc.docker_host, sc.test_label);
  char high[16];
  snprintf(high, sizeof(high), "%d", (int)usage() - 1);
  int rc = run_agent((const char *[]){"run", "--disk-high", high, "--disk-low", "1", "--", "true", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  const char *err = scenario_stderr(&sc);
  cr_assert(strstr(err, "engine under pressure") && strstr(err, "collected dead sessions first"), "%s", err);
  cr_assert_eq(strchr(strstr(err, "engine under pressure"), '\n') != NULL, true);
  char cmd[256];
  snprintf(cmd, sizeof(cmd), "docker -H %s container inspect leftover >/dev/null 2>&1", sc.docker_host);
  cr_assert_neq(system(cmd), 0, "the expired session's container went first");
  cr_assert(!image_exists(a) && !image_exists(b), "the session images went to get under the low mark");
  /* Under the mark: nothing is said. */
  rc = run_agent((const char *[]){"run", "--", "true", NULL});
  cr_assert_eq(rc, 0);
  cr_assert_null(strstr(scenario_stderr(&sc), "under pressure"), "%s", scenario_stderr(&sc));
}

/* The labels of the agent's namespace on image ref of the private engine, as "k=v;" in key order (static buffer). */
static const char *agent_labels_of(const char *kind, const char *ref) {
  static char text[2048];
  char cmd[512];
  snprintf(cmd, sizeof(cmd),
           "docker -H %s %s inspect -f '{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}' %s | tr ';' '\\n' | "
           "grep '^io.cleanup-agent[.]' | tr '\\n' ';'",
           sc.docker_host, kind, ref);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  text[0] = '\0';
  (void)!fgets(text, sizeof(text), p);
  pclose(p);
  text[strcspn(text, "\n")] = '\0';
  return text;
}

/* An image built through the session's proxy carries one label of the agent's, built-by=<session>: a container made
 * from it outside the session (a deployment's `docker run` after CI built the image, --images=keep) is not the
 * session's, and neither the next start's collection nor gc removes it. The session's own container from it still
 * goes at its end, and the receipt lists the image. */
Test(disk, a_container_made_outside_the_session_from_its_built_image_is_not_the_sessions) {
  engine_on_disk(0);
  const char *script = scenario_script(
      &sc, "build.sh",
      "set -e\n"
      "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
      "printf 'FROM " IMAGE "\\nRUN echo app > /f\\n' | DOCKER_BUILDKIT=0 docker build --network none -t app - "
      ">$OUT/build.log\n"
      "docker create --network none --name own app true >/dev/null\n");
  char report[128], id[64];
  snprintf(report, sizeof(report), "%s/report.json", sc.dir);
  int rc = run_agent((const char *[]){"run", "--report", report, "--", "sh", script, NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  snprintf(id, sizeof(id), "%s", scenario_out(&sc, "session"));
  cr_assert_eq(strlen(id), 32, "the command saw its session: '%s'", id);
  cr_assert(image_exists("app"), "--images=keep (the default) leaves the image");
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "docker -H %s container inspect own >/dev/null 2>&1", sc.docker_host);
  cr_assert_neq(system(cmd), 0, "the session's own container from its image went at its end");

  /* The deployment: straight on the engine, after the session. */
  sh("docker -H %s create --network none --label %s --name deploy app true >/dev/null", sc.docker_host, sc.test_label);
  rc = run_agent((const char *[]){"run", "--", "true", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  rc = run_agent((const char *[]){"gc", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  snprintf(cmd, sizeof(cmd), "docker -H %s container inspect deploy >/dev/null 2>&1", sc.docker_host);
  cr_assert_eq(system(cmd), 0, "a container made outside the session survives its end, the next start and gc: %s",
               scenario_stderr(&sc));
  const char *on_deploy = agent_labels_of("container", "deploy");
  cr_assert_null(strstr(on_deploy, "io.cleanup-agent.session="), "and carries no session label of the build's: %s",
                 on_deploy);

  char want[128];
  snprintf(want, sizeof(want), "io.cleanup-agent.built-by=%s;", id);
  cr_assert_str_eq(agent_labels_of("image", "app"), want, "the image carries built-by=<session> alone of the agent's");
  snprintf(cmd, sizeof(cmd), "grep -c ': LABEL ' %s/build.log", sc.dir);
  FILE *p = popen(cmd, "r");
  char steps[16] = "";
  (void)!fgets(steps, sizeof(steps), p);
  pclose(p);
  cr_assert_eq(atoi(steps), 1, "the build made one LABEL step for the agent's label: %s",
               scenario_read_text(strcat(strcpy(cmd, sc.dir), "/build.log")));

  char image_id[96];
  snprintf(cmd, sizeof(cmd), "docker -H %s image inspect -f '{{.Id}}' app", sc.docker_host);
  p = popen(cmd, "r");
  cr_assert_not_null(fgets(image_id, sizeof(image_id), p));
  pclose(p);
  image_id[strcspn(image_id, "\n")] = '\0';
  cr_assert(strstr(scenario_read_text(report), image_id), "the receipt lists the image: %s",
            scenario_read_text(report));
}

/* A container the session made carries its labels, and so would the image the session commits of it (the engine copies
 * a container's labels into the image, and an image's into every container made from it): a deployment's `docker run`
 * of that image after the session would be taken for the dead session's and removed. The proxy empties the agent's
 * labels on a commit and names the session by built-by, as on what it builds, so the container made outside stays. */
Test(disk, a_container_made_outside_the_session_from_an_image_it_committed_is_not_the_sessions) {
  engine_on_disk(0);
  const char *script = scenario_script(&sc, "commit.sh",
                                       "set -e\n"
                                       "echo $CLEANUP_AGENT_SESSION > $OUT/session\n"
                                       "docker create --network none --name snap " IMAGE " true >/dev/null\n"
                                       "docker commit snap snapshot >/dev/null\n");
  char id[64];
  int rc = run_agent((const char *[]){"run", "--", "sh", script, NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  snprintf(id, sizeof(id), "%s", scenario_out(&sc, "session"));
  cr_assert_eq(strlen(id), 32, "the command saw its session: '%s'", id);
  cr_assert(image_exists("snapshot"), "the committed image stays (--images=keep)");

  sh("docker -H %s create --network none --label %s --name deploy snapshot true >/dev/null", sc.docker_host,
     sc.test_label);
  rc = run_agent((const char *[]){"run", "--", "true", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  rc = run_agent((const char *[]){"gc", NULL});
  cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
  char cmd[512];
  snprintf(cmd, sizeof(cmd), "docker -H %s container inspect deploy >/dev/null 2>&1", sc.docker_host);
  cr_assert_eq(system(cmd), 0,
               "a container made outside the session from its commit survives the next start and gc: %s",
               scenario_stderr(&sc));
  char want[128];
  snprintf(want, sizeof(want), AG_TEST_LABEL_SESSION "=%s;", id);
  const char *on_deploy = agent_labels_of("container", "deploy");
  cr_assert_null(strstr(on_deploy, want), "the container made outside carries the session's label: %s", on_deploy);
  snprintf(want, sizeof(want), "io.cleanup-agent.built-by=%s;", id);
  const char *on_image = agent_labels_of("image", "snapshot");
  cr_assert_not_null(strstr(on_image, want), "the committed image names its session by built-by: %s", on_image);
  cr_assert_not_null(strstr(on_image, AG_TEST_LABEL_SESSION "=;"), "and its session label is empty: %s", on_image);
}

/* A session nested in another builds through both proxies: the inner proxy adds built-by and the outer label, the
 * outer one lets the build through and drops the outer label, so the image names the inner session alone, and the
 * inner run's --images=remove finds it. */
Test(disk, a_nested_session_builds_through_both_proxies_and_its_image_names_it_alone) {
  engine_on_disk(0);
  for (int remove = 0; remove < 2; remove++) {
    char body[2048];
    snprintf(body, sizeof(body),
             "export OUT\n"
             "%s --state-dir %s run --images=%s -- sh -c 'echo $CLEANUP_AGENT_SESSION >$OUT/inner && printf "
             "\"FROM " IMAGE "\\nRUN echo nested > /f\\n\" | DOCKER_BUILDKIT=0 docker build -q --network none -t "
             "nested - >$OUT/build.log 2>&1'\n"
             "echo $? >$OUT/inner_rc\n",
             AG_BINARY, sc.state, remove ? "remove" : "keep");
    const char *script = scenario_script(&sc, "outer.sh", body);
    int rc = run_agent((const char *[]){"run", "--", "sh", script, NULL});
    cr_assert_eq(rc, 0, "%s", scenario_stderr(&sc));
    cr_assert_str_eq(scenario_out(&sc, "inner_rc"), "0", "the nested build: %s", scenario_out(&sc, "build.log"));
    char want[128];
    snprintf(want, sizeof(want), "io.cleanup-agent.built-by=%s;", scenario_out(&sc, "inner"));
    if (!remove)
      cr_assert_str_eq(agent_labels_of("image", "nested"), want, "the image names the inner session alone");
    else
      cr_assert(!image_exists("nested"), "the inner run's --images=remove removed it: %s", scenario_stderr(&sc));
  }
}
