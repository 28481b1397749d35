// Testcontainers for Node (pinned in tests/clients/node/package.json, installed by the driver in NODE_MODULES) with
// its reaper off: two containers started, their ids printed ("container ID"), then, as argv[2] says, the process
// exits without stopping them ("exit") or waits to be SIGKILLed ("wait").
const { GenericContainer } = require(process.env.NODE_MODULES + "/testcontainers");

const [key, ...rest] = process.env.TL.split("=");
const labels = { [key]: rest.join("=") };

async function start(name) {
  const c = await new GenericContainer(process.env.IMG)
    .withName(process.env.P + "-" + name)
    .withNetworkMode("none") // the test engine has no default bridge
    .withCommand(["sleep", "1000"])
    .withLabels(labels)
    .start();
  console.log("container " + c.getId());
}

(async () => {
  await start("tc1");
  await start("tc2");
  if (process.argv[2] === "exit") process.exit(0);
  setInterval(() => {}, 1000);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
