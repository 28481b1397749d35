/* The list splitter (docker_api/jsplit.c): answers captured from Debian 12's engine (tests/docker_api/answers/),
 * fed whole and in every chunking, and adversarial ones: brackets and escaped quotes inside strings, deep nesting,
 * every truncation, and what is not JSON of a list's shape. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docker-internal.h"

#ifndef ANSWERS_DIR
#error "ANSWERS_DIR must name tests/docker_api/answers"
#endif

static char *slurp(const char *name, size_t *ret_len) {
  char path[512];
  snprintf(path, sizeof(path), "%s/%s", ANSWERS_DIR, name);
  FILE *f = fopen(path, "rb");
  cr_assert(f, "cannot open %s", path);
  char *buf = malloc(1 << 20);
  size_t n = fread(buf, 1, (1 << 20) - 1, f);
  fclose(f);
  buf[n] = '\0';
  *ret_len = n;
  return buf;
}

/* What the splitter handed over: the elements' texts, joined by '\n'. */
struct seen {
  size_t n;
  char text[1 << 16];
  size_t len;
};

static int remember(void *userdata, const char *json, size_t len, ca_error **err) {
  (void)err;
  struct seen *s = userdata;
  cr_assert_lt(s->len + len + 1, sizeof(s->text));
  memcpy(s->text + s->len, json, len);
  s->len += len;
  s->text[s->len++] = '\n';
  s->text[s->len] = '\0';
  s->n++;
  return 0;
}

/* Splits text fed in chunks of chunk bytes (0: at once); returns the result of feed and finish. */
static int split_in(enum dk_split_mode mode, const char *text, size_t len, size_t chunk, struct seen *out,
                    ca_error **err) {
  struct dk_split s;
  memset(out, 0, sizeof(*out));
  dk_split_init(&s, mode, 0, remember, out);
  int k = 0;
  for (size_t at = 0; k == 0 && at < len; at += chunk ? chunk : len)
    k = dk_split_feed(&s, text + at, CA_MIN(chunk ? chunk : len, len - at), err);
  if (k == 0)
    k = dk_split_finish(&s, err);
  dk_split_done(&s);
  return k;
}

/* Every chunking of a real answer gives what the whole gives. */
static void check_chunkings(enum dk_split_mode mode, const char *name, size_t want) {
  size_t len;
  _cleanup_free_ char *text = slurp(name, &len);
  static struct seen whole, part;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(split_in(mode, text, len, 0, &whole, &e), 0, "%s: %s", name, e ? e->msg : "");
  cr_assert_eq(whole.n, want, "%s: %zu elements", name, whole.n);
  for (size_t chunk = 1; chunk <= len; chunk += chunk < 16 ? 1 : 37) {
    cr_assert_eq(split_in(mode, text, len, chunk, &part, &e), 0, "%s in chunks of %zu: %s", name, chunk, e->msg);
    cr_assert_str_eq(part.text, whole.text, "%s in chunks of %zu", name, chunk);
  }
}

Test(split, real_answers_in_every_chunking) {
  check_chunkings(DK_SPLIT_ARRAY, "containers.json", 2);
  check_chunkings(DK_SPLIT_ARRAY, "networks.json", 1);
  check_chunkings(DK_SPLIT_VOLUMES, "volumes.json", 1);
  check_chunkings(DK_SPLIT_ARRAY, "empty_containers.json", 0);
  check_chunkings(DK_SPLIT_VOLUMES, "empty_volumes.json", 0);
}

/* The captured containers answer parses into what the engine holds, the odd label value included. */
Test(split, real_containers_parse) {
  size_t len;
  _cleanup_free_ char *text = slurp("containers.json", &len);
  _cleanup_(dk_list_freep) struct dk_list *l = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_parse_list(DK_CONTAINER, text, len, &l, &e), 0, "%s", e ? e->msg : "");
  cr_assert_eq(l->n, 2);
  cr_assert_str_eq(l->items[0].state, "running");
  cr_assert_str_eq(l->items[1].state, "created");
  cr_assert_str_eq(l->items[1].names[0], "gc19cap1");
  cr_assert_str_eq(dk_item_label(&l->items[1], "weird"), "a]b}c\"d\\e");
  _cleanup_free_ char *vt = slurp("volumes.json", &len);
  _cleanup_(dk_list_freep) struct dk_list *v = NULL;
  cr_assert_eq(dk_parse_list(DK_VOLUME, vt, len, &v, &e), 0, "%s", e ? e->msg : "");
  cr_assert_eq(v->n, 1);
  cr_assert_str_eq(v->items[0].id, "gc19capvol");
}

