// Package listener makes any net.Listener serve SOCKS 4, 4a and 5 beside
// the program's own protocol, on the same port.
//
// [Wrap] returns a [Listener] that sniffs each connection's first byte: 0x04
// is SOCKS4 or SOCKS4a, 0x05 is SOCKS5 (RFC 1928, with RFC 1929's
// username/password and any method a program plugs in), anything else, or
// nothing within a short wait, is the program's own and is returned by
// Accept with the sniffed byte given back. A SOCKS client's handshake runs
// in a goroutine of its own, bounded in time, and its request goes through
// the [Policy]. A CONNECT is then either relayed to its target (through
// Config.Dialer, with the bytes moved by the kernel between the two TCP
// connections) or tapped: Accept returns the tunnel's inside, carrying its
// [Request], so that the program serves what the client sent through SOCKS
// (HTTP, say) itself, to cache, log, filter or route it. DeleGate called
// this SOCKSTAP; Squid's users asked for SOCKS mixed with plain traffic on
// one port.
//
// When the reply is sent: a relay answers after its dial, with the code
// that fits the dial's error or, on success, the outbound connection's
// local address as BND.ADDR. A tapped stream is answered with success, and
// the listener's own address as BND.ADDR, before Accept returns it; when
// Config.Tap peeks at the stream's first bytes, the answer goes before the
// peek, since a client sends nothing through a tunnel not yet open.
//
// Every request goes the same way, whatever its command: the listener
// checks that the request's version has the command and that the
// listener serves it (otherwise "command not supported": SOCKS5 0x07,
// SOCKS4 91), asks the policy once, then serves the command. A relay asks
// the policy again at dial time, about the address it connects to
// ([GuardDialer]), unless its Dialer sends the name on unresolved to an
// upstream proxy that resolves it ([NameForwarder]).
//
// Safe by default: with no Config, only clients on loopback are served,
// every CONNECT is tapped (nothing is relayed without a Dialer), and
// commands other than CONNECT are answered "command not supported" until
// the program enables them: BIND (Config.Bind), UDP ASSOCIATE
// (Config.UDP), Tor's RESOLVE and RESOLVE_PTR (Config.Resolve). SOCKS4 user ids can be checked with the
// client host's identd (Config.Identd).
// Handshakes that stall are shed before quick ones are refused, and
// password guessing is braked ([AuthLimit]).
//
// Each SOCKS session ends in one place, with one [Record]: its log/slog
// record, with the keys client, user, version, cmd, target, decision
// (relay, tap, deny, fail, drop, bind, associate, resolve), reason, reply, bytes_up, bytes_down,
// datagrams_up and datagrams_down (when not zero), duration and cause, is
// written from it to Config.Logger, when the program gives one (none is
// written otherwise, as net/http writes none), and Config.OnRecord
// receives it. No credential is ever logged. [Listener.Stats] tells what
// the listener holds at any moment: with the records, what a program
// builds its metrics on.
//
// Behind a balancer: Config.ProxyProtocol reads the PROXY protocol header
// (version 1 or 2) that trusted balancers send, so that the policy, the
// limits, the records and [Conn.RemoteAddr] see the real client; and
// [Listener.Shutdown] (or [Serve], with Config.DrainTimeout) stops
// accepting and lets the relays under way finish.
//
// UDP ASSOCIATE (SOCKS5, RFC 1928 section 7), on with Config.UDP: each
// association gets a relay socket on the address its control connection
// arrived on, takes datagrams from its client's address only, asks the
// policy about each new destination, sends them on through
// Config.UDPListener (which may be an upstream SOCKS5 server's
// association), passes back only the answers Config.UDPFilter lets
// through (by default, from the addresses and ports the client has sent
// to), and ends with its control connection.
package listener
