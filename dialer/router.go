package dialer

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/socks5"
)

// Defaults of a [Router]'s fields.
const (
	DefaultPeerTimeout = 10 * time.Second // PeerTimeout's
	DefaultRetryAfter  = 10 * time.Second // RetryAfter's
	maxRetryFactor     = 32               // a peer down again and again waits at most 32 RetryAfters
)

// A Router picks, for each destination, how to reach it: directly, or
// through an ordered list of peers, as Squid picks among its cache peers.
// It implements [proxy.Dialer] and [proxy.ContextDialer]. The zero Router
// connects to everything directly.
//
// The first of Routes whose Dests contain the destination decides; when
// none does, Peers do. With no peers, the destination is dialed directly,
// through Direct. Otherwise the peers are tried in their order while they
// cannot be reached: a peer whose proxy refuses the connection, does not
// exist, or does not answer within PeerTimeout is passed over for the
// next, like a parent cache peer that is down, and is remembered as down
// for a while (RetryAfter, doubled each time it fails again), during
// which it is tried only after the peers that are not down. Each failover
// is logged. A peer that was reached decides: its failure, such as a reply
// refusing the target, is returned and no other peer is asked. A peer is
// any dialer; "cannot be reached" is told from the errors of this
// package's [Dialer]s (and of chains and Routers built of them) and from
// PeerTimeout, so a failure of any other dialer is final.
//
// Listen, ListenPacket, Resolve and ResolvePTR go the same way, to peers
// that have those methods (this package's [Dialer]s and Routers).
//
// Behind [github.com/sockstap/sockstap/listener.GuardDialer] (a
// listener's relays, package httpgate's gateway), the Router says per
// destination which dialer serves it ([Router.DialerFor]) and whether
// that one sends names on unresolved ([Router.ForwardsName]): a name
// routed to socks5h or socks4a peers goes to them as a name; one routed
// directly, or to peers that resolve names on the client, is resolved and
// checked against the policy first, then dialed as an address along the
// route its name picked.
//
// A Router must not be copied once used, and its fields must not change
// while it is in use.
type Router struct {
	// Routes are tried in order; the first whose Dests contain the
	// destination decides.
	Routes []Route

	// Peers reach the destinations that no route matches, tried in order.
	// None: those destinations are dialed directly.
	Peers []proxy.ContextDialer

	// Direct dials the destinations that are reached directly. Nil is a
	// [net.Dialer]. Behind listener.GuardDialer it is given addresses the
	// guard has resolved and checked, not names, and need not guard
	// itself.
	Direct proxy.ContextDialer

	// PeerTimeout bounds each peer's attempt, the connection to it and the
	// handshake: a peer that takes longer counts as unreachable. Zero is
	// DefaultPeerTimeout; a negative value leaves only the context's bound.
	PeerTimeout time.Duration

	// RetryAfter is how long a peer found unreachable is tried last; it
	// doubles each time the peer fails again, up to 32 times as long, and
	// a success forgets it. Zero is DefaultRetryAfter; a negative value
	// remembers nothing.
	RetryAfter time.Duration

	// Logger receives a record, at level Warn, for each peer passed over,
	// with the keys "peer", "cmd", "target", "error" and "retry_after".
	// Nil means [slog.Default].
	Logger *slog.Logger

	mu   sync.Mutex
	down map[any]*peerHealth // by peer: see peerKey
}

// A Route says how to reach the destinations in Dests: through Peers,
// tried in order, or directly when there are none.
type Route struct {
	// Dests are the destinations the route is for.
	Dests Hosts

	// Peers reach them, tried in order; none: directly.
	Peers []proxy.ContextDialer
}

// peerHealth is what a Router remembers of a peer that failed.
type peerHealth struct {
	until time.Time     // tried last until then
	wait  time.Duration // how long the next failure makes it wait
}

// Dial connects to address on network; see [Router.DialContext].
func (r *Router) Dial(network, address string) (net.Conn, error) {
	return r.DialContext(context.Background(), network, address)
}

// DialContext connects to address on network, directly or through the
// peers that the route for address lists, as the [Router] documentation
// says. When every peer is unreachable, the error is a [*net.OpError]
// wrapping each peer's error.
func (r *Router) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	peers := r.route(address)
	if len(peers) == 0 {
		return r.direct().DialContext(ctx, network, address)
	}
	return r.dialPeers(ctx, peers, network, address)
}