/* Parses text that must be accepted, with n elements. */
static struct dk_list *parse_ok(enum dk_kind kind, const char *text, size_t n) {
  struct dk_list *l = NULL;
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(dk_parse_list(kind, text, strlen(text), &l, &e), 0, "%s: %s", text, e ? e->msg : "");
  cr_assert_eq(l->n, n, "%s", text);
  return l;
}

Test(split, brackets_and_escaped_quotes_in_strings) {
  const char *t = "[{\"Id\":\"a\",\"Labels\":{\"k]\":\"]}[{\\\"\\\\\",\"q\":\"\\\\\\\"}\"}} ,\n{\"Id\":\"b\"}]";
  _cleanup_(dk_list_freep) struct dk_list *l = parse_ok(DK_CONTAINER, t, 2);
  cr_assert_str_eq(dk_item_label(&l->items[0], "k]"), "]}[{\"\\");
  cr_assert_str_eq(dk_item_label(&l->items[0], "q"), "\\\"}");
  cr_assert_str_eq(l->items[1].id, "b");
}

/* n nested arrays inside an element's field. */
static char *nested(unsigned n) {
  char *t = malloc(2 * n + 64), *p = t;
  p += sprintf(p, "[{\"Id\":\"a\",\"x\":");
  for (unsigned i = 0; i < n; i++)
    *p++ = '[';
  for (unsigned i = 0; i < n; i++)
    *p++ = ']';
  strcpy(p, "}]");
  return t;
}

Test(split, deep_nesting) {
  struct seen s;
  _cleanup_free_ char *ok = nested(DK_SPLIT_MAX_DEPTH - 1);
  _cleanup_error_ ca_error *e = NULL;
  cr_assert_eq(split_in(DK_SPLIT_ARRAY, ok, strlen(ok), 0, &s, &e), 0, "%s", e ? e->msg : "");
  cr_assert_eq(s.n, 1);
  _cleanup_free_ char *deep = nested(100000);
  cr_assert_eq(split_in(DK_SPLIT_ARRAY, deep, strlen(deep), 4096, &s, &e), -EBADMSG);
  cr_assert(strstr(e->msg, "nesting too deep"), "%s", e->msg);
  cr_assert_eq(s.n, 0);
}

/* Every proper prefix of a real answer is an error, and no element is handed over twice or half. */
Test(split, every_truncation_fails) {
  const char *names[] = {"containers.json", "networks.json", "volumes.json"};
  for (size_t f = 0; f < 3; f++) {
    size_t len;
    _cleanup_free_ char *text = slurp(names[f], &len);
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
      len--;
    static struct seen s;
    for (size_t cut = 0; cut < len; cut++) {
      _cleanup_error_ ca_error *e = NULL;
      cr_assert_lt(split_in(f == 2 ? DK_SPLIT_VOLUMES : DK_SPLIT_ARRAY, text, cut, 7, &s, &e), 0, "%s cut at %zu",
                   names[f], cut);
      for (char *line = s.text; *line; line = strchr(line, '\n') + 1) {
        cJSON *j = cJSON_ParseWithLength(line, (size_t)(strchr(line, '\n') - line));
        cr_assert(j, "%s cut at %zu: a half element went out", names[f], cut);
        cJSON_Delete(j);
      }
    }
  }
}

/* The error of a list answer that must not parse (no list comes with it); the caller frees it. */
static ca_error *parse_fails(enum dk_kind kind, const char *text) {
  struct dk_list *l = NULL;
  ca_error *e = NULL;
  cr_assert_lt(dk_parse_list(kind, text, strlen(text), &l, &e), 0, "accepted: %s", text);
  cr_assert_null(l);
  cr_assert_not_null(e);
  return e;
}

Test(split, not_a_list) {
  const char *bad[] = {
      "",
      "   ",
      "{}",                              /* containers: an object */
      "[{\"Id\":\"a\"},]",               /* trailing comma */
      "[{\"Id\":\"a\"} {\"Id\":\"b\"}]", /* no comma */
      "[{\"Id\":\"a\"}]]",
      "[{\"Id\":\"a\"}] x",
      "[1]",
      "[\"s\"]",
      "[[]]",
      "[{\"Id\":\"a\"]",
      "[{\"Id\":\"a\"}",
      "[{\"Id\":\"a\"}}]",
      "[{\"Id\":\"a\",}]", /* cJSON's part */
      "[{\"Id\":\"\\ud800\"}] garbage",
  };
  for (size_t i = 0; i < ELEMENTSOF(bad); i++)
    ca_error_free(parse_fails(DK_CONTAINER, bad[i]));
  const char *bad_volumes[] = {
      "[]",
      "{\"Volumes\":{}}",
      "{\"Volumes\":[],\"Volumes\":[]}",
      "{\"Volumes\":[{\"Name\":\"v\"}],\"Warnings\":nul}",
      "{\"Volumes\":[{\"Name\":\"v\"}],\"Warnings\":[}",
      "{\"Volumes\":[{\"Name\":\"v\"}] \"Warnings\":null}",
      "{\"Volumes\":[{\"Name\":\"v\"}],}",
      "{Volumes:[]}",
      "{\"Volumes\":[]}}",
      "{\"Volumes\":[],\"Warnings\":nullx}",
      "{\"Volumes\":[],\"Warnings\":1.5e3abc}",
  };
  for (size_t i = 0; i < ELEMENTSOF(bad_volumes); i++)
    ca_error_free(parse_fails(DK_VOLUME, bad_volumes[i]));
}

