/* Proof that the Docker engine the docker suites run against is real and answering: it talks to the engine with
 * plain libcurl on its Unix socket, independent of the docker_api module, so a broken module cannot make the
 * environment look broken (or the other way round). The socket comes from DOCKER_HOST (unix:// only) or is
 * /var/run/docker.sock. */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The oldest Engine API the project targets (Docker 17.06); Debian 12's docker.io speaks 1.41. */
#define MIN_API_MAJOR 1
#define MIN_API_MINOR 30

#define CAP 65536

struct reply {
  long status;
  char body[CAP];
  size_t body_len;
  char api_version[32];
};

static const char *socket_path(void) {
  const char *host = getenv("DOCKER_HOST");
  if (!host || !*host)
    return "/var/run/docker.sock";
  cr_assert(strncmp(host, "unix://", 7) == 0, "DOCKER_HOST=%s: this test only speaks to a unix:// socket", host);
  return host + 7;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
  struct reply *r = userdata;
  size_t n = size * nmemb;
  if (r->body_len + n >= CAP)
    return 0; /* a reply this large is not an engine's answer: abort the transfer */
  memcpy(r->body + r->body_len, data, n);
  r->body_len += n;
  r->body[r->body_len] = '\0';
  return n;
}

static size_t on_header(char *data, size_t size, size_t nitems, void *userdata) {
  struct reply *r = userdata;
  size_t n = size * nitems;
  static const char name[] = "Api-Version:";
  if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0) {
    const char *v = data + sizeof(name) - 1;
    size_t len = n - (sizeof(name) - 1);
    while (len && (*v == ' ' || *v == '\t'))
      v++, len--;
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
      len--;
    if (len < sizeof(r->api_version)) {
      memcpy(r->api_version, v, len);
      r->api_version[len] = '\0';
    }
  }
  return n;
}

/* GET path from the engine; fails the test with one line naming the socket when the engine does not answer. */
static void engine_get(const char *path, struct reply *r) {
  memset(r, 0, sizeof(*r));
  const char *sock = socket_path();
  char url[512];
  snprintf(url, sizeof(url), "http://localhost%s", path);

  CURL *curl = curl_easy_init();
  cr_assert(curl, "curl_easy_init failed");
  curl_easy_setopt(curl, CURLOPT_UNIX_SOCKET_PATH, sock);
  curl_easy_setopt(curl, CURLOPT_URL, url);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, r);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 5L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 20L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  CURLcode rc = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r->status);
  curl_easy_cleanup(curl);
  cr_assert(rc == CURLE_OK,
            "Docker engine not reachable on %s: GET %s: %s (tests/run.sh starts one; DOCKER_HOST overrides "
            "the socket)",
            sock, path, curl_easy_strerror(rc));
}

/* Parses "MAJOR.MINOR"; false on anything else. */
static bool parse_api_version(const char *s, int *ret_major, int *ret_minor) {
  int major, minor, end = 0;
  if (sscanf(s, "%d.%d%n", &major, &minor, &end) != 2 || s[end] != '\0' || major < 0 || minor < 0)
    return false;
  *ret_major = major;
  *ret_minor = minor;
  return true;
}

static bool api_at_least(int major, int minor, int want_major, int want_minor) {
  return major > want_major || (major == want_major && minor >= want_minor);
}

static void setup(void) {
  cr_assert(curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK);
}

static void teardown(void) {
  curl_global_cleanup();
}

TestSuite(env_docker, .init = setup, .fini = teardown);

Test(env_docker, ping_answers_with_a_recent_api_version) {
  struct reply *r = malloc(sizeof(*r));
  cr_assert(r);
  engine_get("/_ping", r);
  cr_expect_eq(r->status, 200, "GET /_ping: HTTP %ld: %s", r->status, r->body);
  cr_expect_str_eq(r->body, "OK", "GET /_ping answered '%s'", r->body);

  int major, minor;
  cr_assert(parse_api_version(r->api_version, &major, &minor),
            "GET /_ping: missing or malformed Api-Version header '%s'", r->api_version);
  cr_expect(api_at_least(major, minor, MIN_API_MAJOR, MIN_API_MINOR), "engine API %d.%d is older than %d.%d", major,
            minor, MIN_API_MAJOR, MIN_API_MINOR);
  free(r);
}

Test(env_docker, version_is_consistent_with_ping) {
  struct reply *ping = malloc(sizeof(*ping)), *r = malloc(sizeof(*r));
  cr_assert(ping && r);
  engine_get("/_ping", ping);
  engine_get("/version", r);
  cr_assert_eq(r->status, 200, "GET /version: HTTP %ld: %s", r->status, r->body);

  cJSON *v = cJSON_Parse(r->body);
  cr_assert(v, "GET /version: not JSON: %.200s", r->body);
  const cJSON *api = cJSON_GetObjectItemCaseSensitive(v, "ApiVersion");
  const cJSON *min_api = cJSON_GetObjectItemCaseSensitive(v, "MinAPIVersion");
  const cJSON *version = cJSON_GetObjectItemCaseSensitive(v, "Version");
  const cJSON *os = cJSON_GetObjectItemCaseSensitive(v, "Os");
  cr_assert(cJSON_IsString(api) && cJSON_IsString(min_api) && cJSON_IsString(version),
            "GET /version lacks ApiVersion, MinAPIVersion or Version: %.300s", r->body);
  cr_expect_str_eq(api->valuestring, ping->api_version, "/version says API %s, /_ping said %s", api->valuestring,
                   ping->api_version);
  cr_expect(cJSON_IsString(os) && strcmp(os->valuestring, "linux") == 0, "engine OS is not linux: %.300s", r->body);

  int major, minor, min_major, min_minor;
  cr_assert(parse_api_version(api->valuestring, &major, &minor), "ApiVersion '%s'", api->valuestring);
  cr_assert(parse_api_version(min_api->valuestring, &min_major, &min_minor), "MinAPIVersion '%s'",
            min_api->valuestring);
  cr_expect(api_at_least(major, minor, min_major, min_minor), "ApiVersion %s below MinAPIVersion %s", api->valuestring,
            min_api->valuestring);
  cr_expect(api_at_least(major, minor, MIN_API_MAJOR, MIN_API_MINOR), "engine API %s is older than %d.%d",
            api->valuestring, MIN_API_MAJOR, MIN_API_MINOR);
  cJSON_Delete(v);
  free(ping);
  free(r);
}

/* The docker suites run containers from this image; tests/run.sh imports it when it is missing. */
Test(env_docker, test_image_is_present) {
  struct reply *r = malloc(sizeof(*r));
  cr_assert(r);
  engine_get("/images/cleanup-test/busybox:latest/json", r);
  cr_assert_eq(r->status, 200,
               "test image cleanup-test/busybox:latest missing (HTTP %ld; tests/run.sh imports it): %.200s", r->status,
               r->body);
  cJSON *img = cJSON_Parse(r->body);
  cr_assert(img, "GET /images/.../json: not JSON: %.200s", r->body);
  const cJSON *id = cJSON_GetObjectItemCaseSensitive(img, "Id");
  cr_expect(cJSON_IsString(id) && strncmp(id->valuestring, "sha256:", 7) == 0, "image has no sha256 Id: %.200s",
            r->body);
  cJSON_Delete(img);
  free(r);
}
