// client.mjs drives npm's socks package (its SocksClient) against a SOCKS
// server, for internal/interop's NodeSocks: one command, one tunnel.
//
//	node client.mjs COMMAND VERSION PROXY_HOST PROXY_PORT DEST_HOST DEST_PORT [USER_ID]
//
// COMMAND is connect or bind (a command not known here fails: add its case
// below); VERSION is 4 or 5. What happens is told as JSON lines on file
// descriptor 3, which the caller opens:
//
//	{"event":"bound","host":"127.0.0.1","port":40000}        BIND's first reply
//	{"event":"established","host":"127.0.0.1","port":40001}  the tunnel is open (host and port: the reply's, when it has them)
//	{"event":"error","message":"..."}                         then the program exits with status 1
//
// Once the tunnel is open, standard input is sent through it and what comes
// back is written to standard output; the end of standard input closes the
// tunnel's sending side only (a half-close), and the program exits when the
// far end has closed its side and everything has been written.
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

async function main() {
	if (version !== '4' && version !== '5') {
		fail(`version ${version}: want 4 or 5`);
	}
	// The connection to the proxy is made here, so that it allows
	// half-open tunnels; socks runs its handshake on it.
	const socket = net.connect({ host: proxyHost, port: Number(proxyPort), allowHalfOpen: true });
	socket.on('error', fail);
	await once(socket, 'connect');
	const client = new SocksClient({
		proxy: { host: proxyHost, port: Number(proxyPort), type: Number(version), userId },
		command,
		destination: { host: destHost, port: Number(destPort) },
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
	default:
		fail(`command ${command}: not driven by this script yet`);
	}
	client.connect(socket);
}

main().catch(fail);
