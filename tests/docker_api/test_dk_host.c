/* dk_host_find: the engine the docker CLI would use, from a docker config dir laid out as `docker context create`
 * leaves it (contexts/meta/<sha256 of the name>/meta.json, contexts/tls/<same>/docker/). No engine needed. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "docker.h"

static char dir[64];
static struct dk_host h;
static ca_error *err;

static void setup(void) {
  snprintf(dir, sizeof(dir), "/tmp/dk-host-XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  char path[128];
  snprintf(path, sizeof(path), "%s/xdg", dir);
  cr_assert_eq(mkdir(path, 0700), 0);
  setenv("XDG_RUNTIME_DIR", path, 1);
  snprintf(path, sizeof(path), "%s/docker", dir);
  setenv("DOCKER_CONFIG", path, 1);
  unsetenv("DOCKER_HOST");
  unsetenv("DOCKER_CONTEXT");
}

static void teardown(void) {
  dk_host_done(&h);
  ca_error_free(err);
  char cmd[128];
  snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
  (void)!system(cmd);
}

TestSuite(dk_host, .init = setup, .fini = teardown);

/* Writes text at <dir>/<rel>, making its directories. */
static void put(const char *rel, const char *text) {
  char cmd[512], path[256];
  snprintf(path, sizeof(path), "%s/%s", dir, rel);
  snprintf(cmd, sizeof(cmd), "mkdir -p \"$(dirname %s)\"", path);
  cr_assert_eq(system(cmd), 0);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  cr_assert_eq(fclose(f), 0);
}

static const char ci_sha[] = "1b158839f8aa339e89bb50b1603e90ec68e0fd5565fe10a7cb32729fddf7070a";

static void context_ci(const char *host, const char *skip) {
  char meta[512], rel[160];
  snprintf(meta, sizeof(meta),
           "{\"Name\":\"ci\",\"Metadata\":{},\"Endpoints\":{\"docker\":{\"Host\":\"%s\",\"SkipTLSVerify\":%s}}}", host,
           skip);
  snprintf(rel, sizeof(rel), "docker/contexts/meta/%s/meta.json", ci_sha);
  put(rel, meta);
}

Test(dk_host, nothing_set_is_the_system_socket_with_no_origin) {
  cr_assert_eq(dk_host_find(NULL, NULL, &h, &err), 0, "%s", err ? err->msg : "");
  cr_assert_str_eq(h.url, "unix:///var/run/docker.sock");
  cr_assert_null(h.origin);
  cr_assert_null(h.tls_dir);
}

Test(dk_host, given_then_docker_host_then_context) {
  context_ci("unix:///ctx.sock", "false");
  put("docker/config.json", "{\"currentContext\":\"ci\"}");
  setenv("DOCKER_HOST", "unix:///env.sock", 1);
  cr_assert_eq(dk_host_find("unix:///given.sock", "--docker-host", &h, &err), 0);
  cr_assert_str_eq(h.url, "unix:///given.sock");
  cr_assert_str_eq(h.origin, "--docker-host");
  dk_host_done(&h);
  cr_assert_eq(dk_host_find("", "--docker-host", &h, &err), 0, "an empty value counts as unset");
  cr_assert_str_eq(h.url, "unix:///env.sock");
  cr_assert_str_eq(h.origin, "DOCKER_HOST");
  dk_host_done(&h);
  unsetenv("DOCKER_HOST");
  cr_assert_eq(dk_host_find(NULL, NULL, &h, &err), 0, "%s", err ? err->msg : "");
  cr_assert_str_eq(h.url, "unix:///ctx.sock");
  cr_assert_str_eq(h.origin, "docker context 'ci'");
}

Test(dk_host, context_with_tls_files_gives_their_dir) {
  context_ci("tcp://10.0.0.1:2376", "false");
  char rel[200];
  snprintf(rel, sizeof(rel), "docker/contexts/tls/%s/docker/ca.pem", ci_sha);
  put(rel, "x");
  setenv("DOCKER_CONTEXT", "ci", 1);
  cr_assert_eq(dk_host_find(NULL, NULL, &h, &err), 0, "%s", err ? err->msg : "");
  cr_assert_str_eq(h.url, "tcp://10.0.0.1:2376");
  char want[200];
  snprintf(want, sizeof(want), "%s/docker/contexts/tls/%s/docker", dir, ci_sha);
  cr_assert_str_eq(h.tls_dir, want);
}

