#!/usr/bin/python3
"""Structural checks of deploy/: each file parsed by a real parser, then the properties that matter asserted.

Usage: check_deploy.py units UNITDIR PREFIX | kubernetes FILE | github FILE | gitlab FILE | nomad FILE | dockerfile FILE [BINARY]
Prints 'N passed, N failed' and exits 1 when a check failed. Needs Debian's python3-yaml and python3-pyhcl.
"""
import os
import re
import shlex
import sys

checks = []  # (name, ok, detail)


def check(name, ok, detail=""):
    checks.append((name, bool(ok), detail))


def need(module, package):
    try:
        return __import__(module)
    except ImportError:
        sys.exit(f"check_deploy.py: python module '{module}' missing: apt-get install {package}")


# --- systemd units ---------------------------------------------------------------------------------------------

def parse_unit(path):
    """A unit file as {section: [(key, value), ...]}: keys repeat, so no configparser."""
    sections, cur = {}, None
    with open(path) as f:
        text = f.read().replace("\\\n", " ")
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        m = re.fullmatch(r"\[(\w+)\]", line)
        if m:
            cur = sections.setdefault(m.group(1), [])
            continue
        key, sep, value = line.partition("=")
        if not sep or cur is None:
            raise ValueError(f"{path}: not a unit file line: {line}")
        cur.append((key.strip(), value.strip()))
    return sections


def values(unit, section, key):
    return [v for k, v in unit.get(section, []) if k == key]


def last(unit, section, key):
    v = values(unit, section, key)
    return v[-1] if v else None


def check_units(unitdir, prefix):
    binary = f"{prefix}/bin/cleanup-agent"
    gc = parse_unit(f"{unitdir}/cleanup-agent-gc.service")
    exec_start = shlex.split(last(gc, "Service", "ExecStart") or "")
    check("gc: Type=oneshot", last(gc, "Service", "Type") == "oneshot")
    check("gc: ExecStart is the installed binary", exec_start[:1] == [binary], exec_start)
    check("gc: ExecStart runs gc", exec_start[1:2] == ["gc"], exec_start)
    check("gc: ExecStart writes metrics", "--metrics-file" in exec_start, exec_start)
    check("gc: never --dry-run", "--dry-run" not in exec_start)
    # The state dir holds live sessions' locks: a RuntimeDirectory without Preserve=yes would delete it at stop.
    check("gc: state dir is /run/cleanup-agent", values(gc, "Service", "RuntimeDirectory") == ["cleanup-agent"])
    check("gc: state dir preserved", last(gc, "Service", "RuntimeDirectoryPreserve") == "yes")
    check("gc: hardened (ProtectSystem=strict)", last(gc, "Service", "ProtectSystem") == "strict")
    check("gc: NoNewPrivileges", last(gc, "Service", "NoNewPrivileges") == "yes")
    # Options that would break gc: a read-only cgroup mount, hidden owner processes, no tcp engines.
    for key in ("ProtectControlGroups", "ProtectKernelTunables", "ProtectProc", "PrivatePIDs", "PrivateNetwork",
                "DynamicUser", "User", "PrivateUsers"):
        check(f"gc: {key} not set (breaks cgroups, /proc or the socket)", not values(gc, "Service", key))
    families = " ".join(values(gc, "Service", "RestrictAddressFamilies")).split()
    check("gc: AF_UNIX allowed (engine socket)", "AF_UNIX" in families, families)
    metrics_dir = exec_start[exec_start.index("--metrics-file") + 1].rsplit("/", 1)[0] if "--metrics-file" in exec_start else "?"
    rw = [p.lstrip("-") for p in " ".join(values(gc, "Service", "ReadWritePaths")).split()]
    check("gc: metrics directory writable", metrics_dir in rw, (metrics_dir, rw))

    timer = parse_unit(f"{unitdir}/cleanup-agent-gc.timer")
    check("timer: OnCalendar=daily", last(timer, "Timer", "OnCalendar") == "daily")
    check("timer: Persistent=true", last(timer, "Timer", "Persistent") == "true")
    check("timer: RandomizedDelaySec set", bool(last(timer, "Timer", "RandomizedDelaySec")))
    check("timer: wanted by timers.target", last(timer, "Install", "WantedBy") == "timers.target")
    check("timer: starts the gc service", last(timer, "Timer", "Unit") in (None, "cleanup-agent-gc.service"))

    run = parse_unit(f"{unitdir}/cleanup-agent-run@.service")
    exec_run = shlex.split(last(run, "Service", "ExecStart") or "")
    check("run@: Delegate=yes", last(run, "Service", "Delegate") == "yes")
    check("run@: ExecStart is the installed binary running 'run'", exec_run[:2] == [binary, "run"], exec_run)
    check("run@: the instance is the command", exec_run[-2:] == ["--", "%I"], exec_run)
    check("run@: KillMode=mixed (the agent cleans on SIGTERM)", last(run, "Service", "KillMode") == "mixed")
    check("run@: in the jobs slice", last(run, "Service", "Slice") == "cleanup_agent.slice")
    check("run@: state dir preserved", last(run, "Service", "RuntimeDirectoryPreserve") == "yes")
    parse_unit(f"{unitdir}/cleanup_agent.slice")
    check("slice: parses", True)


