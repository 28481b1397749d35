#!/usr/bin/env python3
"""bash completion of cleanup-agent (issue 24), as a user gets it: an interactive bash on a pseudo-terminal sources
completion/cleanup-agent.bash, keys are typed (TAB included), and what readline completed is read back by running
the completed line through printf. Usage: test_completion.py BINARY COMPLETION_SCRIPT"""
import os
import pty
import re
import select
import shutil
import signal
import sys
import tempfile
import time

BINARY, SCRIPT = sys.argv[1], sys.argv[2]
ID = "0123456789abcdef0123456789abcdef"


class Shell:
    def __init__(self, home):
        bindir = os.path.join(home, "bin")
        os.makedirs(bindir)
        os.symlink(os.path.abspath(BINARY), os.path.join(bindir, "cleanup-agent"))
        env = {
            "PATH": bindir + ":/usr/local/bin:/usr/bin:/bin",
            "HOME": home,
            "TERM": "dumb",
            "PS1": "PROMPT$ ",
            "INPUTRC": "/dev/null",
            # ps (kill's ids) must not wait for an engine: none answers here, at once.
            "DOCKER_HOST": "unix://" + os.path.join(home, "no-engine.sock"),
        }
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.chdir(home)
            os.execvpe("bash", ["bash", "--norc", "--noprofile", "-i"], env)
        self.out = b""
        self.expect(rb"PROMPT\$ ")
        self.run("source " + os.path.abspath(SCRIPT))

    def send(self, text):
        os.write(self.fd, text.encode())

    def read(self, seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if r:
                try:
                    self.out += os.read(self.fd, 65536)
                except OSError:
                    return

    def expect(self, pattern, seconds=15):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            m = re.search(pattern, self.out)
            if m:
                self.out = self.out[m.end():]
                return m
            self.read(0.1)
        raise AssertionError("timed out waiting for %r; the terminal shows: %r" % (pattern, self.out[-2000:]))

    def run(self, line):
        self.send(line + "\r")
        self.expect(rb"PROMPT\$ ")

    def complete(self, typed, tabs=1):
        """Types typed and TAB, then reads back the line readline made of it."""
        self.out = b""
        self.send(typed)
        for _ in range(tabs):
            self.send("\t")
            self.read(1.0)
        shown = self.out
        # Ctrl-A, a printf in front, Ctrl-E, Enter: the shell prints each word of the completed line in <...>.
        self.send("\x01printf '<%s>' \x05; echo\r")
        m = self.expect(rb"\n(<cleanup-agent>(?:<[^>\r\n]*>)*)\r?\n")
        self.expect(rb"PROMPT\$ ")
        return re.findall(r"<([^>]*)>", m.group(1).decode()), shown.decode(errors="replace")

    def close(self):
        os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)


failures = []


def check(name, got, want):
    ok = got == want
    print("%s %s: got %r%s" % ("PASS" if ok else "FAIL", name, got, "" if ok else ", want %r" % (want,)))
    if not ok:
        failures.append(name)


def main():
    home = tempfile.mkdtemp(prefix="ag-completion-")
    state = os.path.join(home, "state")
    os.makedirs(os.path.join(state, "sessions"), mode=0o700)
    os.chmod(state, 0o700)
    # A session of this state dir, as ps lists it: its lock file.
    open(os.path.join(state, "sessions", ID + ".lock"), "w").close()
    sh = Shell(home)
    try:
        for name, typed, want in (
            ("command", "r", ["run"]),
            ("run option", "run --no-d", ["run", "--no-docker-proxy"]),
            ("run value option", "run --mem", ["run", "--memory"]),
            ("container-seq option", "container-seq --self", ["container-seq", "--self-protect"]),
            ("gc option", "gc --dr", ["gc", "--dry-run"]),
            ("--format value", "check --format j", ["check", "--format", "json"]),
            ("--format=value", "ps --format=t", ["ps", "--format=table"]),
            ("--cgroup-driver value", "--cgroup-driver sy", ["--cgroup-driver", "systemd"]),
            ("--log-level value", "--log-level deb", ["--log-level", "debug"]),
            ("kill's session id from ps", "--state-dir %s kill " % state, ["--state-dir", state, "kill", ID]),
            ("the wrapped command", "run -- ech", ["run", "--", "echo"]),
        ):
            words, _ = sh.complete("cleanup-agent " + typed)
            check(name, words, ["cleanup-agent"] + want)
        # Two TABs on an ambiguous prefix list the candidates.
        words, shown = sh.complete("cleanup-agent c", tabs=2)
        check("ambiguous commands listed", sorted(w for w in ("check", "container-seq") if w in shown),
              ["check", "container-seq"])
        words, shown = sh.complete("cleanup-agent --cgroup-driver ", tabs=2)
        check("--cgroup-driver values listed", [w for w in ("auto", "cgroupfs", "systemd") if w in shown],
              ["auto", "cgroupfs", "systemd"])
    finally:
        sh.close()
        shutil.rmtree(home, ignore_errors=True)
    print("%d failed" % len(failures))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
