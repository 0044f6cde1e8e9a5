package dialer_test

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
)

// What a Dialer and a Router tell listener.GuardDialer about names.

var (
	_ listener.NameForwarder = (*dialer.Dialer)(nil)
	_ listener.Resolver      = (*dialer.Dialer)(nil)
	_ listener.NameForwarder = (*dialer.Router)(nil)
	_ listener.RouteDialer   = (*dialer.Router)(nil)
)

func mustParse(t *testing.T, u string) *dialer.Dialer {
	t.Helper()
	d, err := dialer.Parse(u)
	require.NoError(t, err)
	return d
}

func TestDialerForwardsName(t *testing.T) {
	for _, tc := range []struct {
		d    *dialer.Dialer
		want bool
	}{
		{&dialer.Dialer{Scheme: dialer.SOCKS4}, false},
		{&dialer.Dialer{Scheme: dialer.SOCKS4A}, true},
		{&dialer.Dialer{Scheme: dialer.SOCKS5}, false},
		{&dialer.Dialer{Scheme: dialer.SOCKS5H}, true},
		{&dialer.Dialer{}, true}, // the empty Scheme is socks5h
		{&dialer.Dialer{Scheme: "socks6"}, false},
		// A chain: the last hop names the target.
		{dialer.Chain(mustParse(t, "socks5h://127.0.0.1:1"), mustParse(t, "socks5://127.0.0.1:2")), false},
		{dialer.Chain(mustParse(t, "socks5://127.0.0.1:1"), mustParse(t, "socks4a://127.0.0.1:2")), true},
	} {
		assert.Equal(t, tc.want, tc.d.ForwardsName("tcp", "example.com:80"), "%s %q", tc.d, tc.d.Scheme)
	}
}

func TestDialerLookupNetIP(t *testing.T) {
	ip := netip.MustParseAddr("192.0.2.7")
	d := mustParse(t, "socks5://127.0.0.1:1")
	d.Resolver = fakeResolver(t, map[string][]netip.Addr{"near.sockstap.test": {ip}})
	ips, err := d.LookupNetIP(context.Background(), "ip4", "near.sockstap.test")
	require.NoError(t, err)
	assert.Equal(t, []netip.Addr{ip}, ips, "the Dialer's own resolver, as it resolves targets")
	_, err = d.LookupNetIP(context.Background(), "ip", "far.sockstap.test")
	assert.Error(t, err)
}

func TestRouterForwardsName(t *testing.T) {
	h := mustParse(t, "socks5h://127.0.0.1:1")
	h2 := mustParse(t, "socks4a://127.0.0.1:2")
	local := mustParse(t, "socks5://127.0.0.1:3")
	inner := &dialer.Router{
		Routes: []dialer.Route{{Dests: dialer.MustParseHosts("inner-direct.example")}},
		Peers:  []proxy.ContextDialer{h},
	}
	r := &dialer.Router{
		Routes: []dialer.Route{
			{Dests: dialer.MustParseHosts(".direct.example,10.0.0.0/8")},
			{Dests: dialer.MustParseHosts("names.example"), Peers: []proxy.ContextDialer{h, h2}},
			{Dests: dialer.MustParseHosts("mixed.example"), Peers: []proxy.ContextDialer{h, local}},
			{Dests: dialer.MustParseHosts("local.example"), Peers: []proxy.ContextDialer{local}},
			{Dests: dialer.MustParseHosts("inner.example,inner-direct.example"), Peers: []proxy.ContextDialer{inner}},
		},
		Peers: []proxy.ContextDialer{h},
	}
	for _, tc := range []struct {
		address string
		want    bool
	}{
		{"www.direct.example:80", false},   // directly: resolved here
		{"names.example:80", true},         // every peer forwards names
		{"mixed.example:80", false},        // a peer that resolves on the client may serve it
		{"local.example:80", false},        // socks5
		{"inner.example:80", true},         // a Router peer, whose route forwards it
		{"inner-direct.example:80", false}, // a Router peer that dials it directly
		{"elsewhere.example:80", true},     // the default peers
		{"10.1.2.3:80", false},             // an address routed directly
		{"www.direct.example.:80", false},  // a trailing dot, still the direct route
		{"names.example:8080", true},       // any port
		{"no-port.example", true},          // not host:port: the default peers
	} {
		assert.Equal(t, tc.want, r.ForwardsName("tcp", tc.address), tc.address)
	}

	assert.False(t, (&dialer.Router{}).ForwardsName("tcp", "example.com:80"), "the zero Router dials directly")
	assert.True(t, (&dialer.Router{Direct: h}).ForwardsName("tcp", "example.com:80"),
		"a direct route answers as its Direct does")
}

func TestRouterDialerFor(t *testing.T) {
	h := mustParse(t, "socks5h://127.0.0.1:1")
	direct := &countingDialer{}
	r := &dialer.Router{
		Routes: []dialer.Route{{Dests: dialer.MustParseHosts(".direct.example")}},
		Peers:  []proxy.ContextDialer{h},
		Direct: direct,
	}
	assert.Same(t, direct, r.DialerFor("tcp", "www.direct.example:80"), "a direct route: Direct")
	d, ok := (&dialer.Router{}).DialerFor("tcp", "www.direct.example:80").(*net.Dialer)
	require.True(t, ok, "no Direct: a net.Dialer")
	assert.Equal(t, net.Dialer{}, *d)

	// A route's peers: the dialer tries them as the Router does, and the
	// Router remembers with it which peer is down.
	echo := sockstest.Echo(t)
	up := startProxy(t, listener.Config{})
	attempts := &countingDialer{}
	down := &dialer.Dialer{Proxy: closedAddr(t), Forward: attempts}
	r = &dialer.Router{Peers: []proxy.ContextDialer{down, &dialer.Dialer{Proxy: up.addr}}}
	leg := r.DialerFor("tcp", echo.String())
	c, err := leg.DialContext(context.Background(), "tcp", echo.String())
	require.NoError(t, err, "the second peer, once the first could not be reached")
	echoCheck(t, c)
	c.Close()
	assert.EqualValues(t, 1, attempts.n.Load())
	c, err = r.DialContext(context.Background(), "tcp", echo.String())
	require.NoError(t, err)
	c.Close()
	assert.EqualValues(t, 1, attempts.n.Load(), "the Router knew the first peer was down: it tried it last")
	assert.Contains(t, leg.(interface{ String() string }).String(), up.addr)
}
