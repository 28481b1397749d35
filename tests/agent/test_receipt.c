/* The leak receipt's records, outcomes, names, JSON and JUnit, fed as the proxy and the session's end feed them. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "collect.h"
#include "proxy.h"
#include "receipt.h"

static void fini(void) {
  ag_receipt_reset();
}

TestSuite(receipt, .fini = fini);

static const struct ag_proxy_peer docker_cli = {
    .pid = 123, .exe = "/usr/bin/docker", .cmdline = "docker\0run\0-d\0busybox", .cmdline_len = 22};

static void create(char kind, const char *id, const char *name, const char *project, bool keep) {
  const struct ag_proxy_create_info info = {.kind = kind,
                                            .id = id,
                                            .name = name,
                                            .image = kind == 'c' ? "busybox" : NULL,
                                            .user_agent = "Docker-Client/20.10.24 (linux)",
                                            .compose_project = project,
                                            .keep = keep,
                                            .peer = &docker_cli};
  ag_receipt_observer()->created(NULL, &info);
}

/* A session whose suite removed one container by name, left one to the end, kept one, and whose end could not remove
 * a network of the compose project; a sleep outlived the command. */
static const struct ag_receipt *sample(void) {
  ag_receipt_enable();
  create('c', "aaaa1111", "first", NULL, false);
  create('c', "bbbb2222", "db-1", "e2e", false);
  create('c', "cccc3333", "web-1", "e2e", false);
  create('n', "dddd4444", "e2e_default", "e2e", false);
  create('v', "keepme", "keepme", NULL, true);
  ag_receipt_observer()->removed(NULL, 'c', "first");
  ag_receipt_removed_at_end(DK_CONTAINER, "bbbb2222");
  ag_receipt_removed_at_end(DK_CONTAINER, "cccc3333");
  char id[] = "dddd4444", why[] = "daemon said 500: <in use> & \"busy\"";
  struct ag_not_removed_item item = {DK_NETWORK, id, why};
  struct ag_not_removed nr = {.items = &item, .n = 1};
  cg_proc_info sleeper = {.pid = getpid(), .start_time = 7, .comm = "sleep"};
  ag_receipt_processes_seen(&sleeper, 1, 0, SIGTERM);
  ag_receipt_processes_killed(NULL, 0, "cgroup.kill");
  ag_receipt_finish(&nr, NULL);
  return ag_receipt_get();
}

Test(receipt, each_resource_gets_its_outcome_and_creator) {
  const struct ag_receipt *r = sample();
  cr_assert_eq(r->n_resources, 5);
  cr_assert_eq(r->resources[0].outcome, AG_RECEIPT_REMOVED_BY_CREATOR);
  cr_assert_eq(r->resources[1].outcome, AG_RECEIPT_REMOVED_AT_END);
  cr_assert_eq(r->resources[3].outcome, AG_RECEIPT_NOT_REMOVED);
  cr_assert_str_eq(r->resources[3].error, "daemon said 500: <in use> & \"busy\"");
  cr_assert_eq(r->resources[4].outcome, AG_RECEIPT_KEPT);
  cr_assert_eq(r->n_processes, 1);
  cr_assert_str_eq(r->processes[0].killed_by, "SIGTERM", "it was gone before the kill: it honoured SIGTERM");
  cr_assert_eq(ag_receipt_count_leaked(r), 5);
  char worst[256];
  cr_assert(ag_receipt_worst_offender(r, worst, sizeof(worst)));
  cr_assert_str_eq(worst, "compose project e2e left 2 containers and a network");
}

Test(receipt, nothing_recorded_while_disabled) {
  cr_assert_null(ag_receipt_observer());
  ag_receipt_removed_at_end(DK_CONTAINER, "x");
  cg_proc_info p = {.pid = 1};
  ag_receipt_processes_seen(&p, 1, 0, 0);
  cr_assert_eq(ag_receipt_get()->n_processes, 0);
}

