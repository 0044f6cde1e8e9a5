package listener

import (
	"log/slog"
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

	// Policy decides which requests are served; nil is [DefaultPolicy].
	Policy Policy

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
	// MaxHandshakesPerClient those from one client IP address: a
	// connection over a limit is closed as soon as it is seen to be SOCKS.
	// Zero means 1024 and 64; a negative value, no limit.
	MaxHandshakes, MaxHandshakesPerClient int

	// MaxConns limits the connections the listener holds at once: being
	// sniffed, in a SOCKS handshake, relayed, or waiting for Accept. A
	// connection over the limit is closed as soon as it is accepted. Zero
	// or negative means no limit.
	MaxConns int

	// Logger receives a record for each SOCKS connection. Nil means
	// slog.Default().
	Logger *slog.Logger
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
	if d.MaxHandshakes == 0 {
		d.MaxHandshakes = DefaultMaxHandshakes
	}
	if d.MaxHandshakesPerClient == 0 {
		d.MaxHandshakesPerClient = DefaultMaxHandshakesPerClient
	}
	if d.Logger == nil {
		d.Logger = slog.Default()
	}
	return d
}
