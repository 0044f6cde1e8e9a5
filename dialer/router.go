package dialer

import (
	"context"
	"net"
	"strings"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/socks5"
)

// A Router picks, for each destination, how to reach it: directly, or
// through an ordered list of peers, as Squid picks among its cache peers.
// It implements [proxy.Dialer] and [proxy.ContextDialer]. The zero Router
// connects to everything directly.
//
// The first of Routes whose Dests contain the destination decides; when
// none does, Peers do. With no peers, the destination is dialed directly,
// through Direct. Otherwise the peers are tried in their order while they
// cannot be reached: a peer whose proxy refuses the connection, times out
// or does not exist is passed over for the next, like a parent cache peer
// that is down. A peer that was reached decides: its failure, such as a
// reply refusing the target, is returned and no other peer is asked. A
// peer is any dialer; "cannot be reached" is told from the errors of this
// package's [Dialer]s (and of chains and Routers built of them), so a
// failure of any other dialer is final.
type Router struct {
	// Routes are tried in order; the first whose Dests contain the
	// destination decides.
	Routes []Route

	// Peers reach the destinations that no route matches, tried in order.
	// None: those destinations are dialed directly.
	Peers []proxy.ContextDialer

	// Direct dials the destinations that are reached directly. Nil is a
	// [net.Dialer].
	Direct proxy.ContextDialer
}

// A Route says how to reach the destinations in Dests: through Peers,
// tried in order, or directly when there are none.
type Route struct {
	// Dests are the destinations the route is for.
	Dests Hosts

	// Peers reach them, tried in order; none: directly.
	Peers []proxy.ContextDialer
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
		d := r.Direct
		if d == nil {
			d = &direct
		}
		return d.DialContext(ctx, network, address)
	}
	var errs []error
	for _, p := range peers {
		c, err := p.DialContext(ctx, network, address)
		if err == nil {
			return c, nil
		}
		if len(peers) == 1 || ctx.Err() != nil || !unreachable(err) {
			return nil, err
		}
		errs = append(errs, err)
	}
	var target net.Addr
	if a, err := socks5.ParseAddr(address); err == nil {
		target = a
	}
	return nil, &net.OpError{Op: cmdConnect.op, Net: network, Addr: target, Err: &allUnreachableError{errs}}
}

// route returns the peers for address.
func (r *Router) route(address string) []proxy.ContextDialer {
	for i := range r.Routes {
		if r.Routes[i].Dests.Contains(address) {
			return r.Routes[i].Peers
		}
	}
	return r.Peers
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
