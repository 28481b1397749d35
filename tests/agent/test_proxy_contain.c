/* --contain-containers in the proxy's create body rewrite: every container create gets the session's cgroup as its
 * HostConfig.CgroupParent, every other byte as sent; a create that asks for a cgroup parent of its own outside the
 * session's is refused with 400 and why. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"
#include "session.h"

#define SESSION "0123456789abcdef0123456789abcdef"
#define PARENT "/cleanup-agent.slice/run-" SESSION

static const char *const labels[] = {AG_LABEL_SESSION "=" SESSION, AG_LABEL_MANAGED "=true", NULL};

/* The body the engine gets for a create to target, fed in pieces of step bytes; the proxy's answer in ret_client. */
static char *through_proxy(const char *target, const char *body, size_t step, char **ret_client) {
  char req[8192];
  snprintf(req, sizeof(req),
           "POST %s HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n"
           "Content-Length: %zu\r\n\r\n%s",
           target, strlen(body), body);
  struct ag_proxy_req *r = ag_proxy_req_new(SESSION, labels);
  cr_assert_not_null(r);
  ag_proxy_req_set_cgroup_parent(r, PARENT);
  ca_buf engine = CA_BUF_INIT(1 << 20), client = CA_BUF_INIT(1 << 20);
  size_t len = strlen(req);
  for (size_t off = 0; off < len;) {
    size_t n = step ? CA_MIN(step, len - off) : len;
    cr_assert_geq(ag_proxy_req_feed(r, req + off, n, &engine, &client, NULL), 0);
    off += n;
  }
  ag_proxy_req_free(r);
  *ret_client = ca_buf_steal(&client, NULL);
  const char *b = strstr(ca_buf_str(&engine), "\r\n\r\n");
  char *out = strdup(b ? b + 4 : "");
  ca_buf_free(&engine);
  return out;
}

/* HostConfig.CgroupParent as the engine reads the body (the last HostConfig, its last CgroupParent). */
static const char *parent_of(cJSON *body) {
  const cJSON *hc = NULL, *cp = NULL;
  for (const cJSON *it = body->child; it; it = it->next)
    if (it->string && strcasecmp(it->string, "hostconfig") == 0)
      hc = it;
  for (const cJSON *it = hc ? hc->child : NULL; it; it = it->next)
    if (it->string && strcasecmp(it->string, "cgroupparent") == 0)
      cp = it;
  return cJSON_IsString(cp) ? cp->valuestring : NULL;
}

Test(proxy_contain, every_container_create_gets_the_session_cgroup_and_keeps_the_rest) {
  static const char *const bodies[] = {
      "{\"Image\":\"busybox\",\"HostConfig\":{\"Memory\":1e400,\"PidsLimit\":9007199254740993}}",
      "{\"Image\":\"busybox\"}",
      "{}",
      "{\"Image\":\"busybox\",\"HostConfig\":null}",
      "{\"Image\":\"busybox\",\"HostConfig\":{\"CgroupParent\":\"\",\"Memory\":1e400}}",
      "{\"Image\":\"busybox\",\"hostconfig\":{\"cgroupparent\":\"\"},\"HostConfig\":{\"Memory\":1e400}}",
  };
  for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++)
    for (size_t step = 0; step < 3; step++) {
      char *client = NULL, *sent = through_proxy("/v1.41/containers/create?name=x", bodies[i], step * 7, &client);
      cr_assert_eq(client[0], '\0', "refused %s: %s", bodies[i], client);
      cJSON *j = cJSON_Parse(sent);
      cr_assert_not_null(j, "not JSON: %s", sent);
      cr_assert_str_eq(parent_of(j), PARENT, "%s became %s", bodies[i], sent);
      if (strstr(bodies[i], "1e400"))
        cr_assert_not_null(strstr(sent, "\"Memory\":1e400"), "%s", sent);
      if (strstr(bodies[i], "9007199254740993"))
        cr_assert_not_null(strstr(sent, "9007199254740993"), "%s", sent);
      cr_assert_not_null(strstr(sent, "\"" AG_LABEL_SESSION "\":\"" SESSION "\""), "%s", sent);
      cJSON_Delete(j);
      free(sent);
      free(client);
    }
}

/* The engine folds field names as Go does: U+017F is an s, so "Hoſtconfig" is HostConfig too. */
Test(proxy_contain, every_spelling_of_host_config_gets_it) {
  char *client = NULL;
  char *sent = through_proxy("/containers/create", "{\"Ho\xc5\xbftconfig\":{\"CgroupParent\":\"\"}}", 0, &client);
  cr_assert_not_null(strstr(sent, "\"Ho\xc5\xbftconfig\":{\"CgroupParent\":\"" PARENT "\"}"), "%s", sent);
  cr_assert_null(strstr(sent, "\"HostConfig\""), "a second HostConfig was added: %s", sent);
  free(sent);
  free(client);
}

/* A create the proxy forwards: what the engine gets holds want and not unwanted (NULL: anything). */
static void expect_forwarded(const char *target, const char *body, const char *want, const char *unwanted) {
  char *client = NULL, *sent = through_proxy(target, body, 0, &client);
  cr_assert_eq(client[0], '\0', "refused: %s", client);
  cr_assert_not_null(strstr(sent, want), "%s", sent);
  cr_assert(!unwanted || !strstr(sent, unwanted), "%s", sent);
  free(sent);
  free(client);
}

Test(proxy_contain, networks_and_volumes_are_not_touched) {
  expect_forwarded("/networks/create", "{\"Name\":\"n\"}", "\"Name\":\"n\"", "CgroupParent");
  expect_forwarded("/volumes/create", "{\"Name\":\"v\"}", "\"Name\":\"v\"", "HostConfig");
}

Test(proxy_contain, a_parent_inside_the_sessions_stays) {
  expect_forwarded("/containers/create", "{\"HostConfig\":{\"CgroupParent\":\"" PARENT "/inner\"}}",
                   "\"CgroupParent\":\"" PARENT "/inner\"", NULL);
}

Test(proxy_contain, a_parent_of_its_own_is_refused_with_why) {
  static const char *const bodies[] = {
      "{\"HostConfig\":{\"CgroupParent\":\"/mine\"}}",
      "{\"HostConfig\":{\"CgroupParent\":\"" PARENT "x\"}}",
      "{\"HostConfig\":{\"Memory\":1},\"hostconfig\":{\"cgroupPARENT\":\"docker\"}}",
  };
  for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
    char *client = NULL, *sent = through_proxy("/containers/create", bodies[i], 0, &client);
    cr_assert_eq(sent[0], '\0', "reached the engine: %s", sent);
    cr_assert(strncmp(client, "HTTP/1.1 400 ", 13) == 0, "%s: %s", bodies[i], client);
    cr_assert_not_null(strstr(client, "--contain-containers"), "%s", client);
    cr_assert_not_null(strstr(client, "drop --cgroup-parent"), "%s", client);
    free(sent);
    free(client);
  }
}

Test(proxy_contain, without_a_parent_the_body_keeps_its_own) {
  char *sent = NULL;
  size_t len = 0;
  static const char body[] = "{\"HostConfig\":{\"CgroupParent\":\"/mine\"}}";
  cr_assert_eq(ag_proxy_rewrite_container_body(SESSION, labels, NULL, body, strlen(body), &sent, &len, NULL), 0);
  cr_assert_not_null(strstr(sent, "\"CgroupParent\":\"/mine\""), "%s", sent);
  free(sent);
}
