package httpgate

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
)

// Tests of the one rule for names (listener.GuardDialer's), which every
// dial of the gateway follows, whatever its Dialer: a socks5h peer is
// sent the name, which only it may know how to resolve; a socks5 peer,
// the address the gateway resolved (with the peer dialer's resolver) and
// checked; a wrapper of the program's around a *net.Dialer, a checked
// address too, never the name. Each way a client comes: forward proxy,
// HTTP tapped from SOCKS, and a SOCKS stream relayed.

// namesPeer is an upstream SOCKS proxy whose network knows only
// onion.sockstap.test, as the echo's and origin's host: a gateway that
// relays every SOCKS stream through a *net.Dialer with that resolver.
func namesPeer(t *testing.T) *world {
	resolver := sockstest.Resolver(t, func(name string) ([]netip.Addr, bool) {
		return []netip.Addr{allowedIP}, name == "onion.sockstap.test"
	})
	return newWorld(t, &Gateway{Dialer: &net.Dialer{Resolver: resolver}}, func(s *Server) {
		s.SOCKS = &listener.Config{Tap: func(*listener.Request, func(int) []byte) bool { return false }}
	})
}

// relayTargets are the targets of the relays peer served, in order.
func relayTargets(peer *world) []string {
	var targets []string
	for _, m := range peer.logs.All() {
		if m["msg"] == "socks" && m["decision"] == "relay" {
			targets = append(targets, m["target"])
		}
	}
	return targets
}

// hostEchoingOrigin answers "origin" and the request's Host, and keeps no
// connection, so that each request dials.
func hostEchoingOrigin(t *testing.T) (*origin, string) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprintf(w, "origin %s", r.Host)
	})
	return o, strconv.Itoa(o.Listener.Addr().(*net.TCPAddr).Port)
}

// answer is what a client got: the status, the body and Proxy-Status.
type answer struct {
	status      int
	body        string
	proxyStatus string
}

// getEach gets url through w, once as a forward-proxy client and once
// through SOCKS (tapped), and returns what each got.
func getEach(t *testing.T, w *world, url string) map[Arrival]answer {
	t.Helper()
	out := make(map[Arrival]answer)
	for arrival, client := range map[Arrival]*http.Client{
		ArrivalProxy:  w.client(),
		ArrivalSOCKS5: socksClient(t, "socks5h://"+w.addr),
	} {
		resp, err := client.Get(url)
		require.NoError(t, err, "%v", arrival)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		resp.Body.Close()
		out[arrival] = answer{resp.StatusCode, string(b), resp.Header.Get("Proxy-Status")}
	}
	return out
}

// dialTimeAsks is a policy (inner) that counts the questions it is asked
// at dial time.
type dialTimeAsks struct {
	inner listener.Policy
	mu    sync.Mutex
	ips   []netip.Addr
}

func (p *dialTimeAsks) policy(ctx context.Context, r *listener.Request) error {
	if r.DialedIP.IsValid() {
		p.mu.Lock()
		p.ips = append(p.ips, r.DialedIP)
		p.mu.Unlock()
	}
	return p.inner(ctx, r)
}

func (p *dialTimeAsks) asked() []netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]netip.Addr(nil), p.ips...)
}

// Through a socks5h peer, a name only the peer can resolve is reached,
// each way a client comes: the peer is sent the name, and the policy is
// not asked about an address here.
func TestNamesSocks5hPeer(t *testing.T) {
	peer := namesPeer(t)
	_, port := hostEchoingOrigin(t)
	echo := sockstest.Echo(t)
	d, err := dialer.Parse("socks5h://" + peer.addr)
	require.NoError(t, err)
	p := &dialTimeAsks{inner: noRebound}
	w := newWorld(t, &Gateway{Dialer: d, Policy: p.policy}, nil)

	name := net.JoinHostPort("onion.sockstap.test", port)
	for arrival, a := range getEach(t, w, "http://"+name+"/") {
		assert.Equal(t, answer{http.StatusOK, "origin " + name, ""}, a, "%v", arrival)
	}

	// A SOCKS stream that is not HTTP is relayed, by the Server's
	// listener, through the same dialer, by the same rule.
	echoName := net.JoinHostPort("onion.sockstap.test", strconv.Itoa(echo.Port))
	client, err := dialer.Parse("socks5h://" + w.addr)
	require.NoError(t, err)
	c, err := client.DialContext(context.Background(), "tcp", echoName)
	require.NoError(t, err, "relayed")
	sockstest.Echoes(t, c, "relayed by name")
	c.Close()

	peer.logs.WaitN(t, 3, func(m map[string]string) bool { return m["msg"] == "socks" && m["decision"] == "relay" })
	assert.ElementsMatch(t, []string{name, name, echoName}, relayTargets(peer), "the peer was sent the name each time")
	assert.Empty(t, p.asked(), "no address was checked here: the name is the peer's to resolve and judge")
}