// dialPeers dials address through peers, as DialContext does for a route
// that has them.
func (r *Router) dialPeers(ctx context.Context, peers []proxy.ContextDialer, network, address string) (net.Conn, error) {
	op := cmdConnect.op
	if strings.HasPrefix(network, "udp") {
		op = cmdUDP.op
	}
	var c net.Conn
	err := r.try(ctx, peers, op, network, address, func(ctx context.Context, p proxy.ContextDialer) (err error) {
		c, err = p.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

func (r *Router) direct() proxy.ContextDialer {
	if r.Direct != nil {
		return r.Direct
	}
	return &direct
}

// DialerFor returns the dialer that serves address on network, the one
// DialContext dials it through: Direct (a new [net.Dialer] when Direct is
// nil) when the route for address has no peers; otherwise a dialer that
// dials through the route's peers as the Router does, trying them in turn
// while they cannot be reached, and remembering which are down with the
// Router. The route is picked by address as it is given: a name by the
// name, an IP address by the address.
//
// [github.com/sockstap/sockstap/listener.GuardDialer] asks, so that a
// name it resolves and checks before it dials (one routed directly, say)
// is dialed as an address through the dialer its name was routed to,
// rather than routed again by its address.
func (r *Router) DialerFor(network, address string) proxy.ContextDialer {
	peers := r.route(address)
	if len(peers) == 0 {
		if r.Direct != nil {
			return r.Direct
		}
		return &net.Dialer{}
	}
	return &routeDialer{r: r, peers: peers}
}

// ForwardsName reports whether a dial of address on network sends its
// name on unresolved to an upstream that resolves it, as the route for
// address decides: a route reached directly answers as Direct does (a
// net.Dialer resolves names here: false); a route through peers answers
// true when each of its peers forwards the name (a socks5h or socks4a
// [Dialer], a Router whose route does), since which one will serve the
// dial is known only once it is tried.
// [github.com/sockstap/sockstap/listener.GuardDialer] asks, to give the
// Router the name or an address it resolved and checked.
func (r *Router) ForwardsName(network, address string) bool {
	return forwardsName(r.DialerFor(network, address), network, address)
}

// forwardsName reports whether d says it sends address's name on
// unresolved (a ForwardsName method, as listener.NameForwarder has it).
func forwardsName(d proxy.ContextDialer, network, address string) bool {
	f, ok := d.(interface {
		ForwardsName(network, address string) bool
	})
	return ok && f.ForwardsName(network, address)
}

// routeDialer dials through the peers of one of a Router's routes, as the
// Router does: DialerFor's dialer for a route that has peers.
type routeDialer struct {
	r     *Router
	peers []proxy.ContextDialer
}

func (d *routeDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return d.r.dialPeers(ctx, d.peers, network, address)
}

// ForwardsName reports whether every peer sends address's name on
// unresolved.
func (d *routeDialer) ForwardsName(network, address string) bool {
	for _, p := range d.peers {
		if !forwardsName(p, network, address) {
			return false
		}
	}
	return len(d.peers) > 0
}

// String names the peers, in their order.
func (d *routeDialer) String() string {
	names := make([]string, len(d.peers))
	for i, p := range d.peers {
		names[i] = peerName(p)
	}
	return "peers " + strings.Join(names, ", ")
}

// A Binder makes BIND requests: a [*Dialer] or a [*Router].
type Binder interface {
	Listen(ctx context.Context, network, address string) (net.Listener, error)
}

// A PacketListener makes UDP associations: a [*Dialer] or a [*Router].
type PacketListener interface {
	ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error)
}

// A NameResolver resolves names and addresses through a proxy: a
// [*Dialer] or a [*Router].
type NameResolver interface {
	Resolve(ctx context.Context, name string) (netip.Addr, error)
	ResolvePTR(ctx context.Context, ip netip.Addr) (string, error)
}

var (
	_ Binder         = (*Dialer)(nil)
	_ PacketListener = (*Dialer)(nil)
	_ NameResolver   = (*Dialer)(nil)
)

// Listen makes a BIND request, as [Dialer.Listen] does, through the peers
// that the route for address, the peer expected to connect, lists. A
// destination reached directly gets a plain TCP listener, on the local
// address that would reach address, port chosen by the system.
func (r *Router) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	peers := r.route(address)
	if len(peers) == 0 {
		return listenDirect(ctx, network, address)
	}
	var l net.Listener
	err := r.try(ctx, peers, cmdBind.op, network, address, func(ctx context.Context, p proxy.ContextDialer) error {
		b, ok := p.(Binder)
		if !ok {
			return &unreachableError{fmt.Errorf("peer %s has no BIND", peerName(p))}
		}
		var err error
		l, err = b.Listen(ctx, network, address)
		return err
	})
	return l, err
}

// listenDirect listens on the local address that reaches address.
func listenDirect(ctx context.Context, network, address string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	udp := "udp" + strings.TrimPrefix(network, "tcp")
	var d net.Dialer
	probe, err := d.DialContext(ctx, udp, net.JoinHostPort(host, "9")) // sends nothing
	if err != nil {
		return nil, err
	}
	local := probe.LocalAddr().(*net.UDPAddr).IP
	probe.Close()
	var lc net.ListenConfig
	return lc.Listen(ctx, network, net.JoinHostPort(local.String(), "0"))
}

// Resolve resolves name through the peers that the route for name lists,
// as [Dialer.Resolve] does, or, when it is reached directly, with
// [net.DefaultResolver]. An IP address is returned as it is.
func (r *Router) Resolve(ctx context.Context, name string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(name); err == nil {
		return ip.Unmap(), nil
	}
	peers := r.route(name)
	if len(peers) == 0 {
		ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", name)
		if err != nil {
			return netip.Addr{}, err
		}
		return ips[0].Unmap(), nil
	}
	var ip netip.Addr
	err := r.try(ctx, peers, cmdResolve.op, "ip", name, func(ctx context.Context, p proxy.ContextDialer) error {
		nr, ok := p.(NameResolver)
		if !ok {
			return &unreachableError{fmt.Errorf("peer %s has no RESOLVE", peerName(p))}
		}
		var err error
		ip, err = nr.Resolve(ctx, name)
		return err
	})
	return ip, err
}

// ResolvePTR resolves ip to a name through the peers that the route for ip
// lists, as [Dialer.ResolvePTR] does, or, when it is reached directly,
// with [net.DefaultResolver].
func (r *Router) ResolvePTR(ctx context.Context, ip netip.Addr) (string, error) {
	peers := r.route(ip.String())
	if len(peers) == 0 {
		names, err := net.DefaultResolver.LookupAddr(ctx, ip.String())
		if err != nil {
			return "", err
		}
		return names[0], nil
	}
	var name string
	err := r.try(ctx, peers, cmdResolvePTR.op, "ip", ip.String(), func(ctx context.Context, p proxy.ContextDialer) error {
		nr, ok := p.(NameResolver)
		if !ok {
			return &unreachableError{fmt.Errorf("peer %s has no RESOLVE_PTR", peerName(p))}
		}
		var err error
		name, err = nr.ResolvePTR(ctx, ip)
		return err
	})
	return name, err
}

// route returns the peers for address.
func (r *Router) route(address string) []proxy.ContextDialer {
	_, peers := r.routeIndex(address)
	return peers
}

// routeIndex returns the index of the route for address, or -1 for the
// default peers, and its peers.
func (r *Router) routeIndex(address string) (int, []proxy.ContextDialer) {
	for i := range r.Routes {
		if r.Routes[i].Dests.Contains(address) {
			return i, r.Routes[i].Peers
		}
	}
	return -1, r.Peers
}

// try runs attempt with peers in turn, those not down first, each within
// PeerTimeout, until one succeeds or decides; it returns nil or the
// *net.OpError to return.
func (r *Router) try(ctx context.Context, peers []proxy.ContextDialer, op, network, address string,
	attempt func(context.Context, proxy.ContextDialer) error) error {
	var errs []error
	for _, p := range r.order(peers) {
		err := r.attempt(ctx, p, attempt)
		if err == nil {
			r.up(p)
			return nil
		}
		if ctx.Err() != nil || !unreachable(err) {
			return err
		}
		wait := r.fail(p)
		errs = append(errs, err)
		if len(peers) == 1 {
			return err
		}
		r.logger().LogAttrs(ctx, slog.LevelWarn, "peer unreachable, trying the next",
			slog.String("peer", peerName(p)), slog.String("cmd", op), slog.String("target", address),
			slog.String("error", err.Error()), slog.Duration("retry_after", wait))
	}
	var target net.Addr
	if a, err := socks5.ParseAddr(address); err == nil {
		target = a
	}
	return &net.OpError{Op: op, Net: network, Addr: target, Err: &allUnreachableError{errs}}
}

// attempt runs one peer's attempt within PeerTimeout. A peer that times
// out, while ctx has not ended, is unreachable.
func (r *Router) attempt(ctx context.Context, p proxy.ContextDialer, attempt func(context.Context, proxy.ContextDialer) error) error {
	timeout := r.PeerTimeout
	if timeout == 0 {
		timeout = DefaultPeerTimeout
	}
	if timeout < 0 {
		return attempt(ctx, p)
	}
	limit := time.Now().Add(timeout)
	if d, ok := ctx.Deadline(); ok && !d.After(limit) {
		return attempt(ctx, p) // the caller's deadline comes first: its own
	}
	pctx, cancel := context.WithDeadline(ctx, limit)
	defer cancel()
	err := attempt(pctx, p)
	// A connection's deadline, set to pctx's, may pass a moment before
	// pctx's timer fires.
	timedOut := pctx.Err() != nil || deadline.IsTimeout(err) && !time.Now().Before(limit)
	if err != nil && ctx.Err() == nil && timedOut && !unreachable(err) {
		err = &unreachableError{&peerTimeoutError{peer: peerName(p), timeout: timeout, err: err}}
	}
	return err
}

// peerTimeoutError is a peer that did not answer within PeerTimeout.
type peerTimeoutError struct {
	peer    string
	timeout time.Duration
	err     error
}

func (e *peerTimeoutError) Error() string {
	return fmt.Sprintf("peer %s did not answer within %v: %v", e.peer, e.timeout, e.err)
}

func (e *peerTimeoutError) Unwrap() error { return e.err }
func (e *peerTimeoutError) Timeout() bool { return true }

// order returns peers with those that are down last, each group in its
// order.
func (r *Router) order(peers []proxy.ContextDialer) []proxy.ContextDialer {
	if r.RetryAfter < 0 {
		return peers
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.down) == 0 {
		return peers
	}
	now := time.Now()
	var up, down []proxy.ContextDialer
	for _, p := range peers {
		if h := r.down[peerKey(p)]; h != nil && now.Before(h.until) {
			down = append(down, p)
		} else {
			up = append(up, p)
		}
	}
	return append(up, down...)
}

// fail remembers that p was unreachable, and returns for how long.
func (r *Router) fail(p proxy.ContextDialer) time.Duration {
	base := r.RetryAfter
	if base == 0 {
		base = DefaultRetryAfter
	}
	if base < 0 {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down == nil {
		r.down = map[any]*peerHealth{}
	}
	k := peerKey(p)
	h := r.down[k]
	if h == nil {
		h = &peerHealth{wait: base}
		r.down[k] = h
	}
	wait := h.wait
	h.until = time.Now().Add(wait)
	h.wait = min(2*h.wait, maxRetryFactor*base)
	return wait
}

// up forgets that p failed.
func (r *Router) up(p proxy.ContextDialer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.down, peerKey(p))
}

func (r *Router) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// peerKey returns what a peer is remembered by: the peer itself when it
// is a pointer, which can be a map key, and its type and text otherwise.
func peerKey(p proxy.ContextDialer) any {
	if reflect.ValueOf(p).Kind() == reflect.Pointer {
		return p
	}
	return fmt.Sprintf("%T %v", p, p)
}

// peerName returns how logs and errors name a peer.
func peerName(p proxy.ContextDialer) string {
	if s, ok := p.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", p)
}

// allUnreachableError is the failure of a route whose peers all are
// unreachable. It wraps their errors, so a Router that has this one as a
// peer passes it over too.
type allUnreachableError struct{ errs []error }

func (e *allUnreachableError) Error() string {
	var b strings.Builder
	b.WriteString("no peer could be reached")
	for i, err := range e.errs {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e *allUnreachableError) Unwrap() []error { return e.errs }
