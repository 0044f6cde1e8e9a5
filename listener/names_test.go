package listener

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// Tests of GuardDialer's one rule for names: a dialer that forwards a
// name to an upstream that resolves it (NameForwarder) is given the name;
// any other dialer, an address the guard resolved and the policy allowed;
// a dialer that routes (RouteDialer) is asked which of its dialers serves
// the name, and that one's rule holds.

// zoneDialer records the addresses it is given and connects to them,
// resolving a name from its zone: a dialer of the program's, other than
// a *net.Dialer, with a resolver of its own (LookupNetIP), or a proxy
// that resolves the names it is sent.
type zoneDialer struct {
	zone  map[string]netip.Addr
	mu    sync.Mutex
	dials []string
}

func (d *zoneDialer) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	ip, ok := d.zone[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return []netip.Addr{ip}, nil
}

func (d *zoneDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.dials = append(d.dials, address)
	d.mu.Unlock()
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if ip, ok := d.zone[host]; ok {
		address = net.JoinHostPort(ip.String(), port)
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, address)
}

func (d *zoneDialer) dialed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.dials...)
}

// forwarder is a zoneDialer that says it forwards the names in names.
type forwarder struct {
	*zoneDialer
	names map[string]bool
}

func (f forwarder) ForwardsName(_, address string) bool {
	host, _, _ := net.SplitHostPort(address)
	return f.names[host]
}

// table is a RouteDialer: the names in direct go through near, the rest
// through far. It records what it is asked to dial itself.
type table struct {
	near, far proxy.ContextDialer
	direct    map[string]bool
	mu        sync.Mutex
	dials     []string
}

func (r *table) DialerFor(_, address string) proxy.ContextDialer {
	host, _, _ := net.SplitHostPort(address)
	if r.direct[host] {
		return r.near
	}
	return r.far
}

func (r *table) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	r.mu.Lock()
	r.dials = append(r.dials, address)
	r.mu.Unlock()
	return r.DialerFor(network, address).DialContext(ctx, network, address)
}

func (r *table) dialed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.dials...)
}

// askedPolicy is noRebound, recording each address it is asked about at
// dial time.
type askedPolicy struct {
	mu    sync.Mutex
	asked []netip.Addr
}

func (p *askedPolicy) policy(ctx context.Context, r *Request) error {
	if r.DialedIP.IsValid() {
		p.mu.Lock()
		p.asked = append(p.asked, r.DialedIP)
		p.mu.Unlock()
	}
	return noRebound(ctx, r)
}

func (p *askedPolicy) dialTime() []netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]netip.Addr(nil), p.asked...)
}