# --- YAML: Kubernetes and CI ------------------------------------------------------------------------------------

def load_yaml(path, many=False):
    yaml = need("yaml", "python3-yaml")
    with open(path) as f:
        return list(yaml.safe_load_all(f)) if many else yaml.safe_load(f)


def check_kubernetes(path):
    docs = [d for d in load_yaml(path, many=True) if d]
    kinds = [d.get("kind") for d in docs]
    check("k8s: a DaemonSet", kinds.count("DaemonSet") == 1, kinds)
    ds = next(d for d in docs if d.get("kind") == "DaemonSet")
    spec = ds["spec"]
    check("k8s: selector matches the template", all(spec["template"]["metadata"]["labels"].get(k) == v
                                                     for k, v in spec["selector"]["matchLabels"].items()))
    pod = spec["template"]["spec"]
    for key in ("hostPID", "hostNetwork", "hostIPC"):
        check(f"k8s: no {key}", not pod.get(key))
    check("k8s: no service account token", pod.get("automountServiceAccountToken") is False)
    vols = {v["name"]: v for v in pod["volumes"]}
    host_paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    check("k8s: the only host path is the engine socket", list(host_paths.values()) == ["/var/run/docker.sock"],
          host_paths)
    (c,) = pod["containers"]
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    sock = [m for n, m in mounts.items() if n in host_paths]
    check("k8s: socket mounted at /var/run/docker.sock", [m["mountPath"] for m in sock] == ["/var/run/docker.sock"])
    check("k8s: socket mounted read-write", all(not m.get("readOnly", False) for m in sock))
    check("k8s: hostPath type Socket", vols[sock[0]["name"]]["hostPath"].get("type") == "Socket" if sock else False)
    sc = c.get("securityContext", {})
    check("k8s: read-only root filesystem", sc.get("readOnlyRootFilesystem") is True)
    check("k8s: no privilege escalation", sc.get("allowPrivilegeEscalation") is False)
    check("k8s: not privileged", not sc.get("privileged"))
    check("k8s: all capabilities dropped", sc.get("capabilities", {}).get("drop") == ["ALL"])
    state = [m for m in c["volumeMounts"] if m["mountPath"] == "/run/cleanup-agent"]
    check("k8s: writable state dir is an emptyDir", len(state) == 1 and "emptyDir" in vols[state[0]["name"]])
    script = " ".join(c.get("command", []) + c.get("args", []))
    check("k8s: runs cleanup-agent gc", re.search(r"cleanup-agent gc\b", script), script)
    check("k8s: never --dry-run", "--dry-run" not in script)
    check("k8s: memory limit", bool(c.get("resources", {}).get("limits", {}).get("memory")))


def check_github(path):
    wf = load_yaml(path)
    # YAML 1.1 reads the key 'on' as True.
    check("github: triggers", "on" in wf or True in wf)
    jobs = wf["jobs"]
    check("github: one job", len(jobs) == 1, list(jobs))
    job = next(iter(jobs.values()))
    runs_on = job["runs-on"]
    check("github: self-hosted runner", "self-hosted" in (runs_on if isinstance(runs_on, list) else [runs_on]))
    steps = [s.get("run", "") for s in job["steps"]]
    wrapped = [s for s in steps if re.search(r"^\s*cleanup-agent run\b.* -- ", s, re.M)]
    check("github: a step wraps the tests in cleanup-agent run", len(wrapped) == 1, steps)
    env = job.get("env", {})
    check("github: sessions have a TTL", bool(env.get("CLEANUP_AGENT_TTL")) or any("--ttl" in s for s in wrapped))


