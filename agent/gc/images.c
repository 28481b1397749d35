/* The images a session built or committed: the proxy labels every POST /build and /commit with
 * io.cleanup-agent.built-by=<session> (the one label of the agent's with a value on an image; a commit's others are
 * set empty), and --images=remove, gc's disk pass and the receipt find them by it here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk.h"

/* Short form of an image id for messages: the first 12 hex digits. */
static const char *short_image(const char *id) {
  return strncmp(id, "sha256:", 7) == 0 ? id + 7 : id;
}

const char *ag_image_built_by(const struct dk_image *im) {
  const char *s = dk_labels_get(&im->labels, AG_LABEL_BUILT_BY);
  return s && ca_session_id_valid(s) ? s : NULL;
}

int ag_images_list_built_by(struct dk_client *dk, const char *id, struct dk_images **ret, ca_error **err) {
  char label[sizeof(AG_LABEL_BUILT_BY) + AG_SESSION_ID_LEN + 2];
  snprintf(label, sizeof(label), AG_LABEL_BUILT_BY "=%s", id);
  const struct dk_filter f[] = {{"label", label}, {NULL, NULL}};
  return dk_image_list(dk, f, ret, err);
}

void ag_images_remove_session(struct dk_client *dk, const char *id, unsigned *ret_removed) {
  _cleanup_(dk_images_freep) struct dk_images *l = NULL;
  _cleanup_error_ ca_error *err = NULL;
  if (ag_images_list_built_by(dk, id, &l, &err) < 0) {
    ca_log_warning("session %s: its images stay: %s", id, err->msg);
    return;
  }
  ca_buf kept = CA_BUF_INIT(4096);
  unsigned n_kept = 0;
  for (size_t i = 0; i < l->n; i++) {
    const struct dk_image *im = &l->v[i];
    /* Re-checked here: the label filter is the engine's, the decision ours. */
    const char *s = ag_image_built_by(im), *keep = dk_labels_get(&im->labels, AG_LABEL_KEEP);
    if (!s || !streq(s, id) || (keep && streq(keep, "true")))
      continue;
    _cleanup_error_ ca_error *e = NULL;
    int r = dk_image_remove(dk, im->id, &e);
    if (r == 0)
      (*ret_removed)++;
    else if (r < 0) {
      (void)ca_buf_appendf(&kept, NULL, "%s%.12s (%s)", n_kept ? ", " : "", short_image(im->id), e->msg);
      n_kept++;
    }
  }
  if (n_kept)
    ca_log_notice("session %s: kept %u image%s the engine would not remove: %s", id, n_kept, n_kept == 1 ? "" : "s",
                  ca_buf_str(&kept));
  ca_buf_free(&kept);
}