func TestGuardDialerNames(t *testing.T) {
	echo := sockstest.Echo(t)
	port := strconv.Itoa(echo.Port)
	zone := map[string]netip.Addr{
		"near.sockstap.test":   allowedIP,
		"rebind.sockstap.test": deniedIP,
		"onion.sockstap.test":  allowedIP,
	}
	ctx := withRequest(request("127.0.0.1:5000", "near.sockstap.test:"+port))

	t.Run("forwarded", func(t *testing.T) {
		var p askedPolicy
		// The upstream's network, where rebind.sockstap.test is the
		// echo's host.
		upstream := map[string]netip.Addr{"rebind.sockstap.test": allowedIP, "onion.sockstap.test": allowedIP}
		d := forwarder{&zoneDialer{zone: upstream}, map[string]bool{"rebind.sockstap.test": true, "onion.sockstap.test": true}}
		g := GuardDialer(d, p.policy)
		for _, name := range []string{"rebind.sockstap.test", "onion.sockstap.test"} {
			c, err := g.DialContext(ctx, "tcp", name+":"+port)
			require.NoError(t, err, name)
			c.Close()
		}
		assert.Equal(t, []string{"rebind.sockstap.test:" + port, "onion.sockstap.test:" + port}, d.dialed(),
			"the names, as given: the upstream resolves them")
		assert.Empty(t, p.dialTime(), "and judges them; no address is checked here")
	})

	t.Run("not forwarded", func(t *testing.T) {
		var p askedPolicy
		d := forwarder{&zoneDialer{zone: zone}, map[string]bool{"onion.sockstap.test": true}}
		g := GuardDialer(d, p.policy)
		_, err := g.DialContext(ctx, "tcp", "rebind.sockstap.test:"+port)
		dn, ok := errors.AsType[*Denial](err)
		require.True(t, ok, "a name the dialer does not forward is resolved and checked: %v", err)
		assert.Equal(t, "rebound", dn.Reason)
		c, err := g.DialContext(ctx, "tcp", "near.sockstap.test:"+port)
		require.NoError(t, err)
		c.Close()
		assert.Equal(t, []string{"127.0.0.1:" + port}, d.dialed(), "given the checked address only")
		assert.Equal(t, []netip.Addr{deniedIP, allowedIP}, p.dialTime())
	})

	t.Run("an address is checked, forwarder or not", func(t *testing.T) {
		d := forwarder{&zoneDialer{zone: zone}, map[string]bool{"onion.sockstap.test": true}}
		_, err := GuardDialer(d, noRebound).DialContext(ctx, "tcp", net.JoinHostPort(deniedIP.String(), port))
		_, ok := errors.AsType[*Denial](err)
		assert.True(t, ok, "%v", err)
		assert.Empty(t, d.dialed())
	})

	t.Run("no request", func(t *testing.T) {
		d := forwarder{&zoneDialer{zone: zone}, map[string]bool{"onion.sockstap.test": true}}
		_, err := GuardDialer(d, noRebound).DialContext(context.Background(), "tcp", "onion.sockstap.test:"+port)
		assert.ErrorIs(t, err, ErrNoRequest, "a forwarded name needs a request all the same")
		assert.Empty(t, d.dialed())
	})

	t.Run("routed", func(t *testing.T) {
		near := &zoneDialer{zone: zone}
		far := forwarder{&zoneDialer{zone: zone}, map[string]bool{"onion.sockstap.test": true}}
		r := &table{near: near, far: far, direct: map[string]bool{"near.sockstap.test": true, "rebind.sockstap.test": true}}
		g := GuardDialer(r, noRebound)

		c, err := g.DialContext(ctx, "tcp", "near.sockstap.test:"+port)
		require.NoError(t, err)
		c.Close()
		_, err = g.DialContext(ctx, "tcp", "rebind.sockstap.test:"+port)
		_, ok := errors.AsType[*Denial](err)
		assert.True(t, ok, "a name routed directly is resolved and checked: %v", err)
		c, err = g.DialContext(ctx, "tcp", "onion.sockstap.test:"+port)
		require.NoError(t, err)
		c.Close()
		c, err = g.DialContext(ctx, "tcp", echo.String())
		require.NoError(t, err)
		c.Close()

		assert.Equal(t, []string{"127.0.0.1:" + port}, near.dialed(),
			"the direct name's checked address went the name's way, not routed again by the address")
		assert.Equal(t, []string{"onion.sockstap.test:" + port, echo.String()}, far.dialed(),
			"the forwarded name went to the upstream as a name; the address went the address's way")
		assert.Equal(t, []string{echo.String()}, r.dialed(), "an address is dialed through the table")
	})
}

// upstreamPeer is a SOCKS server of our own, relaying through a
// *net.Dialer whose resolver knows zone: the upstream proxy of a listener
// under test, which knows names the listener's host does not. Its logs
// tell what it was asked to connect to.
func upstreamPeer(t *testing.T, zone map[string]netip.Addr) *world {
	resolver := sockstest.Resolver(t, func(name string) ([]netip.Addr, bool) {
		ip, ok := zone[name]
		return []netip.Addr{ip}, ok
	})
	return newWorld(t, &Config{Dialer: &net.Dialer{Resolver: resolver}})
}

// relayed connects through w to target, checks that the relay echoes, and
// closes it.
func relayed(t *testing.T, w *world, target string) {
	t.Helper()
	c, _, err := w.connect5(target)
	require.NoError(t, err, target)
	sockstest.Echoes(t, c, "through "+target)
	c.Close()
}

// refused checks that w refuses target as the policy's "rebound".
func refused(t *testing.T, w *world, target string) {
	t.Helper()
	c, _, err := w.connect5(target)
	re, ok := errors.AsType[*socks5.ReplyError](err)
	require.True(t, ok, "%s: %v", target, err)
	assert.Equal(t, socks5.NotAllowed, re.Reply, target)
	c.Close()
	rec := w.logs.Wait(t, func(m map[string]string) bool { return m["decision"] == "deny" && m["target"] == target })
	assert.Equal(t, "rebound", rec["reason"])
}

// peerTargets are the targets of the relays peer served.
func peerTargets(peer *world) []string {
	var targets []string
	for _, m := range peer.logs.All() {
		if m["decision"] == "relay" {
			targets = append(targets, m["target"])
		}
	}
	return targets
}

