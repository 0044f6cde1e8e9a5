package main

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

func TestParseRoute(t *testing.T) {
	for _, tc := range []struct {
		in, hosts, via string // hosts "": an error
	}{
		{"example.com=socks5h://127.0.0.1:9050", "example.com", "socks5h://127.0.0.1:9050"},
		{"10.0.0.0/8,.corp.example=socks5://u:p@127.0.0.1:1080", "10.0.0.0/8, corp.example", "socks5://u:p@127.0.0.1:1080"},
		{"=exact.example=socks4a://127.0.0.1", "=exact.example", "socks4a://127.0.0.1"},
		{"[::1]:8080=direct", "[::1]:8080", "direct"},
		{"*:443=socks5h://[::1]:1080", "*:443", "socks5h://[::1]:1080"},
		{"a.example=b=socks5h://127.0.0.1:1", "", ""}, // "a.example=b" is no list
		{"socks5h://127.0.0.1:1080", "", ""},
		{"=socks5h://127.0.0.1:1080", "", ""},
		{"example.com=", "", ""},
		{"example.com=directly", "", ""},
		{"example.com=http://127.0.0.1:3128", "", ""},
		{"300.1.1.1=direct", "", ""},
		{"", "", ""},
	} {
		hosts, via, err := parseRoute(tc.in)
		if tc.hosts == "" {
			assert.Error(t, err, "%q", tc.in)
			continue
		}
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.hosts, hosts.String(), "%q", tc.in)
		assert.Equal(t, tc.via, via, "%q", tc.in)
	}
}

func TestUpstreamRouter(t *testing.T) {
	d, err := upstream(nil, nil, nil)
	require.NoError(t, err)
	assert.Nil(t, d, "no peers, no routes: the gateway dials, and guards, itself")

	d, err = upstream([]string{"socks5h://127.0.0.1:1", "socks5h://127.0.0.1:2"}, []string{
		"a.example=socks5h://127.0.0.1:3",
		"10.0.0.0/8=direct",
		"a.example=socks5h://127.0.0.1:4",
	}, nil)
	require.NoError(t, err)
	r, ok := d.(*dialer.Router)
	require.True(t, ok, "%T", d)
	names := func(ds []proxy.ContextDialer) string {
		var s []string
		for _, p := range ds {
			s = append(s, p.(*dialer.Dialer).String())
		}
		return strings.Join(s, " ")
	}
	assert.Equal(t, "socks5h://127.0.0.1:1 socks5h://127.0.0.1:2", names(r.Peers))
	require.Len(t, r.Routes, 2, "the two a.example routes are one, its peers in turn")
	assert.Equal(t, "a.example", r.Routes[0].Dests.String())
	assert.Equal(t, "socks5h://127.0.0.1:3 socks5h://127.0.0.1:4", names(r.Routes[0].Peers))
	assert.Equal(t, "10.0.0.0/8", r.Routes[1].Dests.String())
	assert.Empty(t, r.Routes[1].Peers, "direct")
	assert.Nil(t, r.Direct, "the gateway's guard checks the direct dials")
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"example.com=socks5h://127.0.0.1:9050", "=a.example=direct", "[::1]:8080=direct",
		"10.0.0.0/8,.corp=socks5://u:p@h:1", "a=b=c://d", "=://", "x=direct=direct",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hosts, via, err := parseRoute(s)
		if err != nil {
			return
		}
		if via != direct {
			if _, err := dialer.Parse(via); err != nil {
				t.Fatalf("%q: the URL %q does not parse: %v", s, via, err)
			}
		}
		if _, err := dialer.ParseHosts(hosts.String()); err != nil {
			t.Fatalf("%q: hosts %q do not read back: %v", s, hosts.String(), err)
		}
	})
}

// The gateway's Router behind listener.GuardDialer, as the gateway and
// its SOCKS relays dial through it: a name routed directly is resolved
// and checked against the policy (localhost, refused to a client from
// elsewhere), then dialed directly, along its name's route; a name
// routed to a socks5h peer goes to it as a name, which only the peer
// can resolve.
func TestUpstreamGuarded(t *testing.T) {
	echo := sockstest.Echo(t)
	port := strconv.Itoa(echo.Port)
	peerLn, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	var mu sync.Mutex
	var peerTargets []string
	peerCfg := &listener.Config{
		Dialer: &net.Dialer{Resolver: sockstest.Resolver(t, func(name string) ([]netip.Addr, bool) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, name == "onion.sockstap.test"
		})},
		OnRecord: func(r *listener.Record) {
			mu.Lock()
			defer mu.Unlock()
			if r.Request != nil {
				peerTargets = append(peerTargets, r.Request.Target.String())
			}
		},
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- listener.Serve(ctx, peerLn, peerCfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-served:
			assert.NoError(t, err)
		case <-time.After(sockstest.Timeout):
			t.Error("the peer did not stop")
		}
	})

	d, err := upstream([]string{"socks5h://" + peerLn.Addr().String()}, []string{"localhost=direct"}, nil)
	require.NoError(t, err)
	g := listener.GuardDialer(d, listener.DefaultPolicy)
	far := listener.NewContext(context.Background(), &listener.Request{
		Version: 5, Command: socks5.CmdConnect,
		Client: &net.TCPAddr{IP: net.ParseIP("198.51.100.7"), Port: 40000}, User: "alice", Authenticated: true,
	})
	near := listener.NewContext(context.Background(), &listener.Request{
		Version: 5, Command: socks5.CmdConnect, Client: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000},
	})

	_, err = g.DialContext(far, "tcp", "localhost:"+port)
	_, denied := errors.AsType[*listener.Denial](err)
	assert.True(t, denied, "localhost is the gateway's own host, refused to a client from elsewhere: %v", err)

	c, err := g.DialContext(near, "tcp", "localhost:"+port)
	require.NoError(t, err, "a client on loopback may")
	assert.Equal(t, echo.String(), c.RemoteAddr().String(), "dialed directly, as localhost's route says")
	sockstest.Echoes(t, c, "direct")
	c.Close()

	c, err = g.DialContext(far, "tcp", "onion.sockstap.test:"+port)
	require.NoError(t, err, "the peer resolves the name")
	assert.Equal(t, peerLn.Addr().String(), c.RemoteAddr().String(), "through the peer")
	sockstest.Echoes(t, c, "through the peer")
	c.Close()

	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(peerTargets) > 0
	}, sockstest.Timeout, time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"onion.sockstap.test:" + port}, peerTargets, "the peer was sent the name, and nothing else")
}
