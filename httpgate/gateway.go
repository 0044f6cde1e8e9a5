package httpgate

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/listener"
)

// Gateway is an HTTP proxy as an [http.Handler]: it serves forward-proxy
// requests (absolute-form URLs, and CONNECT tunnels), HTTP arriving on
// SOCKS streams that a [listener.Listener] tapped, and hands everything
// else to Fallback. The zero value works: it reaches destinations
// directly, serves clients on loopback ([listener.DefaultPolicy]), caches
// nothing and logs to slog.Default().
//
// A Gateway must not be copied or changed once it has served a request.
type Gateway struct {
	// Dialer connects to destinations: origin servers, CONNECT targets,
	// the targets of tapped SOCKS streams. Nil is a *net.Dialer; a SOCKS
	// peer, a chain or a route table from package dialer makes the
	// gateway a translating proxy. The context of each dial carries the
	// client's *listener.Request and how it arrived
	// ([ArrivalFromContext]).
	//
	// Every dial goes through [listener.GuardDialer], whose one rule says
	// where a name is resolved and what the policy is asked at dial time
	// (see Policy): a *net.Dialer (nil) resolves the name and has each
	// address it connects to checked, so that a name which resolves to an
	// allowed address when the request arrives and to a denied one when
	// it is dialed (DNS rebinding) is refused (403); a dialer that sends
	// the name on unresolved to an upstream proxy
	// ([listener.NameForwarder]: a socks5h or socks4a dialer.Dialer, a
	// dialer.Router for the destinations it routes to such peers) is given
	// the name as the request named it, which the upstream resolves in its
	// own network, applying its own policy (a privacy proxy in front of
	// Tor leaks no lookup, and reaches .onion names); any other dialer (a
	// socks5 or socks4 peer, a wrapper of the program's around a
	// *net.Dialer) is given an address the gateway resolved and the policy
	// allowed, never the name. A [Server] relays the SOCKS streams it does
	// not tap through the same Dialer, by the same rule (see
	// listener.Config.Dialer).
	Dialer proxy.ContextDialer

	// Transport, when set, sends ordinary requests (not CONNECT, not
	// upgrades) instead of the gateway's own HTTP/1.1 client over Dialer.
	// Its requests' contexts carry the client's *listener.Request
	// ([listener.FromContext]) and how it arrived
	// ([ArrivalFromContext]); the policy is asked only when each request
	// arrives: the transport's dials are its own, unchecked unless its
	// DialContext is a listener.GuardDialer's (which applies the rule
	// Dialer describes).
	Transport http.RoundTripper

	// Policy decides which destinations a client may reach, as it does
	// for a listener: asked when a request arrives, with the request's
	// destination as Target, and again at dial time, with
	// [listener.Request.DialedIP] set, for each address the gateway
	// connects to or hands its Dialer; not for a name the Dialer forwards
	// to an upstream proxy, whose address it never learns (see Dialer).
	// A refusal either time is answered 403 with the policy's reason; at
	// dial time the response's Proxy-Status says
	// destination_ip_prohibited (RFC 9209). Nil is
	// [listener.DefaultPolicy]. A forward-proxy client's Request has
	// Version 0, Command CONNECT, the destination as Target, and the
	// proxy-authenticated user, if any; its context tells how the client
	// came ([ArrivalFromContext]: [ArrivalProxy] or [ArrivalConnect]),
	// which is what to log rather than the Request's VersionString.
	Policy listener.Policy

	// Fallback serves requests that are not for the proxy: origin-form
	// requests that did not arrive on a tapped SOCKS stream, such as the
	// program's own pages on its own port. Nil answers 404.
	Fallback http.Handler

	// ProxyAuth, when set, makes forward-proxy clients authenticate
	// (RFC 9110, section 11.7: 407 and Proxy-Authenticate: Basic); it
	// reports whether password is username's. The Check method of a
	// *socks5.Credentials fits, so that HTTP and SOCKS5 clients share one
	// credential store. Tapped SOCKS streams authenticated, or not, in
	// their SOCKS handshake.
	ProxyAuth func(ctx context.Context, username, password string) bool

	// Realm is the realm of the Basic challenge. Empty is "sockstap".
	Realm string

	// Filter, when set, is asked about each request before it is served
	// (from the cache or not): a non-nil error refuses it with 403 and the
	// error's text as the reason.
	Filter func(r *http.Request) error

	// ModifyResponse, when set, may change each response from upstream
	// before it is stored or passed on; an error answers 502.
	ModifyResponse func(r *http.Response) error

	// Cache, when set, stores responses and answers from them by the
	// rules of a shared cache (RFC 9111).
	Cache *Cache

	// Via is the name the gateway gives itself in Via fields, and by
	// which it recognises a request that has been through it already.
	// Empty is "sockstap-" and random hexadecimal digits, chosen once.
	Via string

	// Forwarded adds the client's address to requests, in Forwarded (RFC
	// 7239) and X-Forwarded-For. Off by default: a privacy proxy does not
	// tell.
	Forwarded bool

	// DialTimeout bounds a dial. Zero means 30 seconds.
	DialTimeout time.Duration

	// ResponseHeaderTimeout bounds the wait for a response's header once
	// the request is sent; past it the client is answered 504. Zero means
	// 60 seconds.
	ResponseHeaderTimeout time.Duration

	// BodyIdleTimeout bounds each wait for more of a body: when the
	// origin sends part of a response body and then nothing for that
	// long, the gateway cuts the response off (the client's connection
	// ends, since the response cannot be completed); when the client
	// stops sending its request body, the gateway answers 408 and closes
	// the connection. Either way the record says why. The clock runs only
	// while the gateway waits for the sender, not while the receiver is
	// slow to take what was sent. Zero means 2 minutes; negative, never.
	BodyIdleTimeout time.Duration

	// ClientWriteTimeout bounds each write to the client: a client that
	// takes nothing of what the gateway sends it (a response's head, a
	// piece of its body) for that long is cut off, its connection closed
	// and the upstream response let go, and the record says so. The clock
	// runs only while a write waits for the client, so a slow client that
	// keeps reading is served however long the response takes. Zero means
	// 2 minutes; negative, never. It needs a ResponseWriter that can set
	// write deadlines (http.ResponseController), as net/http's can; the
	// deadline is renewed at most every sixteenth of the timeout, so a
	// write is given at least fifteen sixteenths of it.
	ClientWriteTimeout time.Duration

	// IdleTimeout closes a tunnel (CONNECT, an upgraded connection) when
	// nothing has moved either way for that long. Zero means 10 minutes;
	// negative, never.
	IdleTimeout time.Duration

	// Logger receives a record for each request served. Nil means
	// slog.Default().
	Logger *slog.Logger

	// OnRecord, when set, is given the record of each request once it has
	// been served, after it is logged.
	OnRecord func(*Record)

	once sync.Once
	st   state
}