Test(split, volumes_members_in_any_order) {
  const char *t = " { \"Warnings\" : [ ] , \"Volumes\" : null } ";
  _cleanup_(dk_list_freep) struct dk_list *l = parse_ok(DK_VOLUME, t, 0);
  const char *t2 = "{\"Warnings\":null,\"\\u0056olumes\":[{\"Name\":\"v1\"},{\"Name\":\"v2\"}],\"x\":-1.5e3}";
  _cleanup_(dk_list_freep) struct dk_list *l2 = parse_ok(DK_VOLUME, t2, 2);
  cr_assert_str_eq(l2->items[1].id, "v2");
}

/* The engine lists the volumes of every driver, and warns of each driver it could not ask (a volume plugin that is
 * down): what that driver holds is missing from the answer, which is then no proof that a session's volumes are gone.
 */
Test(split, a_volume_list_with_warnings_is_incomplete) {
  const char *warned[] = {
      "{\"Volumes\":[{\"Name\":\"v\"}],\"Warnings\":[\"list plug: VolumeDriver.List: backend down\"]}",
      "{\"Warnings\":[\"list plug: VolumeDriver.List: backend down]\",\"b\"],\"Volumes\":[]}", /* ] in a string */
      "{\"Volumes\":[],\"Warnings\":\"list plug: VolumeDriver.List: backend down\"}",
  };
  for (size_t i = 0; i < ELEMENTSOF(warned); i++) {
    _cleanup_error_ ca_error *e = parse_fails(DK_VOLUME, warned[i]);
    cr_assert_not_null(strstr(e->msg, "VolumeDriver.List: backend down"), "the warning is not said: %s", e->msg);
  }
  _cleanup_(dk_list_freep) struct dk_list *none = parse_ok(DK_VOLUME, "{\"Volumes\":[],\"Warnings\":null}", 0);
  _cleanup_(dk_list_freep) struct dk_list *empty = parse_ok(DK_VOLUME, "{\"Volumes\":[],\"Warnings\":[]}", 0);
}

/* An element goes out as soon as it is complete, before the answer ends: memory holds one element. */
Test(split, elements_go_out_as_they_arrive) {
  struct seen s = {0};
  struct dk_split sp;
  dk_split_init(&sp, DK_SPLIT_ARRAY, 0, remember, &s);
  _cleanup_error_ ca_error *e = NULL;
  const char *a = "[{\"Id\":\"a\"}, {\"Id\":";
  cr_assert_eq(dk_split_feed(&sp, a, strlen(a), &e), 0);
  cr_assert_eq(s.n, 1);
  cr_assert_leq(sp.value.len, strlen("{\"Id\":"));
  cr_assert_eq(dk_split_feed(&sp, "\"b\"}]", 5, &e), 0);
  cr_assert_eq(dk_split_finish(&sp, &e), 0);
  cr_assert_eq(s.n, 2);
  dk_split_done(&sp);
}

/* An element over the cap is EMSGSIZE; a callback's error stops the split with that error. */
static int refuse(void *userdata, const char *json, size_t len, ca_error **err) {
  (void)userdata, (void)json, (void)len;
  return ca_error_set(err, ENOSPC, "no");
}

Test(split, caps_and_callback_errors) {
  struct seen s;
  _cleanup_error_ ca_error *e = NULL;
  struct dk_split sp;
  dk_split_init(&sp, DK_SPLIT_ARRAY, 16, remember, &s);
  const char *t = "[{\"Id\":\"aaaaaaaaaaaaaaaaaaaa\"}]";
  cr_assert_eq(dk_split_feed(&sp, t, strlen(t), &e), -EMSGSIZE);
  cr_assert_lt(dk_split_feed(&sp, "]", 1, NULL), 0, "fed after an error");
  dk_split_done(&sp);
  dk_split_init(&sp, DK_SPLIT_ARRAY, 0, refuse, NULL);
  ca_error_free(e);
  e = NULL;
  cr_assert_eq(dk_split_feed(&sp, t, strlen(t), &e), -ENOSPC);
  cr_assert_str_eq(e->msg, "no");
  dk_split_done(&sp);
}
