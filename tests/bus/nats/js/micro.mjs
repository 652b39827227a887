// Lists the NATS micro services on a server with the official service client,
// and prints what it saw as one JSON object: {ping, info, stats}.
//   node micro.mjs nats://127.0.0.1:4222 SERVICE_NAME
import { connect } from "@nats-io/transport-node";
import { Svcm } from "@nats-io/services";

const [server, name] = process.argv.slice(2);
const nc = await connect({ servers: server });
const client = new Svcm(nc).client({ maxWait: 1000 });

async function all(iterator) {
  const out = [];
  for await (const item of await iterator) {
    out.push(item);
  }
  return out;
}

const result = {
  ping: await all(client.ping()),
  info: await all(client.info(name)),
  stats: await all(client.stats(name)),
};
await nc.close();
console.log(JSON.stringify(result));