Test(dk_host, default_context_is_none_and_the_rootless_socket_comes_next) {
  context_ci("unix:///ctx.sock", "false");
  put("docker/config.json", "{\"currentContext\":\"ci\"}");
  setenv("DOCKER_CONTEXT", "default", 1);
  char sock[128];
  snprintf(sock, sizeof(sock), "%s/xdg/docker.sock", dir);
  put("xdg/docker.sock", "not a socket");
  cr_assert_eq(dk_host_find(NULL, NULL, &h, &err), 0, "%s", err ? err->msg : "");
  cr_assert_str_eq(h.url, "unix:///var/run/docker.sock", "a file that is not a socket is no rootless engine");
  dk_host_done(&h);
  unlink(sock);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  memcpy(a.sun_path, sock, strlen(sock));
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
  close(fd);
  cr_assert_eq(dk_host_find(NULL, NULL, &h, &err), 0, "%s", err ? err->msg : "");
  char want[160];
  snprintf(want, sizeof(want), "unix://%s", sock);
  cr_assert_str_eq(h.url, want);
  cr_assert_str_eq(h.origin, "rootless socket");
}

Test(dk_host, a_missing_context_is_an_error_that_names_it) {
  put("docker/contexts/meta/0000/meta.json", "{not json");            /* another, broken: skipped */
  put("docker/contexts/meta/1111/meta.json", "{\"Name\":\"other\"}"); /* another: skipped */
  setenv("DOCKER_CONTEXT", "nope", 1);
  cr_assert_eq(dk_host_find(NULL, NULL, &h, &err), -ENOENT);
  cr_assert_not_null(strstr(err->msg, "docker context 'nope' (DOCKER_CONTEXT) does not exist"), "%s", err->msg);
  ca_error_free(err);
  err = NULL;
  unsetenv("DOCKER_CONTEXT");
  put("docker/config.json", "{\"currentContext\":\"gone\"}");
  cr_assert_eq(dk_host_find(NULL, NULL, &h, &err), -ENOENT);
  cr_assert_not_null(strstr(err->msg, "docker context 'gone' (currentContext in "), "%s", err->msg);
  cr_assert_null(h.url, "a failure leaves *ret alone");
}

Test(dk_host, broken_config_or_context_is_an_error_not_a_fallback) {
  put("docker/config.json", "{\"currentContext\": 12}");
  cr_assert_lt(dk_host_find(NULL, NULL, &h, &err), 0);
  cr_assert_not_null(strstr(err->msg, "currentContext"), "%s", err->msg);
  ca_error_free(err);
  err = NULL;
  put("docker/config.json", "{\"currentContext\":\"ci\"}");
  put("docker/contexts/meta/x/meta.json", "{\"Name\":\"ci\",\"Endpoints\":{}}");
  cr_assert_eq(dk_host_find(NULL, NULL, &h, &err), -EINVAL);
  cr_assert_not_null(strstr(err->msg, "docker context 'ci': ") && strstr(err->msg, "no docker endpoint"), "%s",
                     err->msg);
  ca_error_free(err);
  err = NULL;
  char cmd[160];
  snprintf(cmd, sizeof(cmd), "rm -r %s/docker/contexts/meta/x", dir);
  cr_assert_eq(system(cmd), 0);
  context_ci("tcp://10.0.0.1:2376", "true");
  cr_assert_eq(dk_host_find(NULL, NULL, &h, &err), -ENOTSUP);
  cr_assert_not_null(strstr(err->msg, "SkipTLSVerify"), "%s", err->msg);
}

Test(dk_host, oversized_config_is_refused_with_its_cap) {
  char *big = malloc((2u << 20) + 1);
  memset(big, ' ', 2u << 20);
  big[2u << 20] = '\0';
  big[0] = '{';
  big[(2u << 20) - 1] = '}';
  put("docker/config.json", big);
  free(big);
  cr_assert_eq(dk_host_find(NULL, NULL, &h, &err), -EFBIG);
  cr_assert_not_null(strstr(err->msg, "config.json"), "%s", err->msg);
}

Test(dk_host, no_home_and_no_docker_config_is_no_context) {
  unsetenv("DOCKER_CONFIG");
  unsetenv("HOME");
  cr_assert_eq(dk_host_find(NULL, NULL, &h, &err), 0, "%s", err ? err->msg : "");
  cr_assert_str_eq(h.url, "unix:///var/run/docker.sock");
  setenv("DOCKER_CONTEXT", "ci", 1);
  dk_host_done(&h);
  cr_assert_eq(dk_host_find(NULL, NULL, &h, &err), -ENOENT);
}
