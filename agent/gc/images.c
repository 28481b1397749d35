/* --images=remove: the images a session built (the proxy labels every POST /build) go with the session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "disk.h"

/* Short form of an image id for messages: the first 12 hex digits. */
static const char *short_image(const char *id) {
  return strncmp(id, "sha256:", 7) == 0 ? id + 7 : id;
}

void ag_images_remove_session(struct dk_client *dk, const char *id, unsigned *ret_removed) {
  char label[sizeof(AG_LABEL_SESSION) + AG_SESSION_ID_LEN + 2];
  snprintf(label, sizeof(label), AG_LABEL_SESSION "=%s", id);
  const struct dk_filter f[] = {{"label", label}, {NULL, NULL}};
  _cleanup_(dk_images_freep) struct dk_images *l = NULL;
  _cleanup_error_ ca_error *err = NULL;
  if (dk_image_list(dk, f, &l, &err) < 0) {
    ca_log_warning("session %s: its images stay: %s", id, err->msg);
    return;
  }
  ca_buf kept = CA_BUF_INIT(4096);
  unsigned n_kept = 0;
  for (size_t i = 0; i < l->n; i++) {
    const struct dk_image *im = &l->v[i];
    /* Re-checked here: the label filter is the engine's, the decision ours. */
    const char *s = dk_labels_get(&im->labels, AG_LABEL_SESSION), *keep = dk_labels_get(&im->labels, AG_LABEL_KEEP);
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
