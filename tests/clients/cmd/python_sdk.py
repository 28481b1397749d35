"""The Python Docker SDK (Debian's python3-docker) on one client, so one pooled connection: create, exec with
detach=True then more creates, streaming logs, attach. Prints "KIND ID" for each thing it made; exits 1 with the
failed step on stderr."""
import os
import sys

import docker

P, IMG = os.environ["P"], os.environ["IMG"]
key, _, value = os.environ["TL"].partition("=")
L = {key: value}
client = docker.from_env()


def made(kind, oid):
    print(kind, oid, flush=True)


def step(what, ok):
    if not ok:
        sys.exit("python3-docker: " + what)


c = client.containers.create(IMG, "sleep 1000", labels=L, network_mode="none", name=P + "-py")
made("container", c.id)
c.start()
e = client.api.exec_create(c.id, ["sh", "-c", "echo detached > /tmp/d"])
client.api.exec_start(e["Id"], detach=True)
for i in range(3):  # more creates on the same pooled connection, right after the detached exec start
    made("container", client.containers.create(IMG, "true", labels=L, network_mode="none").id)
made("network", client.networks.create(P + "-pynet", labels=L, internal=True).id)
made("volume", client.volumes.create(P + "-pyvol", labels=L).name)
out = client.api.exec_start(client.api.exec_create(c.id, ["cat", "/tmp/d"])["Id"])
step("exec with detach=True did not run (%r)" % out, out == b"detached\n")

logs = client.containers.run(IMG, ["sh", "-c", "echo one; sleep 1; echo two"], detach=True, labels=L,
                             network_mode="none")
made("container", logs.id)
got = b"".join(logs.logs(stream=True, follow=True))
step("streaming logs gave %r" % got, got == b"one\ntwo\n")

att = client.containers.run(IMG, ["sh", "-c", "sleep 1; echo attached"], detach=True, labels=L, network_mode="none")
made("container", att.id)
got = b"".join(att.attach(stream=True, logs=True))
step("attach gave %r" % got, got == b"attached\n")
made("container", client.containers.create(IMG, "true", labels=L, network_mode="none").id)  # the connection still works