def check_gitlab(path):
    ci = load_yaml(path)
    jobs = {k: v for k, v in ci.items() if isinstance(v, dict) and "script" in v}
    check("gitlab: one job", len(jobs) == 1, list(jobs))
    job = next(iter(jobs.values()))
    var = job.get("variables", {})
    check("gitlab: DOCKER_HOST is tcp://", str(var.get("DOCKER_HOST", "")).startswith("tcp://"), var)
    check("gitlab: TLS verified", str(var.get("DOCKER_TLS_VERIFY")) == "1", var)
    check("gitlab: DOCKER_CERT_PATH set", bool(var.get("DOCKER_CERT_PATH")))
    script = "\n".join(job["script"])
    m = re.search(r"cleanup-agent run\b(.*) -- ", script)
    check("gitlab: the job runs under cleanup-agent run", m, script)
    check("gitlab: with --ttl", m and "--ttl" in m.group(1), script)
    for f in ("ca.pem", "cert.pem", "key.pem"):
        check(f"gitlab: {f} written", f in "\n".join(job.get("before_script", [])))
    # A TTL shorter than the job would let another host's gc collect a live session.
    ttl, timeout = var.get("CLEANUP_AGENT_TTL"), job.get("timeout")
    check("gitlab: TTL longer than the job timeout", ttl and timeout and to_seconds(ttl) > to_seconds(timeout),
          (ttl, timeout))


def to_seconds(s):
    units = {"d": 86400, "h": 3600, "m": 60, "s": 1}
    parts = re.findall(r"(\d+)\s*([dhms])", str(s))
    return sum(int(n) * units[u] for n, u in parts)


# --- Nomad (HCL) -------------------------------------------------------------------------------------------------

def check_nomad(path):
    hcl = need("hcl", "python3-pyhcl")
    with open(path) as f:
        doc = hcl.load(f)
    (name, job), = doc["job"].items()
    check("nomad: type sysbatch", job.get("type") == "sysbatch")
    periodic = job.get("periodic", {})
    check("nomad: periodic daily", periodic.get("crons") == ["@daily"] or periodic.get("cron") == "@daily", periodic)
    check("nomad: no overlapping runs", periodic.get("prohibit_overlap") is True)
    groups = job["group"]
    (gname, group), = groups.items()
    (tname, task), = group["task"].items()
    check("nomad: docker driver", task.get("driver") == "docker")
    cfg = task["config"]
    check("nomad: runs gc", cfg.get("args", [])[:1] == ["gc"], cfg.get("args"))
    check("nomad: never --dry-run", "--dry-run" not in cfg.get("args", []))
    check("nomad: read-only root filesystem", cfg.get("readonly_rootfs") is True)
    check("nomad: no network", cfg.get("network_mode") == "none")
    check("nomad: capabilities dropped", cfg.get("cap_drop") == ["all"])
    check("nomad: no host pid/ipc/uts, not privileged",
          not any(cfg.get(k) for k in ("pid_mode", "ipc_mode", "uts_mode", "privileged", "hostname")))
    check("nomad: no 'volumes' list (only explicit mounts)", "volumes" not in cfg)
    mounts = cfg.get("mount", [])
    mounts = mounts if isinstance(mounts, list) else [mounts]
    binds = [m for m in mounts if m.get("type") == "bind"]
    check("nomad: the only bind is the engine socket", [(m["source"], m["target"]) for m in binds] ==
          [("/var/run/docker.sock", "/var/run/docker.sock")], binds)
    check("nomad: socket read-write", all(m.get("readonly") is False for m in binds))
    check("nomad: tmpfs state dir", any(m.get("type") == "tmpfs" and m.get("target") == "/run/cleanup-agent"
                                        for m in mounts))


# --- Dockerfile ----------------------------------------------------------------------------------------------------

