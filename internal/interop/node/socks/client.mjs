// client.mjs drives npm's socks package (its SocksClient) against a SOCKS
// server, for internal/interop's NodeSocks: one command, one tunnel.
//
//	node client.mjs COMMAND VERSION PROXY_HOST PROXY_PORT DEST_HOST DEST_PORT [USER_ID]
//
// COMMAND is connect, bind or associate (a command not known here fails:
// add its case below); VERSION is 4 or 5. What happens is told as JSON
// lines on file descriptor 3, which the caller opens:
//
//	{"event":"bound","host":"127.0.0.1","port":40000}        BIND's first reply
//	{"event":"established","host":"127.0.0.1","port":40001}  the tunnel is open (host and port: the reply's, when it has them)
//	{"event":"datagram","host":"127.0.0.1","port":7}          ASSOCIATE: an answer came, from that sender
//	{"event":"error","message":"..."}                         then the program exits with status 1
//
// Once the tunnel is open, standard input is sent through it and what comes
// back is written to standard output; the end of standard input closes the
// tunnel's sending side only (a half-close), and the program exits when the
// far end has closed its side and everything has been written.
//
// ASSOCIATE is datagrams: the client first opens a UDP socket on
// 127.0.0.1 and declares its address in the request (DEST_HOST and
// DEST_PORT are where the datagrams go). Each line of standard input is
// sent as one datagram, through the relay the reply names, and the
// client waits for its answer, whose payload it writes to standard output
// as a line; at the end of standard input it closes the association's
// control connection and exits.
import dgram from 'node:dgram';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import { SocksClient } from 'socks';

const [command, version, proxyHost, proxyPort, destHost, destPort, userId] = process.argv.slice(2);

function tell(event) {
	fs.writeSync(3, JSON.stringify(event) + '\n');
}

function fail(err) {
	tell({ event: 'error', message: String(err && err.message || err) });
	process.exit(1);
}

// remote is what a reply said, as socks gives it: { host, port } or
// nothing.
function where(remote) {
	return remote ? { host: remote.host, port: remote.port } : {};
}

// pipe sends standard input through socket and socket's data to standard
// output, and exits once both ways are done.
function pipe(socket) {
	let inDone = false, outDone = false;
	const maybeExit = () => { if (inDone && outDone) process.exit(0); };
	process.stdin.pipe(socket); // ends socket's sending side at stdin's end
	process.stdin.on('end', () => { inDone = true; maybeExit(); });
	socket.on('end', () => {
		process.stdout.end(() => { outDone = true; maybeExit(); });
	});
	socket.on('data', (b) => process.stdout.write(b));
	socket.on('error', fail);
}

// associate sends each line of standard input as a datagram to the
// destination through the relay, and writes each answer's payload as a
// line; then it ends the association, closing control.
async function associate(control, relay, udp) {
	let answered = null;
	udp.on('message', (msg, rinfo) => {
		if (rinfo.address !== relay.host || rinfo.port !== relay.port) {
			return; // not from the relay
		}
		const frame = SocksClient.parseUDPFrame(msg);
		tell({ event: 'datagram', ...where(frame.remoteHost) });
		process.stdout.write(frame.data.toString() + '\n');
		if (answered) answered();
	});
	let input = '';
	for await (const chunk of process.stdin) input += chunk;
	for (const line of input.split('\n').filter((l) => l !== '')) {
		const frame = SocksClient.createUDPFrame({
			remoteHost: { host: destHost, port: Number(destPort) },
			data: Buffer.from(line),
		});
		const answer = new Promise((resolve) => { answered = resolve; });
		udp.send(frame, relay.port, relay.host);
		await answer;
	}
	control.destroy();
	udp.close();
	process.stdout.end(() => process.exit(0));
}

async function main() {
	if (version !== '4' && version !== '5') {
		fail(`version ${version}: want 4 or 5`);
	}
	// The connection to the proxy is made here, so that it allows
	// half-open tunnels; socks runs its handshake on it.
	const socket = net.connect({ host: proxyHost, port: Number(proxyPort), allowHalfOpen: true });
	socket.on('error', fail);
	await once(socket, 'connect');
	let destination = { host: destHost, port: Number(destPort) };
	let udp = null;
	if (command === 'associate') {
		udp = dgram.createSocket('udp4');
		udp.bind(0, '127.0.0.1');
		await once(udp, 'listening');
		destination = { host: '127.0.0.1', port: udp.address().port }; // where the datagrams come from
	}
	const client = new SocksClient({
		proxy: { host: proxyHost, port: Number(proxyPort), type: Number(version), userId },
		command,
		destination,
		timeout: 20000,
	});
	client.on('error', fail);
	switch (command) {
	case 'connect':
	case 'bind':
		client.on('bound', (info) => tell({ event: 'bound', ...where(info.remoteHost) }));
		client.on('established', (info) => {
			tell({ event: 'established', ...where(info.remoteHost) });
			pipe(info.socket);
		});
		break;
	case 'associate':
		client.on('established', (info) => {
			tell({ event: 'established', ...where(info.remoteHost) });
			associate(info.socket, info.remoteHost, udp).catch(fail);
		});
		break;
	default:
		fail(`command ${command}: not driven by this script yet`);
	}
	client.connect(socket);
}

main().catch(fail);
