/* Label validation (dk_label_validate: --label key=value from users, labels written onto engine objects). A valid
 * label must also build the JSON the engine gets (dk_json_add_labels) and read back the same value. */
#include "docker-internal.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *kv = fuzz_cstr(data, size);
  ca_error *e = NULL;
  int r = dk_label_validate(kv, &e);
  fuzz_check_result(r, &e);
  if (r == 0) {
    const char *eq = strchr(kv, '=');
    FUZZ_ASSERT(eq && eq > kv);
    cJSON *o = cJSON_CreateObject();
    const char *labels[] = {kv, NULL};
    r = dk_json_add_labels(o, labels, &e);
    fuzz_check_result(r, &e);
    FUZZ_ASSERT(r == 0);
    char *key = strndup(kv, (size_t)(eq - kv));
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, "Labels");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(l, key);
    FUZZ_ASSERT(cJSON_IsString(v) && strcmp(v->valuestring, eq + 1) == 0);
    free(key);
    cJSON_Delete(o);
  }
  free(kv);
  return 0;
}
