# cleanup-agent gc on every client node of a Nomad cluster, once a day: a periodic sysbatch job (one allocation per
# eligible node, run to completion).
#   nomad job run deploy/nomad/cleanup-agent-gc.nomad.hcl
# Needs Nomad 1.6+ (periodic "crons"), the docker driver with bind mounts allowed on the clients:
#   plugin "docker" { config { volumes { enabled = true } } }
# and the image on each node (docker build -f deploy/Dockerfile -t cleanup-agent:0.1.0 ., or a registry of yours).
#
# The task sees the engine socket and nothing else of the node, and has no network at all (the socket is a file).
# Its hostname is the container's, not the node's, so gc applies only the rule that holds from anywhere: `expires`
# in the past (sessions started with --ttl). Dead sessions of the node without a TTL are left to the node's systemd
# timer (deploy/systemd/). Do not set hostname = the node's name without pid_mode = "host": gc would judge owner
# processes in a PID namespace where they do not exist and collect live sessions. See deploy/README.md.
#
# Written in the subset of HCL that both Nomad's HCL2 parser and HCL1 parsers read (tests/deploy parses it).
job "cleanup-agent-gc" {
  type        = "sysbatch"
  datacenters = ["*"]
  priority    = 30

  periodic {
    crons            = ["@daily"]
    time_zone        = "UTC"
    prohibit_overlap = true
  }

  constraint {
    attribute = "${attr.driver.docker}"
    value     = "1"
  }

  group "gc" {
    count = 1

    restart {
      attempts = 1
      delay    = "10m"
      mode     = "fail"
    }

    task "gc" {
      driver = "docker"

      config {
        image           = "cleanup-agent:0.1.0"
        force_pull      = false
        args            = ["gc", "--parallel", "4"]
        network_mode    = "none"
        readonly_rootfs = true
        cap_drop        = ["all"]
        security_opt    = ["no-new-privileges"]

        # Read-write: removing containers is a write to the engine.
        mount {
          type     = "bind"
          source   = "/var/run/docker.sock"
          target   = "/var/run/docker.sock"
          readonly = false
        }

        # gc's own lock file; no session of the node lives here.
        mount {
          type     = "tmpfs"
          target   = "/run/cleanup-agent"
          readonly = false
          tmpfs_options {
            size = 1048576
            mode = 448 # 0700
          }
        }
      }

      env {
        CLEANUP_AGENT_STATE_DIR = "/run/cleanup-agent"
        DOCKER_HOST             = "unix:///var/run/docker.sock"
      }

      resources {
        cpu    = 100
        memory = 64
      }
    }
  }
}