// Defaults.
const (
	DefaultDialTimeout           = 30 * time.Second
	DefaultResponseHeaderTimeout = 60 * time.Second
	DefaultBodyIdleTimeout       = 2 * time.Minute
	DefaultClientWriteTimeout    = 2 * time.Minute
	DefaultIdleTimeout           = 10 * time.Minute
)

// state is what a Gateway derives from its fields when it first serves.
type state struct {
	via         string
	via11       string // the Via entry of a message received with HTTP/1.1
	realm       string
	policy      listener.Policy
	dialer      proxy.ContextDialer // Dialer, or a *net.Dialer: what the Server's listener relays through
	out         proxy.ContextDialer // dialer, through the policy's dial-time check (GuardDialer)
	logger      *slog.Logger
	dialTimeout time.Duration
	idle        time.Duration // a tunnel's; 0 is never
	bodyIdle    time.Duration // a response body's; 0 is never
	clientWrite time.Duration // each write to the client; 0 is never
	rht         time.Duration
	upstream    upstream
}

func (g *Gateway) setup() {
	s := &g.st
	s.via = g.Via
	if s.via == "" {
		s.via = newPseudonym()
	}
	s.via11 = "1.1 " + s.via
	s.realm = g.Realm
	if s.realm == "" {
		s.realm = "sockstap"
	}
	s.policy = g.Policy
	if s.policy == nil {
		s.policy = listener.DefaultPolicy
	}
	s.dialer = g.Dialer
	if s.dialer == nil {
		s.dialer = &net.Dialer{}
	}
	s.out = listener.GuardDialer(s.dialer, dialPolicy(s.policy))
	s.logger = g.Logger
	if s.logger == nil {
		s.logger = slog.Default()
	}
	s.dialTimeout = g.DialTimeout
	if s.dialTimeout == 0 {
		s.dialTimeout = DefaultDialTimeout
	}
	s.idle = orDefault(g.IdleTimeout, DefaultIdleTimeout)
	s.bodyIdle = orDefault(g.BodyIdleTimeout, DefaultBodyIdleTimeout)
	s.clientWrite = orDefault(g.ClientWriteTimeout, DefaultClientWriteTimeout)
	s.rht = g.ResponseHeaderTimeout
	if s.rht == 0 {
		s.rht = DefaultResponseHeaderTimeout
	}
	s.upstream.init(g.dial, s.rht)
}

