/* The Docker proxy of a session: its socket in the state dir and its labels (apart from proxy.c, which the fuzz target
 * links alone). */
#include "proxy.h"
#include "session.h"

int ag_proxy_start_session(struct ag_state *st, const struct ag_registry *reg, const char *docker_host,
                           const char *const *extra_labels, struct ag_proxy **ret, ca_error **err) {
  const char *engine = ag_proxy_engine_socket(docker_host);
  if (!engine)
    return ca_error_set(
        err, EPROTONOSUPPORT,
        "DOCKER_HOST %s is not a Unix socket: no Docker labeling proxy, so only what the command labels "
        "with CLEANUP_AGENT_SESSION itself is collected",
        docker_host);
  if (!ag_proxy_engine_answers(engine))
    return ca_error_set(err, ECONNREFUSED, "docker proxy: nothing answers at %s", engine);
  _cleanup_strv_free_ char **labels = ag_session_labels(reg, extra_labels);
  _cleanup_free_ char *path = ag_session_socket_path(st, reg->id);
  if (!labels || !path)
    return ca_error_set(err, ENOMEM, "out of memory");
  struct ag_proxy_config cfg = {
      .socket_path = path, .engine_socket = engine, .session_id = reg->id, .labels = (const char *const *)labels};
  return ag_proxy_start(&cfg, ret, err);
}
