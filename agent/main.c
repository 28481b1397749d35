/* cleanup-agent: parses the global options and dispatches to one handler per command (after crun's crun.c). */
#include <getopt.h>
#include <stdbool.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "cgroup.h"
#include "commands.h"
#include "config.h"
#include "docker.h"
#include "lifecycle.h"
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

static const char *env_or(const char *value, const char *var) {
  if (value)
    return value;
  const char *e = getenv(var);
  return e && *e ? e : NULL;
}

/* True when the command's own arguments ask for its --help (before any "--"): that needs no engine. */
static bool asks_for_help(int argc, char **argv) {
  for (int i = 1; i < argc && !streq(argv[i], "--"); i++)
    if (streq(argv[i], "--help") || streq(argv[i], "-h"))
      return true;
  return false;
}

/* The engine of every command, found once: --docker-host, CLEANUP_AGENT_DOCKER_HOST, then the docker CLI's order
 * (dk_host_find). A TCP context's TLS files become DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, the docker CLI's own
 * variables, so that the agent's clients, its guardian and a command run with --no-docker-proxy all use them. A
 * context without them clears the variables, as the docker CLI ignores them for a context: a command talking to the
 * session's proxy socket must not try TLS on it. */
static int find_engine(struct ag_globals *g, const char *flag, struct dk_host *ret, ca_error **err) {
  const char *given = flag, *origin = "--docker-host";
  if (!given) {
    given = env_or(NULL, "CLEANUP_AGENT_DOCKER_HOST");
    origin = "CLEANUP_AGENT_DOCKER_HOST";
  }
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

/* One line on stderr, "cleanup-agent: <what>; see 'cleanup-agent --help'", and the usage exit code. */
static int usage_error(const char *what, const char *arg) {
  fprintf(stderr, AG_PROGRAM ": %s '%s'; see '" AG_PROGRAM " --help'\n", what, arg);
  return AG_EXIT_USAGE;
}

/* --teardown-timeout: a duration above 0; one line when it is not. */
static int parse_teardown(const char *value, uint64_t *ret) {
  _cleanup_error_ ca_error *err = NULL;
  if (ca_parse_duration(value, ret, &err) < 0 || (*ret == 0 && ca_error_set(&err, EINVAL, "must be above 0") < 0)) {
    fprintf(stderr, AG_PROGRAM ": --teardown-timeout '%s': %s\n", value, err->msg);
    return -EINVAL;
  }
  return 0;
}

/* --cgroup-driver: every cgroup root the agent opens uses it (cg_driver_set_default); one line when it is bad. */
static int parse_cgroup_driver(struct ag_globals *g, const char *value, const char *origin) {
  _cleanup_error_ ca_error *err = NULL;
  enum cg_driver driver;
  if (cg_driver_parse(value, &driver, &err) < 0) {
    fprintf(stderr, AG_PROGRAM ": %s: %s\n", origin, err->msg);
    return -EINVAL;
  }
  cg_driver_set_default(driver);
  g->systemd_driver_origin = driver == CG_DRIVER_SYSTEMD ? origin : NULL;
  return 0;
}

/* The global options' variables under the flags given (NULL: not given); -EINVAL after one line on a bad value. */
static int globals_from_environment(struct ag_globals *g, const char *teardown, const char *log_level,
                                    const char *cgroup_driver) {
  g->state_dir = env_or(g->state_dir, "CLEANUP_AGENT_STATE_DIR");
  g->cgroup_root = env_or(g->cgroup_root, "CLEANUP_AGENT_CGROUP_ROOT");
  const char *driver_origin = cgroup_driver ? "--cgroup-driver" : "CLEANUP_AGENT_CGROUP_DRIVER";
  cgroup_driver = env_or(cgroup_driver, "CLEANUP_AGENT_CGROUP_DRIVER");
  if (cgroup_driver && parse_cgroup_driver(g, cgroup_driver, driver_origin) < 0)
    return -EINVAL;
  teardown = env_or(teardown, "CLEANUP_AGENT_TEARDOWN_TIMEOUT");
  if (teardown && parse_teardown(teardown, &g->teardown_usec) < 0)
    return -EINVAL;
  log_level = env_or(log_level, "CLEANUP_AGENT_LOG_LEVEL");
  if (log_level) {
    _cleanup_error_ ca_error *err = NULL;
    enum ca_log_level level;
    if (ca_log_parse_level(log_level, &level, &err) < 0) {
      fprintf(stderr, AG_PROGRAM ": %s\n", err->msg);
      return -EINVAL;
    }
    ca_log_set_level(level);
  }
  return 0;
}

int main(int argc, char **argv) {
  enum { OPT_DOCKER_HOST = 0x100, OPT_STATE_DIR, OPT_CGROUP_ROOT, OPT_CGROUP_DRIVER, OPT_LOG_LEVEL, OPT_TEARDOWN };
  static const struct option options[] = {
      {"docker-host", required_argument, NULL, OPT_DOCKER_HOST},
      {"state-dir", required_argument, NULL, OPT_STATE_DIR},
      {"cgroup-root", required_argument, NULL, OPT_CGROUP_ROOT},
      {"cgroup-driver", required_argument, NULL, OPT_CGROUP_DRIVER},
      {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
      {"teardown-timeout", required_argument, NULL, OPT_TEARDOWN},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {},
  };
  ag_process_name_init(argc, argv); /* before anything parses or changes argv and the environment */
  struct ag_globals g = {0};
  const char *log_level = NULL, *docker_host = NULL, *teardown = NULL, *cgroup_driver = NULL;
  int c;

  opterr = 0; /* our own one-line messages instead of getopt's */
  /* "+": stop at the command name, whose options are its own. */
  while ((c = getopt_long(argc, argv, "+:hV", options, NULL)) != -1) {
    switch (c) {
      case OPT_DOCKER_HOST:
        docker_host = optarg;
        break;
      case OPT_STATE_DIR:
        g.state_dir = optarg;
        break;
      case OPT_CGROUP_ROOT:
        g.cgroup_root = optarg;
        break;
      case OPT_CGROUP_DRIVER:
        cgroup_driver = optarg;
        break;
      case OPT_LOG_LEVEL:
        log_level = optarg;
        break;
      case OPT_TEARDOWN:
        teardown = optarg;
        break;
      case 'h':
        print_help(stdout);
        return AG_EXIT_OK;
      case 'V':
        ag_print_version(stdout);
        return AG_EXIT_OK;
      case ':':
        return usage_error("missing value for option", argv[optind - 1]);
      default:
        return usage_error("unknown option", argv[optind - 1]);
    }
  }

  if (globals_from_environment(&g, teardown, log_level, cgroup_driver) < 0)
    return AG_EXIT_USAGE;

  if (optind >= argc) {
    fprintf(stderr, AG_PROGRAM ": no command given; see '" AG_PROGRAM " --help'\n");
    return AG_EXIT_USAGE;
  }
  const char *name = argv[optind];
  for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
    if (!streq(commands[i].name, name))
      continue;
    _cleanup_(dk_host_done) struct dk_host engine = {0};
    _cleanup_error_ ca_error *err = NULL;
    int found = find_engine(&g, docker_host, &engine, &err);
    if (found < 0 && streq(name, "check")) {
      g.docker_host_error = err ? err->msg : "out of memory"; /* check says it as its engine verdict */
    } else if (found < 0 && !asks_for_help(argc - optind, argv + optind)) {
      fprintf(stderr, AG_PROGRAM ": %s\n", err ? err->msg : "out of memory");
      return streq(name, "run") || streq(name, "container-seq") ? AG_EXIT_AGENT_FAILED : AG_EXIT_USAGE;
    }
    /* A dropped engine connection must not kill us with SIGPIPE (libcurl writes to its sockets). */
    signal(SIGPIPE, SIG_IGN);
    return commands[i].handler(&g, argc - optind, argv + optind);
  }
  return usage_error("unknown command", name);
}