// Through a socks5 peer, which resolves names on the client, the gateway
// resolves the name with the peer dialer's resolver and checks the
// address: a name rebound to a denied address is refused (403), and the
// peer is sent only the allowed address.
func TestNamesSocks5Peer(t *testing.T) {
	peer := namesPeer(t)
	_, port := hostEchoingOrigin(t)
	d, err := dialer.Parse("socks5://" + peer.addr)
	require.NoError(t, err)
	d.Resolver = sockstest.Resolver(t, func(name string) ([]netip.Addr, bool) {
		switch name {
		case "near.sockstap.test":
			return []netip.Addr{allowedIP}, true
		case rebindName:
			return []netip.Addr{deniedIP}, true
		}
		return nil, false
	})
	w := newWorld(t, &Gateway{Dialer: d, Policy: noRebound}, nil)

	near := net.JoinHostPort("near.sockstap.test", port)
	for arrival, a := range getEach(t, w, "http://"+near+"/") {
		assert.Equal(t, answer{http.StatusOK, "origin " + near, ""}, a, "%v", arrival)
	}
	for arrival, a := range getEach(t, w, "http://"+net.JoinHostPort(rebindName, port)+"/") {
		refusedWith(t, a, "rebound", arrival)
	}
	peer.logs.WaitN(t, 2, func(m map[string]string) bool { return m["msg"] == "socks" && m["decision"] == "relay" })
	addr := net.JoinHostPort(allowedIP.String(), port)
	assert.Equal(t, []string{addr, addr}, relayTargets(peer), "the peer was sent the checked address, never the denied one")
}

// countingDialer is a careless wrapper: a *net.Dialer inside, counting
// its dials. It is no *net.Dialer, and forwards no name.
type countingDialer struct {
	*net.Dialer
	dials atomic.Int64
}

func (d *countingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d.dials.Add(1)
	return d.Dialer.DialContext(ctx, network, address)
}

// A wrapper around a *net.Dialer is guarded as the *net.Dialer would be:
// a name that resolves to a denied address (localhost, to a policy that
// denies loopback) is refused at dial time, and the wrapper never dials.
func TestNamesWrapperGuarded(t *testing.T) {
	_, port := hostEchoingOrigin(t)
	noLoopback := listener.Rules{
		{Allow: false, Dests: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, Reason: "loopback"},
		{Allow: true},
	}.Policy
	d := &countingDialer{Dialer: &net.Dialer{}}
	w := newWorld(t, &Gateway{Dialer: d, Policy: noLoopback}, nil)
	for arrival, a := range getEach(t, w, "http://"+net.JoinHostPort("localhost", port)+"/") {
		refusedWith(t, a, "loopback", arrival)
	}
	assert.Zero(t, d.dials.Load(), "the wrapper was never asked to dial")
}

// refusedWith checks that a is the gateway's refusal, at dial time, of
// the address a name resolved to, for reason.
func refusedWith(t *testing.T, a answer, reason string, arrival Arrival) {
	t.Helper()
	assert.Equal(t, http.StatusForbidden, a.status, "%v: %s", arrival, a.body)
	assert.Contains(t, a.body, "denied: "+reason, "%v", arrival)
	assert.Contains(t, a.proxyStatus, "error=destination_ip_prohibited", "%v", arrival)
}