// A listener with a Policy relays through an upstream SOCKS proxy: a
// socks5h upstream is sent the name, which only it can resolve; a socks5
// one, the address the listener resolved (with the dialer's resolver) and
// checked; a dialer.Router, each name by its route.
func TestRelayNamesUpstream(t *testing.T) {
	echo := sockstest.Echo(t)
	port := strconv.Itoa(echo.Port)
	// Only the upstream knows onion.sockstap.test; only the listener's
	// side knows the others.
	peer := upstreamPeer(t, map[string]netip.Addr{"onion.sockstap.test": allowedIP})
	local := sockstest.Resolver(t, func(name string) ([]netip.Addr, bool) {
		switch name {
		case "near.sockstap.test", "ok.corp.sockstap.test":
			return []netip.Addr{allowedIP}, true
		case "rebind.sockstap.test", "bad.corp.sockstap.test":
			return []netip.Addr{deniedIP}, true
		}
		return nil, false
	})
	onion := "onion.sockstap.test:" + port

	t.Run("socks5h", func(t *testing.T) {
		d, err := dialer.Parse("socks5h://" + peer.l.Addr().String())
		require.NoError(t, err)
		d.Resolver = local
		var p askedPolicy
		w := newWorld(t, &Config{Dialer: d, Policy: p.policy})
		relayed(t, w, onion)
		peer.logs.Wait(t, func(m map[string]string) bool { return m["decision"] == "relay" && m["target"] == onion })
		assert.Empty(t, p.dialTime(), "the name is the upstream's to resolve and judge")
	})

	t.Run("socks5", func(t *testing.T) {
		before := len(peerTargets(peer))
		d, err := dialer.Parse("socks5://" + peer.l.Addr().String())
		require.NoError(t, err)
		d.Resolver = local
		w := newWorld(t, &Config{Dialer: d, Policy: noRebound})
		relayed(t, w, "near.sockstap.test:"+port)
		refused(t, w, "rebind.sockstap.test:"+port)
		peer.logs.WaitN(t, before+1, sockstest.Key("decision", "relay"))
		assert.Equal(t, []string{echo.String()}, peerTargets(peer)[before:],
			"the upstream was sent the address resolved and checked here, and never the denied one")
	})

	t.Run("router", func(t *testing.T) {
		before := len(peerTargets(peer))
		up, err := dialer.Parse("socks5h://" + peer.l.Addr().String())
		require.NoError(t, err)
		corp, err := dialer.ParseHosts(".corp.sockstap.test")
		require.NoError(t, err)
		direct := &zoneDialer{zone: map[string]netip.Addr{"ok.corp.sockstap.test": allowedIP, "bad.corp.sockstap.test": deniedIP}}
		r := &dialer.Router{Routes: []dialer.Route{{Dests: corp}}, Peers: []proxy.ContextDialer{up}, Direct: direct}
		w := newWorld(t, &Config{Dialer: r, Policy: noRebound})
		relayed(t, w, "ok.corp.sockstap.test:"+port)
		refused(t, w, "bad.corp.sockstap.test:"+port)
		relayed(t, w, onion)
		assert.Equal(t, []string{echo.String()}, direct.dialed(),
			"the direct route's name was resolved, checked, and dialed directly as the address")
		peer.logs.WaitN(t, before+1, sockstest.Key("decision", "relay"))
		assert.Equal(t, []string{onion}, peerTargets(peer)[before:], "the peer's route's name went to it as a name")
	})
}

// A wrapper of the program's around a *net.Dialer (counting its dials,
// say) is no *net.Dialer and forwards no name: it is given the address
// the listener resolved and checked, and a name that resolves to a denied
// address never reaches it.
func TestRelayWrapperGuarded(t *testing.T) {
	echo := sockstest.Echo(t)
	d := &countingDialer{Dialer: &net.Dialer{}}
	w := newWorld(t, &Config{Dialer: d, Policy: noLoopback})
	target := "localhost:" + strconv.Itoa(echo.Port) // in /etc/hosts: a loopback address
	c, _, err := w.connect5(target)
	re, ok := errors.AsType[*socks5.ReplyError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, socks5.NotAllowed, re.Reply)
	c.Close()
	rec := w.logs.Wait(t, sockstest.Key("decision", "deny"))
	assert.Equal(t, "loopback", rec["reason"])
	assert.Zero(t, d.dials.Load(), "the wrapper was never asked to dial")
}

// countingDialer is a careless wrapper: a *net.Dialer inside, counting
// its dials.
type countingDialer struct {
	*net.Dialer
	dials atomic.Int64
}

func (d *countingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d.dials.Add(1)
	return d.Dialer.DialContext(ctx, network, address)
}

// noLoopback denies loopback addresses, which only a name can reach when
// the request arrives.
var noLoopback = Rules{
	{Allow: false, Dests: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}, Reason: "loopback"},
	{Allow: true},
}.Policy
