package listener

import (
	"log/slog"
	"net"
	"net/netip"
	"time"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/socks5"
)

// Config says how a [Listener] serves SOCKS. The zero value, and a nil
// *Config, work: every CONNECT is tapped (handed to Accept), only clients
// on loopback are served, the limits and timeouts have their defaults.
type Config struct {
	// Dialer relays CONNECT requests to their targets. Nil means no
	// relaying: the program owns the port, and every CONNECT that the
	// policy allows is tapped. The context of each dial carries the
	// request ([FromContext]), so that a dialer can choose an egress
	// address or an upstream per user or per client.
	//
	// Where the policy is asked again at dial time (with a Policy of the
	// program's; with the built-in one, for a name asked by a client not
	// on loopback), the dial goes through [GuardDialer], whose rule
	// decides where a name is resolved: a *net.Dialer resolves it and has
	// each address checked before it connects; a dialer that sends the
	// name on unresolved to an upstream proxy ([NameForwarder]: a socks5h
	// or socks4a dialer.Dialer, a dialer.Router for the destinations it
	// routes to one) is given the name, which the upstream resolves and
	// judges by its own policy; any other dialer is given an address the
	// listener resolved and the policy allowed, never the name.
	Dialer proxy.ContextDialer

	// Tap decides which CONNECT streams the program serves itself: true
	// hands the stream to Accept (tapped), false relays it. r is the
	// request; peek returns the first n bytes (at most 512) the client
	// sends inside the tunnel, for a decision on the protocol it speaks,
	// such as [TapHTTP]'s. Tap is called after the policy has allowed the
	// request.
	//
	// Calling peek sends the success reply first, since no client speaks
	// inside a tunnel before it is open; peek then waits at most
	// PeekTimeout and returns what arrived, fewer bytes or none when the
	// client is silent (a protocol where the server speaks first). The
	// bytes stay unread: the program or the target reads them. After a
	// peek, a relay whose dial fails can no longer answer with a reply
	// code: it closes the connection.
	//
	// Nil taps every stream when Dialer is nil, and none otherwise.
	Tap func(r *Request, peek func(n int) []byte) bool

	// Methods are the SOCKS5 authentication methods offered, in order of
	// preference. No methods, nil or an empty slice alike, offer
	// [socks5.NoAuth] only. Authentication is required when there are
	// methods and none of them is [socks5.AuthNone]: then, with no
	// Policy, clients that did not authenticate are refused, SOCKS4
	// clients among them, which cannot.
	Methods []socks5.ServerMethod

	// AuthLimit is the brake on password guessing; the zero value is the
	// default brake, on. See [AuthLimit].
	AuthLimit AuthLimit

	// Policy decides which requests are served; nil is [DefaultPolicy].
	Policy Policy

	// BIND, Tor's RESOLVE and SOCKS4's identd check: each off unless set.

	// Bind enables the BIND command, SOCKS4's and SOCKS5's; off, BIND is
	// answered "command not supported". A BIND goes this way:
	//
	//   - The request's address is the peer expected to connect: an IP
	//     address, or a name (SOCKS4a, SOCKS5) looked up with Resolver
	//     within DialTimeout. The unspecified address (0.0.0.0, ::), which
	//     clients send when they do not know who will connect, expects any
	//     peer. Only the address is compared, never the port: the peer of
	//     FTP's active mode, BIND's use, connects from port 20, while the
	//     client knows the server's port 21.
	//   - The listener listens on the IP address the client's connection
	//     arrived at, never on all interfaces, on a port of BindPorts, and
	//     answers with that address. SOCKS4, whose replies carry IPv4
	//     addresses only, is refused (91) on an IPv6 connection rather
	//     than told a zeroed address.
	//   - It waits for one connection, at most BindTimeout; a peer that
	//     does not come gets the client a failure (SOCKS5 0x04 "host
	//     unreachable", SOCKS4 91). A client that closes its connection
	//     meanwhile ends the wait at once.
	//   - A peer from another address than expected is refused, and both
	//     connections closed, as the SOCKS4 document says: 91, and for
	//     SOCKS5, whose RFC names no code for it, 0x02 "connection not
	//     allowed by ruleset": the request's address is the rule that did
	//     not allow it, and 0x02 is also what a policy's refusal of the
	//     peer sends, so that a client reads one meaning from one code.
	//   - The policy is asked about the peer (besides the request, when it
	//     arrived), with [Request.DialedIP] the peer's address, as it is
	//     asked about a relay's target at dial time. [DefaultPolicy] thus
	//     refuses a peer on loopback to a client not on loopback; and,
	//     since it refuses the unspecified address to such a client, such
	//     a client must name its peer, unless the program's Policy says
	//     otherwise.
	//   - The second reply names the peer's address; then the two
	//     connections are relayed as CONNECT's are (spliced, half-closes
	//     passed on, IdleTimeout, bytes counted in the [Record], whose
	//     Decision is DecisionBind). What the client sent before the
	//     second reply reaches the peer first.
	//
	// The listening socket is the session's: it is closed once the peer
	// has come or the wait has ended, and by Close and Shutdown (which do
	// not wait for a BIND that has no peer yet).
	Bind bool

	// BindPorts is the range BIND takes its listening port from: a free
	// one, trying from one chosen at random; the zero range lets the
	// system choose an ephemeral port. A range whose First is above its
	// Last fails every BIND (0x01, 91), as does a range with no port free.
	BindPorts PortRange

	// BindTimeout bounds BIND's wait for its peer, from the first reply.
	// Zero means DefaultBindTimeout, the SOCKS4 document's 2 minutes.
	BindTimeout time.Duration

	// Resolve enables Tor's RESOLVE and RESOLVE_PTR extensions to SOCKS5
	// (commands 0xF0 and 0xF1); off, they are answered "command not
	// supported", and SOCKS4 has them never. RESOLVE answers with an
	// address of the request's name (IPv4 preferred, as Tor does; an
	// address is answered as it is), RESOLVE_PTR with the name of the
	// request's address, in BND.ADDR, port 0. Both look up with Resolver
	// within DialTimeout. The policy is asked about the request when it
	// arrives; where the listener checks addresses at dial time (a
	// program's Policy, or a name asked by a client not on loopback, see
	// [GuardDialer]), RESOLVE answers with the first address the policy
	// allows with DialedIP set, so that a client learns no address it
	// could not connect to. The Record's Decision is DecisionResolve.
	Resolve bool

	// Identd has the listener check each SOCKS4 request's USERID with the
	// identd (RFC 1413) of the client's host, at IdentdPort (zero: 113),
	// within IdentdTimeout (zero: DefaultIdentdTimeout), once the policy
	// has allowed the request, before its command is served. The query
	// goes from the address the client connected to, naming the client's
	// port and the listener's. The request is refused, as denied, with
	//
	//   - 92 when identd gives no usable answer: it cannot be reached,
	//     does not answer in time, or sends what is not an RFC 1413 reply
	//     for that port pair (the reply is parsed strictly: it comes from
	//     whoever the client's host is);
	//   - 93 when identd answers and does not confirm the user: it names
	//     another user (compared byte for byte, less the blanks after the
	//     colon), answers ERROR (NO-USER, HIDDEN-USER...), or closes
	//     without a reply, which RFC 1413 says means UNKNOWN-ERROR.
	//
	// As RFC 1413 warns, identd is no authentication: the answer is only
	// as good as the client's host, and the request is still not
	// [Request.Authenticated]. SOCKS5 requests are not checked.
	Identd        bool
	IdentdPort    uint16
	IdentdTimeout time.Duration

	// HandshakeTimeout bounds a SOCKS handshake, from the first byte to the
	// request, however the client sends it. Zero means 10 seconds.
	HandshakeTimeout time.Duration

	// SniffTimeout is how long a new connection may stay silent before it
	// is handed to Accept as the program's own: protocols where the server
	// speaks first then work through the listener. Zero means 300
	// milliseconds.
	SniffTimeout time.Duration

	// PeekTimeout is how long Tap's peek waits for the client's first
	// bytes inside the tunnel. Zero means 300 milliseconds.
	PeekTimeout time.Duration

	// DialTimeout bounds the dial of a relay's target, name resolution
	// included. Zero means 30 seconds.
	DialTimeout time.Duration

	// IdleTimeout closes a relay when no byte has moved either way for
	// that long. Zero means 10 minutes; a negative value, never.
	IdleTimeout time.Duration

	// MaxHandshakes limits the SOCKS handshakes under way at once, and
	// MaxHandshakesPerClient the slow ones from one client (an IPv4
	// address, or an IPv6 /64). Zero means 1024 and 64; a negative value,
	// no limit. The limits shed the stalled, never the fast:
	//
	//   - A new handshake is never refused: it has just sent its first
	//     byte, and may be quick. When it takes the handshakes under way
	//     over MaxHandshakes, the listener closes the one that has been
	//     silent longest (read no byte for the longest time). A
	//     handshake that is making progress is closed only once every
	//     handshake under way has made progress more recently than
	//     it has, which a stalled client cannot do.
	//   - A handshake counts against MaxHandshakesPerClient once it is
	//     slow: under way for HandshakeGrace without reaching its
	//     request. When a new handshake comes from a client that holds
	//     more slow ones than the limit, the listener closes the longest
	//     silent of those, down to the limit. Quick handshakes do not
	//     count, so a burst of hundreds from one address (a browser, a
	//     crawler behind proxychains, the local users of one host, who
	//     all come from 127.0.0.1) is served whole, whatever another
	//     client at the same address holds.
	//
	// This is sshd's MaxStartups and PerSourceMaxStartups turned round:
	// sshd, which cannot tell a stalled connection from a quick one,
	// drops new ones at random once too many are unauthenticated, and so
	// drops quick clients with the stalled; the listener sees which
	// handshakes read nothing, and sheds those. A closed handshake is
	// logged with the decision "drop", at Debug level.
	//
	// Each handshake under way holds a goroutine (a few KiB of stack), a
	// read-ahead buffer of 512 bytes, and, for SOCKS4, a request buffer
	// that grows to at most socks4.MaxRequestLen (4,361) bytes for a long
	// user id: at most some 10 KiB, or 10 MiB for 1024 handshakes.
	MaxHandshakes, MaxHandshakesPerClient int

	// HandshakeGrace is how long a handshake may be under way before it
	// counts against MaxHandshakesPerClient. Zero means 2 seconds: an
	// ordinary client, even over a slow link, reaches its request sooner.
	HandshakeGrace time.Duration

	// MaxConns limits the connections the listener holds at once: being
	// sniffed, in a SOCKS handshake, relayed, or waiting for Accept. A
	// connection over the limit is closed as soon as it is accepted. Zero
	// or negative means no limit.
	MaxConns int

	// ProxyProtocol, when not nil, has the listener read a PROXY protocol
	// header (HAProxy's, version 1 or 2) from the balancers it trusts,
	// before anything else: the client the header declares is then the
	// one the policy, the limits per client, the logs, [Request.Client]
	// and [Conn.RemoteAddr] see. A header from a sender it does not trust
	// is refused. Nil reads none: behind a balancer, every client would
	// look like the balancer.
	ProxyProtocol *ProxyProtocol

	// DrainTimeout is how long [Serve] and [ListenAndServe], once their
	// context has ended and they have stopped accepting, let the relays
	// under way finish before they close them. Zero closes them at once.
	// A listener a program wraps itself drains with [Listener.Shutdown].
	DrainTimeout time.Duration

	// Resolver resolves the names the listener looks up itself rather
	// than through Dialer: the destinations of UDP ASSOCIATE's datagrams,
	// and Tor's RESOLVE and RESOLVE_PTR. Nil means net.DefaultResolver.
	Resolver *net.Resolver

	// UDP ASSOCIATE (SOCKS5): see udp.go for how an association goes.

	// UDP enables UDP ASSOCIATE. Off (false), the command is answered
	// "command not supported". On, each association gets a relay socket
	// on the IP address its control connection arrived on, takes
	// datagrams from the client's address only, sends them on through a
	// socket of UDPListener's after asking the policy about each new
	// destination, and lives as long as its control connection (or until
	// IdleTimeout passes with no datagram either way). A datagram to a
	// new destination waits for its name's lookup (through Resolver) and
	// the policy's answer, each bounded by DialTimeout, and the
	// association's later datagrams wait behind it in the relay socket's
	// buffer; both answers are then kept for the association.
	UDP bool

	// UDPAdvertise, when valid, is the address told to clients as the
	// relay's (BND.ADDR), with the relay socket's port: the address a
	// client behind NAT reaches this host at. The relay socket is still
	// bound on the address the control connection arrived on.
	UDPAdvertise netip.Addr

	// UDPListener opens each association's outbound socket, which sends
	// the client's datagrams to their destinations and receives their
	// answers. It is called with network "udp" and address ":0", and a
	// context that carries the request ([FromContext]), bounded by
	// DialTimeout. A SOCKS client's Dialer
	// ([github.com/sockstap/sockstap/dialer.Dialer]) sends them through
	// an upstream SOCKS5 proxy; a [PacketListenerFunc] chooses the local
	// address per client or per user. Nil means a *net.ListenConfig: a
	// socket on the unspecified address, which reaches any destination.
	UDPListener PacketListener

	// UDPFilter says whose datagrams an association passes back to its
	// client; the zero value passes those of the addresses and ports the
	// client has sent to, and only those. See [UDPFilter].
	UDPFilter UDPFilter

	// MaxAssociations limits the UDP associations under way at once, and
	// MaxAssociationsPerClient those of one client (an IPv4 address or
	// an IPv6 /64). A request over a limit is answered "general
	// failure". Zero means 1024 and 64; a negative value, no limit. Each
	// association holds two sockets, three goroutines and 128 KiB of
	// buffers (a datagram may be 64 KiB long).
	MaxAssociations, MaxAssociationsPerClient int

	// Logger receives a record for each SOCKS session, with the keys
	// client, user, version, cmd, target, decision, reason, reply,
	// bytes_up, bytes_down, datagrams_up, datagrams_down (when not
	// zero), duration and cause (an error, as slog.Any has it), with the
	// session's Request in the record's context (FromContext); and the
	// listener's own events: an accept that failed ("socks accept"), a
	// panic a goroutine of the listener's recovered ("socks panic"), a
	// lockout of the brake on guessing.
	//
	// Nil means no record per session, as net/http writes none for its
	// requests: a library wrapped into a program stays quiet. The
	// listener's own events then go to slog.Default().
	Logger *slog.Logger

	// OnRecord, when not nil, receives each SOCKS session's [Record] as
	// the session ends, once per session, on the goroutine that ends it,
	// after the log record is written: for a program to count, bill or
	// alert. It should return quickly, for it holds that goroutine; a
	// panic in it is recovered and logged. The Record is the hook's to
	// keep.
	OnRecord func(*Record)
}

