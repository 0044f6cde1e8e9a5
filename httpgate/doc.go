// Package httpgate is an HTTP gateway over and onto SOCKS: an
// [http.Handler] ([Gateway]) that serves forward-proxy requests
// (absolute-form URLs, RFC 9112 section 3.2.2, and CONNECT tunnels, RFC
// 9110 section 9.3.6) and the HTTP that arrives on SOCKS streams a
// [github.com/sockstap/sockstap/listener.Listener] tapped, whose
// destination is the SOCKS request's target, never the Host field. It
// sends requests on through any proxy.ContextDialer (directly, or through
// SOCKS peers, chains and routes from package dialer), asks the
// listener's [listener.Policy] about each destination when the request
// arrives and again, at dial time, about each address it connects to or
// hands its dialer (the DNS rebinding guard, [listener.GuardDialer]),
// but for a name the dialer sends on to an upstream proxy that resolves
// it (socks5h, socks4a: [listener.NameForwarder]), logs an
// access record per request, and can keep a shared cache (RFC 9111) that
// answers fresh hits without contacting the origin.
//
// It behaves as RFC 9110 asks of a proxy: hop-by-hop fields, and those
// that Connection names, are removed both ways, on 1xx responses too; Via
// is added, and a request that has been through the gateway already is
// refused (508); a request with ambiguous framing (Transfer-Encoding with
// Content-Length, a Transfer-Encoding not ending in chunked, conflicting
// lengths) is answered 400 and never forwarded (RFC 9112, section 11.2);
// bodies stream, 100-continue, trailers, HTTP/1.0 and upgrades work, and a
// close-delimited response stays one. Proxy-Authorization never goes
// upstream; Forwarded and X-Forwarded-For are off unless asked for.
//
// Every wait on a peer is bounded: a dial, a response's header, each
// piece of a body either way (a sender that stalls mid-body is cut off,
// and the access record says so), each write to a client that stops
// reading its response, an idle tunnel.
//
// [Server] makes one port a whole proxy: SOCKS 4, 4a and 5 relayed, the
// HTTP forward proxy, and HTTP through SOCKS tapped into the gateway.
// When it stops, it drains what is under way (requests, CONNECT and
// upgrade tunnels, SOCKS relays) for a while, then closes the rest.
package httpgate
