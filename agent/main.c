/* cleanup-agent: parses the global options and dispatches to one handler per command (after crun's crun.c). */
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "commands.h"
#include "config.h"
#include "docker.h"
#include "globals.h"
#include "lifecycle.h"
#include "options.h"
#include "process_name.h"
#include "version.h"

struct ag_command {
  const char *name;
  const char *summary;
  ag_command_fn handler;
};

static const struct ag_command commands[] = {
    {"run", "run a command so that nothing it starts outlives it", ag_cmd_run},
    {"container-seq", "run each test file in its own limited container, with checkpoint and resume",
     ag_cmd_container_seq},
    {"gc", "collect leftovers of dead and expired sessions", ag_cmd_gc},
    {"ps", "list this host's sessions", ag_cmd_ps},
    {"kill", "kill and clean up sessions of this host", ag_cmd_kill},
    {"check", "say what this host and user can do: cgroups, limits, engine, state dir", ag_cmd_check},
};

static void print_help(FILE *f) {
  fprintf(f, "Usage: " AG_PROGRAM " [OPTIONS] COMMAND [ARGS]...\n"
             "\n"
             "Makes sure that nothing a test run starts outlives it: processes, containers, networks, volumes.\n"
             "\n"
             "Commands:\n");
  for (size_t i = 0; i < ELEMENTSOF(commands); i++)
    fprintf(f, "  %-15s %s\n", commands[i].name, commands[i].summary);
  fprintf(f,
          "\n"
          "Options (each also from the environment variable in brackets):\n"
          "  --docker-host URL     engine address, unix:///path or tcp://host:port [CLEANUP_AGENT_DOCKER_HOST]\n"
          "  --state-dir DIR       session registry [CLEANUP_AGENT_STATE_DIR; default /run/cleanup-agent as root,\n"
          "                        else $XDG_RUNTIME_DIR/cleanup-agent]\n"
          "  --cgroup-root PATH    cgroup v2 directory for session cgroups [CLEANUP_AGENT_CGROUP_ROOT]\n"
          "  --cgroup-driver auto|systemd|cgroupfs\n"
          "                        systemd: a transient scope per session, asked of systemd; cgroupfs: the agent\n"
          "                        writes the cgroups; auto: systemd where it is PID 1 [CLEANUP_AGENT_CGROUP_DRIVER;\n"
          "                        default auto]\n"
          "  --log-level LEVEL     error, warning, notice, info or debug [CLEANUP_AGENT_LOG_LEVEL; default notice]\n"
          "  --teardown-timeout DUR\n"
          "                        how long the end of a session and its guardian may take; what is not removed\n"
          "                        by then stays registered [CLEANUP_AGENT_TEARDOWN_TIMEOUT; default 30s]\n"
          "  -h, --help            show this help\n"
          "  -V, --version         show the version\n"
          "\n"
          "The engine is found as the docker CLI finds it, the first of: --docker-host, CLEANUP_AGENT_DOCKER_HOST,\n"
          "DOCKER_HOST, the active docker context (DOCKER_CONTEXT, else currentContext in $DOCKER_CONFIG/config.json\n"
          "or ~/.docker/config.json; 'default' is none), $XDG_RUNTIME_DIR/docker.sock when it exists,\n"
          "/var/run/docker.sock. run says which it used when it is not /var/run/docker.sock.\n"
          "\n"
          "Run '" AG_PROGRAM " COMMAND --help' for the options of a command.\n");
}

/* True when the command's own arguments ask for its --help (before any "--"): that needs no engine. */
static bool asks_for_help(int argc, char **argv) {
  for (int i = 1; i < argc && !streq(argv[i], "--"); i++)
    if (streq(argv[i], "--help") || streq(argv[i], "-h"))
      return true;
  return false;
}

/* The engine of every command, found once: --docker-host, CLEANUP_AGENT_DOCKER_HOST, then the docker CLI's order
 * (dk_host_find; given and origin: the first two, as ag_globals_parse found them). A TCP context's TLS files become
 * DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, the docker CLI's own variables, so that the agent's clients, its guardian and
 * a command run with --no-docker-proxy all use them. A context without them clears the variables, as the docker CLI
 * ignores them for a context: a command talking to the session's proxy socket must not try TLS on it. */
static int find_engine(struct ag_globals *g, const char *given, const char *origin, struct dk_host *ret,
                       ca_error **err) {
  int r = dk_host_find(given, origin, ret, err);
  if (r < 0)
    return r;
  bool context = ret->origin && strncmp(ret->origin, "docker context ", 15) == 0;
  if (context && ret->tls_dir && strncmp(ret->url, "tcp://", 6) == 0) {
    if (setenv("DOCKER_TLS_VERIFY", "1", 1) < 0 || setenv("DOCKER_CERT_PATH", ret->tls_dir, 1) < 0)
      return ca_error_set(err, ENOMEM, "out of memory");
  } else if (context) {
    (void)unsetenv("DOCKER_TLS_VERIFY"); /* valid names: cannot fail */
    (void)unsetenv("DOCKER_CERT_PATH");
  }
  g->docker_host = ret->url;
  g->docker_host_source = ret->origin;
  g->docker_host_origin = streq(ret->url, AG_DEFAULT_DOCKER_HOST) ? NULL : ret->origin;
  return 0;
}

int main(int argc, char **argv) {
  ag_process_name_init(argc, argv); /* before anything parses or changes argv and the environment */
  struct ag_globals g = {0};
  struct ag_global_opts o = {0};
  int next;
  int r = ag_globals_parse(argc, argv, &g, &o, &next);
  if (r == AG_OPTIONS_HELP)
    print_help(stdout);
  if (r != 0)
    return r == AG_OPTIONS_HELP ? AG_EXIT_OK : r;
  if (o.version) {
    ag_print_version(stdout);
    return AG_EXIT_OK;
  }

  if (next >= argc)
    return ag_usage_error(NULL, AG_EXIT_USAGE, "no command given; see '" AG_PROGRAM " --help'");
  const char *name = argv[next];
  for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
    if (!streq(commands[i].name, name))
      continue;
    _cleanup_(dk_host_done) struct dk_host engine = {0};
    _cleanup_error_ ca_error *err = NULL;
    int found = find_engine(&g, o.docker_host, o.docker_host_from, &engine, &err);
    if (found < 0 && streq(name, "check")) {
      g.docker_host_error = err ? err->msg : "out of memory"; /* check says it as its engine verdict */
    } else if (found < 0 && !asks_for_help(argc - next, argv + next)) {
      fprintf(stderr, AG_PROGRAM ": %s\n", err ? err->msg : "out of memory");
      return streq(name, "run") || streq(name, "container-seq") ? AG_EXIT_AGENT_FAILED : AG_EXIT_USAGE;
    }
    /* A dropped engine connection must not kill us with SIGPIPE (libcurl writes to its sockets). */
    signal(SIGPIPE, SIG_IGN);
    return commands[i].handler(&g, argc - next, argv + next);
  }
  return ag_usage_error(NULL, AG_EXIT_USAGE, "unknown command '%s'; see '" AG_PROGRAM " --help'", name);
}
