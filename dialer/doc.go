// Package dialer is the client side of SOCKS: a [proxy.ContextDialer] that
// reaches its targets through SOCKS 4, 4a or 5 servers, one or a chain of
// them, picked per destination.
//
// A [Dialer] is one SOCKS server. It is built from a proxy URL by [Parse]
// or [FromURL], with curl's meaning of the schemes, which decides where a
// target's name is resolved:
//
//	scheme    protocol                     names resolved   credentials
//	socks4    SOCKS4                       by the client    user: USERID
//	socks4a   SOCKS4a                      by the proxy     user: USERID
//	socks5    SOCKS5, RFC 1928             by the client    user and password, RFC 1929
//	socks5h   SOCKS5, RFC 1928             by the proxy     user and password, RFC 1929
//
// The port is 1080 when the URL has none. Note that golang.org/x/net/proxy
// reads socks5 differently: its SOCKS5 dialer always sends names to the
// proxy, for socks5 as for socks5h. Here socks5 resolves names on the
// client, as curl, and most programs that follow it, do; use socks5h to
// have the proxy resolve them.
//
// SOCKS4 carries only IPv4 addresses: through socks4 a name is resolved to
// an IPv4 address, and a name that has only IPv6 addresses, or an IPv6
// target, is an error matching [ErrIPv4Only]. SOCKS5 carries both.
//
// Importing the package registers socks4 and socks4a with
// [proxy.RegisterDialerType], so that [proxy.FromURL] builds them too
// (x/net builds socks5 and socks5h itself, its way).
//
// [Chain] makes a strict chain, each server reached through the one before
// it, as proxychains does. A [Router] picks how to reach each destination:
// directly, or through an ordered list of peers tried in turn while they
// cannot be reached, like Squid's parent cache peers. [FromEnvironment]
// builds a dialer from ALL_PROXY and NO_PROXY.
//
// Behind [github.com/sockstap/sockstap/listener.GuardDialer], which
// checks a client's destinations at dial time (a listener's relays,
// package httpgate), a Dialer says whether it sends names on to its proxy
// ([Dialer.ForwardsName]: socks4a, socks5h), and is then given them as
// they came; otherwise the guard resolves them, as the Dialer would
// ([Dialer.LookupNetIP]), and gives it an address the policy allowed. A
// Router says so per destination, by the route that serves it
// ([Router.ForwardsName], [Router.DialerFor]).
//
// Beyond CONNECT, a Dialer makes the other requests of SOCKS: BIND, as a
// [net.Listener] ([Dialer.Listen]) that accepts the one connection the
// proxy awaits; UDP ASSOCIATE, as a [net.PacketConn] ([Dialer.ListenPacket],
// or DialContext with network "udp"); and Tor's RESOLVE and RESOLVE_PTR
// ([Dialer.Resolve], [Dialer.ResolvePTR]). SOCKS4 has only CONNECT and
// BIND. A Router passes each to the peers of the destination's route.
// [ReadSOCKSConf] builds a Router from Dante's client configuration, the
// file that socksify reads.
//
// A failed dial is a [*net.OpError]: Op is the command ("connect", "bind",
// "udp associate", "resolve", "resolve ptr"), Net the network, Source the
// proxy's address and Addr the target. When the proxy
// answered with a failure, it wraps the reply: a [*socks5.ReplyError] or a
// [*socks4.ReplyError], found with [errors.As], tells a target that refused
// the connection ([socks5.ConnectionRefused]) from a proxy that does not
// allow it ([socks5.NotAllowed]).
//
// The context given to DialContext bounds the whole dial: the connection
// to the proxy, every hop of a chain, and each handshake. When it ends, the
// handshake under way is cut short, the connection is closed, and the
// dial's error wraps the context's.
package dialer
