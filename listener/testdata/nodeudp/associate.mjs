// associate.mjs drives npm's socks client through a UDP ASSOCIATE, for
// listener's TestNodeSocksAssociate:
//
//	node associate.mjs PROXY_HOST PROXY_PORT DEST_HOST DEST_PORT MESSAGE...
//
// It opens a UDP socket on 127.0.0.1, asks the SOCKS5 server at
// PROXY_HOST:PROXY_PORT for an association, declaring that socket's
// address, then sends each MESSAGE in turn through the relay to
// DEST_HOST:DEST_PORT (an address, or a name the server resolves) and
// waits for the answer. Each answer is written to standard output as a
// line of JSON: the payload and the sender the relay's header names. It
// ends the association by closing the control connection, and exits 1 on
// any failure, or after 10 seconds.
import dgram from 'node:dgram';
import { SocksClient } from 'socks';

const [proxyHost, proxyPort, destHost, destPort, ...messages] = process.argv.slice(2);

setTimeout(() => {
  console.error('associate.mjs: timed out');
  process.exit(1);
}, 10000).unref();

const udp = dgram.createSocket('udp4');
await new Promise((resolve) => udp.bind(0, '127.0.0.1', resolve));

// createConnection serves CONNECT only: an association is a SocksClient
// of its own, established once the server has answered.
const client = new SocksClient({
  proxy: { host: proxyHost, port: Number(proxyPort), type: 5 },
  command: 'associate',
  destination: { host: '127.0.0.1', port: udp.address().port },
});
const { socket, remoteHost: relay } = await new Promise((resolve, reject) => {
  client.on('established', resolve);
  client.on('error', reject);
  client.connect();
});

const answers = [];
let waiting = null;
udp.on('message', (msg, rinfo) => {
  if (rinfo.address !== relay.host || rinfo.port !== relay.port) {
    return; // not from the relay
  }
  answers.push(SocksClient.parseUDPFrame(msg));
  if (waiting) {
    waiting();
  }
});

for (const message of messages) {
  const frame = SocksClient.createUDPFrame({
    remoteHost: { host: destHost, port: Number(destPort) },
    data: Buffer.from(message),
  });
  const answered = new Promise((resolve) => { waiting = resolve; });
  udp.send(frame, relay.port, relay.host);
  await answered;
  const a = answers.shift();
  console.log(JSON.stringify({ data: a.data.toString(), host: a.remoteHost.host, port: a.remoteHost.port }));
}

socket.destroy();
udp.close();