// Defaults.
const (
	DefaultHandshakeTimeout       = 10 * time.Second
	DefaultSniffTimeout           = 300 * time.Millisecond
	DefaultPeekTimeout            = 300 * time.Millisecond
	DefaultDialTimeout            = 30 * time.Second
	DefaultIdleTimeout            = 10 * time.Minute
	DefaultMaxHandshakes          = 1024
	DefaultMaxHandshakesPerClient = 64
	DefaultHandshakeGrace         = 2 * time.Second

	DefaultMaxAssociations          = 1024
	DefaultMaxAssociationsPerClient = 64
)

// withDefaults returns a copy of c with every unset field at its default.
func (c *Config) withDefaults() Config {
	var d Config
	if c != nil {
		d = *c
	}
	def := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	def(&d.HandshakeTimeout, DefaultHandshakeTimeout)
	def(&d.SniffTimeout, DefaultSniffTimeout)
	def(&d.PeekTimeout, DefaultPeekTimeout)
	def(&d.DialTimeout, DefaultDialTimeout)
	def(&d.IdleTimeout, DefaultIdleTimeout)
	def(&d.HandshakeGrace, DefaultHandshakeGrace)
	if d.MaxHandshakes == 0 {
		d.MaxHandshakes = DefaultMaxHandshakes
	}
	if d.MaxHandshakesPerClient == 0 {
		d.MaxHandshakesPerClient = DefaultMaxHandshakesPerClient
	}
	if d.MaxAssociations == 0 {
		d.MaxAssociations = DefaultMaxAssociations
	}
	if d.MaxAssociationsPerClient == 0 {
		d.MaxAssociationsPerClient = DefaultMaxAssociationsPerClient
	}
	return d
}

// resolver returns the resolver the listener looks names up with.
func (l *Listener) resolver() *net.Resolver {
	if l.cfg.Resolver != nil {
		return l.cfg.Resolver
	}
	return net.DefaultResolver
}