// orDefault reads a bound whose zero means def and whose negative values
// mean none: it returns def for zero, 0 for "none".
func orDefault(d, def time.Duration) time.Duration {
	switch {
	case d == 0:
		return def
	case d < 0:
		return 0
	}
	return d
}

func (g *Gateway) state() *state {
	g.once.Do(g.setup)
	return &g.st
}

// ServeHTTP serves one request: a forward-proxy request, a CONNECT, a
// request on a tapped SOCKS stream, or the fallback's.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	st := g.state()
	ex := &exchange{g: g, st: st, r: r, start: time.Now()}
	defer ex.release() // after the record (deferred below) is written
	ctx := r.Context()
	sreq, tapped := listener.FromContext(ctx)
	ex.fc, _ = ctx.Value(framedConnKey{}).(*framedConn)
	switch {
	case r.Method == badFramingMethod && ex.fc != nil && ex.fc.badFraming() != nil:
		ex.arrival = ArrivalProxy
		if tapped {
			ex.arrival, ex.req = arrivalOf(sreq), sreq
		}
		ex.cw.ResponseWriter = w
		ex.w = &ex.cw
		ex.connBound = ex.fc.boundWrites(true)
		defer ex.finish()
		ex.w.Header().Set("Connection", "close")
		ex.fail(http.StatusBadRequest, ex.fc.badFraming().reason, nil)
		return
	case tapped:
		ex.arrival = arrivalOf(sreq)
		ex.req = sreq
	case r.Method == http.MethodConnect:
		ex.arrival = ArrivalConnect
	case r.URL.IsAbs() && r.URL.Host != "":
		ex.arrival = ArrivalProxy
	default:
		if ex.fc != nil {
			ex.fc.boundWrites(false) // the program's own pages bound their writes as they see fit
		}
		if g.Fallback != nil {
			g.Fallback.ServeHTTP(w, r)
		} else {
			http.Error(w, "404 not found: this is a proxy; ask it for an absolute URL", http.StatusNotFound)
		}
		return
	}
	ex.cw.ResponseWriter = w
	ex.w = &ex.cw
	if ex.fc != nil {
		ex.connBound = ex.fc.boundWrites(true)
	}
	defer ex.finish()
	ex.serve()
}

// arrivalOf tells how a tapped stream arrived.
func arrivalOf(r *listener.Request) Arrival {
	switch r.VersionString() {
	case "socks4":
		return ArrivalSOCKS4
	case "socks4a":
		return ArrivalSOCKS4a
	}
	return ArrivalSOCKS5
}

// hostPort returns host with the port that scheme implies when it has
// none.
func hostPort(host, scheme string) string {
	if _, _, err := net.SplitHostPort(host); err == nil {
		return host
	}
	port := "80"
	if strings.EqualFold(scheme, "https") {
		port = "443"
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		return host + ":" + port
	}
	return net.JoinHostPort(host, port)
}
