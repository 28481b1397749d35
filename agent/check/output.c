/* check's output: one screen for people, one JSON object for configuration management. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

void ag_check_print_table(const struct check_report *rep, FILE *f) {
  fprintf(f, "cleanup-agent check: this host, as %s (uid %u)\n\n", rep->user, (unsigned)rep->uid);
  fprintf(f, "  cgroup driver    %s\n", rep->driver ? rep->driver : "-");
  fprintf(f, "  cgroup mode      %s\n", rep->mode_text ? rep->mode_text : "-");
  fprintf(f, "  engine           %s (found by: %s)\n", rep->engine ? rep->engine : "-",
          rep->engine_source ? rep->engine_source : "-");
  fprintf(f, "  state directory  %s\n\n", rep->state_dir ? rep->state_dir : "-");
  for (size_t i = 0; i < rep->n; i++) {
    const struct check_verdict *v = &rep->v[i];
    fprintf(f, "  %-3s  %-26s %s\n", v->ok ? "yes" : "no", v->title, v->detail ? v->detail : "");
    size_t same = 0; /* a fix said already is named, not repeated: the screen stays one screen */
    while (v->fix && same < i && !(rep->v[same].fix && streq(rep->v[same].fix, v->fix)))
      same++;
    if (v->fix && same < i)
      fprintf(f, "       %-26s fix: as for %s\n", "", rep->v[same].title);
    else if (v->fix)
      fprintf(f, "       %-26s fix: %s\n", "", v->fix);
  }
  fprintf(f, "\n%s\n",
          rep->ok ? "Everything run needs with its defaults works here."
                  : "Something run needs with its defaults does not work here (exit 3): see the fixes above.");
}

static void add_string(cJSON *o, const char *key, const char *s) {
  if (s)
    cJSON_AddStringToObject(o, key, s);
  else
    cJSON_AddNullToObject(o, key);
}

void ag_check_print_json(const struct check_report *rep, FILE *f) {
  cJSON *o = cJSON_CreateObject();
  if (!o)
    return;
  cJSON_AddBoolToObject(o, "ok", rep->ok);
  cJSON_AddNumberToObject(o, "uid", rep->uid);
  cJSON_AddBoolToObject(o, "engine_answers", rep->engine_answers);
  const struct {
    const char *key, *value;
  } fields[] = {
      {"user", rep->user},
      {"cgroup_driver", rep->driver},
      {"cgroup_mode", rep->mode},
      {"tracking", rep->tracking},
      {"cgroup_root", rep->cgroup_root},
      {"engine", rep->engine},
      {"engine_source", rep->engine_source},
      {"engine_version", rep->engine_version},
      {"state_dir", rep->state_dir},
  };
  for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
    add_string(o, fields[i].key, fields[i].value);
  cJSON *checks = cJSON_AddObjectToObject(o, "checks");
  for (size_t i = 0; checks && i < rep->n; i++) {
    const struct check_verdict *v = &rep->v[i];
    cJSON *c = cJSON_AddObjectToObject(checks, v->name);
    if (!c)
      continue;
    cJSON_AddBoolToObject(c, "ok", v->ok);
    cJSON_AddBoolToObject(c, "required", v->required);
    add_string(c, "title", v->title);
    add_string(c, "detail", v->detail);
    add_string(c, "fix", v->fix);
  }
  char *text = cJSON_Print(o);
  if (text)
    fprintf(f, "%s\n", text);
  free(text);
  cJSON_Delete(o);
}
