package httpgate

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/sockstap/sockstap/listener"
)

// maxTransports bounds the clients whose upstream connections are kept
// apart at once; past it, the oldest client's idle connections are closed.
const maxTransports = 256

// upstream sends requests over connections of its own, kept alive between
// requests, and never shared between clients that the policy might tell
// apart: a connection is checked against the policy when it is dialed, for
// the client it is dialed for, so it is reused only by requests of the same
// client address and user.
type upstream struct {
	dial       func(ctx context.Context, network, addr string) (net.Conn, error)
	rht        time.Duration
	mu         sync.Mutex
	transports map[identity]*http.Transport
	order      []identity // oldest first
}

// identity is what a policy may tell clients apart by, but for the
// destination.
type identity struct {
	client  netip.Addr
	user    string
	auth    bool
	version int
}

func identityOf(r *listener.Request) identity {
	return identity{client: r.ClientIP(), user: r.User, auth: r.Authenticated, version: r.Version}
}

func (u *upstream) init(dial func(ctx context.Context, network, addr string) (net.Conn, error), rht time.Duration) {
	u.dial, u.rht = dial, rht
	u.transports = make(map[identity]*http.Transport)
}

// transport returns the transport of r's client.
func (u *upstream) transport(r *listener.Request) *http.Transport {
	id := identityOf(r)
	u.mu.Lock()
	defer u.mu.Unlock()
	if t, ok := u.transports[id]; ok {
		return t
	}
	if len(u.order) >= maxTransports {
		old := u.order[0]
		u.order = u.order[1:]
		u.transports[old].CloseIdleConnections()
		delete(u.transports, old)
	}
	t := &http.Transport{
		DialContext:           u.dial,
		DisableCompression:    true, // the client asked for what it accepts, and gets it
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: u.rht,
		ExpectContinueTimeout: time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		// HTTP/1.1 only: an empty map turns HTTP/2 off.
		TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{},
	}
	u.transports[id] = t
	u.order = append(u.order, id)
	return t
}

// closeIdle closes every idle upstream connection.
func (u *upstream) closeIdle() {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, t := range u.transports {
		t.CloseIdleConnections()
	}
}

// dial connects to addr on behalf of the client whose *listener.Request
// ctx carries, within DialTimeout. It is the gateway's one way out: the
// built-in transport, CONNECT and upgrades all dial through it, and it
// dials through listener.GuardDialer, whatever the Dialer: a name is
// resolved here and each address checked against the policy, unless the
// Dialer forwards it to an upstream that resolves it (see
// Gateway.Dialer).
func (g *Gateway) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	st := g.state()
	ctx, cancel := context.WithTimeout(ctx, st.dialTimeout)
	defer cancel()
	return st.out.DialContext(ctx, network, addr)
}

// dialDenial is the policy's refusal of an address at dial time, as the
// dial's error carries it: whatever error the policy returned, the
// gateway tells a refusal from a failure to connect.
type dialDenial struct{ err error }

func (d *dialDenial) Error() string { return d.err.Error() }
func (d *dialDenial) Unwrap() error { return d.err }

// deniedAtDial returns the policy's refusal of the address a dial was
// about to connect to, when err is one: the gateway's own check's, or a
// [listener.Denial] from a guard the program put in its Dialer.
func deniedAtDial(err error) (error, bool) {
	if d, ok := errors.AsType[*dialDenial](err); ok {
		return d.err, true
	}
	if d, ok := errors.AsType[*listener.Denial](err); ok {
		return d, true
	}
	return nil, false
}

// dialPolicy is p, its refusals wrapped in a *dialDenial.
func dialPolicy(p listener.Policy) listener.Policy {
	return func(ctx context.Context, r *listener.Request) error {
		if err := p(ctx, r); err != nil {
			return &dialDenial{err}
		}
		return nil
	}
}

// refusedByPolicy reports whether err is the policy's refusal at dial
// time.
func refusedByPolicy(err error) bool {
	_, ok := deniedAtDial(err)
	return ok
}