Test(receipt, json_has_every_field_of_the_schema) {
  const struct ag_receipt *r = sample();
  cJSON *j = cJSON_CreateObject();
  cr_assert_eq(ag_receipt_json_add(r, j), 0);
  char *text = cJSON_PrintUnformatted(j);
  cJSON *back = cJSON_Parse(text);
  cr_assert_not_null(back, "%s", text);
  const cJSON *res = cJSON_GetObjectItem(back, "resources");
  cr_assert_eq(cJSON_GetArraySize(res), 5);
  const cJSON *first = cJSON_GetArrayItem(res, 0), *creator = cJSON_GetObjectItem(first, "creator");
  cr_assert_str_eq(cJSON_GetObjectItem(first, "outcome")->valuestring, "removed_by_creator");
  cr_assert_str_eq(cJSON_GetObjectItem(first, "kind")->valuestring, "container");
  cr_assert_str_eq(cJSON_GetObjectItem(first, "image")->valuestring, "busybox");
  cr_assert_eq(cJSON_GetObjectItem(creator, "pid")->valueint, 123);
  cr_assert_str_eq(cJSON_GetObjectItem(creator, "exe")->valuestring, "/usr/bin/docker");
  cr_assert_eq(cJSON_GetArraySize(cJSON_GetObjectItem(creator, "argv")), 4);
  cr_assert_str_eq(cJSON_GetArrayItem(cJSON_GetObjectItem(creator, "argv"), 3)->valuestring, "busybox");
  cr_assert_str_eq(cJSON_GetObjectItem(creator, "user_agent")->valuestring, "Docker-Client/20.10.24 (linux)");
  cr_assert(cJSON_IsNull(cJSON_GetObjectItem(creator, "testcontainers_session")));
  const cJSON *net = cJSON_GetArrayItem(res, 3);
  cr_assert_str_eq(cJSON_GetObjectItem(net, "error")->valuestring, "daemon said 500: <in use> & \"busy\"");
  cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(net, "creator"), "compose_project")->valuestring, "e2e");
  const cJSON *proc = cJSON_GetArrayItem(cJSON_GetObjectItem(back, "processes"), 0);
  cr_assert_str_eq(cJSON_GetObjectItem(proc, "killed_by")->valuestring, "SIGTERM");
  cr_assert_eq(cJSON_GetObjectItem(back, "leaked")->valueint, 5);
  cr_assert(cJSON_IsArray(cJSON_GetObjectItem(back, "images")));
  cJSON_free(text);
  cJSON_Delete(j);
  cJSON_Delete(back);
}

static size_t count(const char *s, const char *what) {
  size_t n = 0;
  for (const char *p = s; (p = strstr(p, what)); p++)
    n++;
  return n;
}

Test(receipt, junit_has_a_failing_testcase_per_leak_named_by_its_creator) {
  const struct ag_receipt *r = sample();
  ca_buf b = CA_BUF_INIT(1024 * 1024);
  cr_assert_eq(ag_receipt_junit(r, "0123", &b, NULL), 0);
  const char *xml = ca_buf_str(&b);
  cr_assert_eq(count(xml, "<testcase "), 5, "%s", xml);
  cr_assert_eq(count(xml, "<failure "), 5, "%s", xml);
  cr_assert(strstr(xml, "tests=\"5\" failures=\"5\""), "%s", xml);
  cr_assert(strstr(xml, "name=\"compose project e2e: container db-1\""), "%s", xml);
  cr_assert(strstr(xml, "name=\"pid 123 (docker run -d busybox): volume keepme\""), "%s", xml);
  cr_assert(strstr(xml, "&lt;in use&gt; &amp; &quot;busy&quot;"), "the engine's error escaped: %s", xml);
  cr_assert_null(strstr(xml, "<in use>"), "%s", xml);
  cr_assert_null(strstr(xml, "name=\"pid 123 (docker run -d busybox): container first\""), "removed by its creator");
  ca_buf_free(&b);
}

Test(receipt, junit_of_a_run_that_left_nothing_is_an_empty_testsuite) {
  ag_receipt_enable();
  create('c', "aaaa1111", "first", NULL, false);
  ag_receipt_observer()->removed(NULL, 'c', "aaaa");
  ag_receipt_finish(NULL, NULL);
  ca_buf b = CA_BUF_INIT(1024 * 1024);
  cr_assert_eq(ag_receipt_junit(ag_receipt_get(), "0123", &b, NULL), 0);
  cr_assert(strstr(ca_buf_str(&b), "tests=\"0\" failures=\"0\""), "%s", ca_buf_str(&b));
  cr_assert_eq(count(ca_buf_str(&b), "<testcase"), 0);
  cr_assert(strstr(ca_buf_str(&b), "</testsuite>\n"));
  char worst[64];
  cr_assert_not(ag_receipt_worst_offender(ag_receipt_get(), worst, sizeof(worst)));
  ca_buf_free(&b);
}
