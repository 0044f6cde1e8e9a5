package dialer_test

import (
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

// TestChain dials through three of our listeners, each relaying to the
// next, with a different scheme per hop, and proves the path by what each
// hop logged: the first saw a request for the second, the second for the
// third, the third for the target.
func TestChain(t *testing.T) {
	echo := sockstest.Echo(t)
	creds := socks5.NewCredentials(map[string]string{"alice": "secret"})
	hop1 := startProxy(t, listener.Config{Methods: []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}}})
	hop2 := startProxy(t, listener.Config{Dialer: &mapDialer{names: map[string]string{"hop3.sockstap.test": "127.0.0.1"}}})
	hop3 := startProxy(t, listener.Config{Dialer: &mapDialer{names: map[string]string{"echo.sockstap.test": "127.0.0.1"}}})
	port := func(addr string) string {
		_, p, err := net.SplitHostPort(addr)
		require.NoError(t, err)
		return p
	}

	// hop1 (socks5) resolves hop2's name on the client; hop2 (socks4a)
	// sends hop3's name to its proxy; hop3 (socks5h) sends the target's.
	d1 := &dialer.Dialer{Proxy: hop1.addr, Scheme: dialer.SOCKS5, Username: "alice", Password: "secret",
		Resolver: fakeResolver(t, map[string][]netip.Addr{"hop2.sockstap.test": {loopback4}})}
	d2 := &dialer.Dialer{Proxy: "hop2.sockstap.test:" + port(hop2.addr), Scheme: dialer.SOCKS4A, Username: "bob"}
	d3 := &dialer.Dialer{Proxy: "hop3.sockstap.test:" + port(hop3.addr), Scheme: dialer.SOCKS5H}
	chain := dialer.Chain(d1, d2, d3)
	assert.Nil(t, d2.Forward, "Chain changes none of its hops")
	assert.Nil(t, d3.Forward, "Chain changes none of its hops")

	target := "echo.sockstap.test:" + strconv.Itoa(echo.Port)
	c, err := chain.Dial("tcp", target)
	require.NoError(t, err)
	defer c.Close()
	echoCheck(t, c)
	assert.Equal(t, hop1.addr, c.RemoteAddr().String(), "the connection is the one to the first hop")
	c.Close()

	r1 := hop1.logs.Wait(t, sockstest.Key("decision", "relay"))
	assert.Equal(t, "127.0.0.1:"+port(hop2.addr), r1["target"])
	assert.Equal(t, "socks5", r1["version"])
	assert.Equal(t, "alice", r1["user"])
	r2 := hop2.logs.Wait(t, sockstest.Key("decision", "relay"))
	assert.Equal(t, "hop3.sockstap.test:"+port(hop3.addr), r2["target"])
	assert.Equal(t, "socks4a", r2["version"])
	assert.Equal(t, "bob", r2["user"])
	r3 := hop3.logs.Wait(t, sockstest.Key("decision", "relay"))
	assert.Equal(t, target, r3["target"])
	assert.Equal(t, "socks5", r3["version"])

	t.Run("the last hop refuses the target", func(t *testing.T) {
		_, err := chain.Dial("tcp", "nowhere.sockstap.test:80")
		oe := assertOpError(t, err, "tcp", d3.Proxy, "nowhere.sockstap.test:80")
		var re *socks5.ReplyError
		require.ErrorAs(t, oe.Err, &re)
		assert.Equal(t, socks5.HostUnreachable, re.Reply)
	})

	t.Run("a middle hop cannot reach the next", func(t *testing.T) {
		down := &dialer.Dialer{Proxy: closedAddr(t), Scheme: dialer.SOCKS5H}
		_, err := dialer.Chain(d1, down, d3).Dial("tcp", target)
		oe := assertOpError(t, err, "tcp", d3.Proxy, target)
		inner, ok := errors.AsType[*net.OpError](oe.Err)
		require.True(t, ok, "the hop before the last says why: %v", err)
		assert.Equal(t, down.Proxy, inner.Source.String())
		var re *socks5.ReplyError
		require.ErrorAs(t, err, &re, "hop1 answered that it could not connect to the next hop")
		assert.Equal(t, socks5.ConnectionRefused, re.Reply)
	})
}

// TestListenerThroughDialer relays a listener's clients through an upstream
// SOCKS server: the listener's Config.Dialer is a Dialer, and gets the raw
// TCP connection, which the relay copies without a wrapper in the way.
func TestListenerThroughDialer(t *testing.T) {
	echo := sockstest.Echo(t)
	upstream := startProxy(t, listener.Config{})
	gateway := startProxy(t, listener.Config{Dialer: &dialer.Dialer{Proxy: upstream.addr, Scheme: dialer.SOCKS5}})

	c, err := (&dialer.Dialer{Proxy: gateway.addr, Scheme: dialer.SOCKS4}).Dial("tcp", echo.String())
	require.NoError(t, err)
	defer c.Close()
	echoCheck(t, c)
	c.Close()
	assert.Equal(t, "relay", gateway.record(t, c)["decision"])
	rec := upstream.logs.Wait(t, sockstest.Key("target", echo.String()))
	assert.Equal(t, "socks5", rec["version"])
	assert.Equal(t, "relay", rec["decision"])
}