def check_dockerfile(path, binary=None):
    with open(path) as f:
        text = f.read()
    logical = re.sub(r"\\\n", " ", text)
    instr = [l.strip() for l in logical.splitlines() if l.strip() and not l.strip().startswith("#")]
    froms = [l.split()[1:] for l in instr if l.upper().startswith("FROM ")]
    check("docker: two stages", len(froms) == 2, froms)
    check("docker: builds on debian:12", froms and froms[0][0] == "debian:12" and froms[0][1:] == ["AS", "build"])
    check("docker: runs on debian:12-slim", len(froms) == 2 and froms[1] == ["debian:12-slim"])
    stages = re.split(r"(?m)^FROM ", logical)[1:]
    build_apt = " ".join(re.findall(r"apt-get install ([^&]*)", stages[0] if stages else ""))
    run_apt = " ".join(re.findall(r"apt-get install ([^&]*)", stages[1] if len(stages) > 1 else "")).split()
    for pkg in ("build-essential", "debhelper", "scdoc", "cmake", "pkg-config", "dpkg-dev", "libcurl4-openssl-dev",
                "libcjson-dev", "libhttp-parser-dev", "libsystemd-dev"):
        check(f"docker: build stage installs {pkg}", pkg in build_apt.split(), build_apt)
    check("docker: the build stage builds the Debian package", "dpkg-buildpackage -us -uc -b" in logical)
    check("docker: the build downloads no source code (the system's libcurl is linked)",
          "fetch-curl-source" not in logical and "AG_CURL" not in logical)
    runtime = sorted(p for p in run_apt if not p.startswith("-"))
    check("docker: runtime stage installs only the package (its Depends bring the libraries)",
          runtime == ["/tmp/deb/cleanup-agent_*.deb"], run_apt)
    check("docker: runtime stage installs no recommends (docker.io)", "--no-install-recommends" in run_apt, run_apt)
    # Every library the binary links itself (libc aside) comes from a package that the package's Depends
    # (${shlibs:Depends}) name; theirs (libcurl4's OpenSSL, nghttp2, ...) come with them as their dependencies.
    depends = ["libcjson1", "libcurl4", "libhttp-parser2.9", "libsystemd0"]
    if binary:
        import subprocess
        ldd = subprocess.run(["ldd", binary], capture_output=True, text=True).stdout
        dynamic = subprocess.run(["readelf", "-d", binary], capture_output=True, text=True).stdout
        needed = set(re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]", dynamic))
        check("docker: the binary links libcurl.so.4", "libcurl.so.4" in needed, dynamic)
        for lib in re.findall(r"=> (/\S+)", ldd):
            if os.path.basename(lib) not in needed:
                continue
            owner = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True).stdout.split(":")[0]
            if not owner:  # /lib is a symlink to /usr/lib on Debian 12: dpkg knows the other spelling
                alt = lib[4:] if lib.startswith("/usr/") else "/usr" + lib
                owner = subprocess.run(["dpkg", "-S", alt], capture_output=True, text=True).stdout.split(":")[0]
            check(f"docker: {os.path.basename(lib)} of the binary comes from a package the .deb depends on ({owner or '?'})",
                  owner in ("libc6",) or owner in depends, ldd)
    rules = open(os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(path))), "debian", "rules")).read()
    check("docker: tests not built (debian/rules)", "-DAG_TESTS=OFF" in rules)
    check("docker: the package copied from the build stage", re.search(r"COPY --from=build /out/ ", logical))
    check("docker: entrypoint is the binary", '"/usr/bin/cleanup-agent"' in logical)
    # Every COPY source of the build stage must exist in the repository (the build context).
    repo = os.path.dirname(os.path.dirname(os.path.abspath(path)))
    for l in instr:
        if l.startswith("COPY ") and "--from" not in l:
            for src in l.split()[1:-1]:
                check(f"docker: COPY source {src} exists", os.path.exists(os.path.join(repo, src)))
    run_line = re.search(r"docker run [^\n]*(\n#\s+[^\n]*)*", text)
    check("docker: documented docker run mounts the socket",
          run_line and "-v /var/run/docker.sock:/var/run/docker.sock" in run_line.group(0))


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    what, args = sys.argv[1], sys.argv[2:]
    fn = {"units": check_units, "kubernetes": check_kubernetes, "github": check_github, "gitlab": check_gitlab,
          "nomad": check_nomad, "dockerfile": check_dockerfile}.get(what)
    if not fn:
        sys.exit(f"check_deploy.py: unknown check '{what}'")
    try:
        fn(*args)
    except Exception as e:  # a file that does not have the expected shape is a failure, with its reason
        check(f"{what}: file has the expected structure", False, f"{type(e).__name__}: {e}")
    failed = 0
    for name, ok, detail in checks:
        print(f"{'ok  ' if ok else 'FAIL'} {name}" + ("" if ok or detail == "" else f": {detail}"))
        failed += not ok
    print(f"{len(checks) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
