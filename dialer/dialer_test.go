package dialer_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks4"
	"github.com/sockstap/sockstap/socks5"
)

var (
	_ proxy.Dialer        = (*dialer.Dialer)(nil)
	_ proxy.ContextDialer = (*dialer.Dialer)(nil)
)

// TestConnect dials an echo server through our listener with each scheme,
// with and without credentials, by a made-up name that the client's
// resolver and the proxy's dialer both know, and checks what the proxy
// received: a name for socks4a and socks5h, the address the client
// resolved for socks4 and socks5.
func TestConnect(t *testing.T) {
	echo := sockstest.Echo(t)
	port := strconv.Itoa(echo.Port)
	resolver := fakeResolver(t, map[string][]netip.Addr{"echo.sockstap.test": {loopback4}})
	proxyDialer := &mapDialer{names: map[string]string{"echo.sockstap.test": "127.0.0.1"}}
	creds := socks5.NewCredentials(map[string]string{"alice": "secret"})

	open := startProxy(t, listener.Config{Dialer: proxyDialer})
	authed := startProxy(t, listener.Config{
		Dialer:  proxyDialer,
		Methods: []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}},
	})

	tests := []struct {
		name        string
		scheme      dialer.Scheme
		user, pass  string
		proxy       *proxyServer
		wantVersion string
		wantTarget  string
		wantUser    string
	}{
		{"socks4", dialer.SOCKS4, "", "", open, "socks4", "127.0.0.1:" + port, ""},
		{"socks4 with user id", dialer.SOCKS4, "bob", "", open, "socks4", "127.0.0.1:" + port, "bob"},
		{"socks4a", dialer.SOCKS4A, "", "", open, "socks4a", "echo.sockstap.test:" + port, ""},
		{"socks4a with user id", dialer.SOCKS4A, "bob", "", open, "socks4a", "echo.sockstap.test:" + port, "bob"},
		{"socks5", dialer.SOCKS5, "", "", open, "socks5", "127.0.0.1:" + port, ""},
		{"socks5 with password", dialer.SOCKS5, "alice", "secret", authed, "socks5", "127.0.0.1:" + port, "alice"},
		{"socks5h", dialer.SOCKS5H, "", "", open, "socks5", "echo.sockstap.test:" + port, ""},
		{"socks5h with password", dialer.SOCKS5H, "alice", "secret", authed, "socks5", "echo.sockstap.test:" + port, "alice"},
		{"empty scheme is socks5h", "", "", "", open, "socks5", "echo.sockstap.test:" + port, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &dialer.Dialer{Proxy: tt.proxy.addr, Scheme: tt.scheme,
				Username: tt.user, Password: tt.pass, Resolver: resolver}
			c, err := d.DialContext(context.Background(), "tcp", "echo.sockstap.test:"+port)
			require.NoError(t, err)
			defer c.Close()
			echoCheck(t, c)
			assert.IsType(t, &net.TCPConn{}, c, "the raw connection to the proxy")
			assert.Equal(t, tt.proxy.addr, c.RemoteAddr().String())
			c.Close()

			rec := tt.proxy.record(t, c)
			assert.Equal(t, tt.wantTarget, rec["target"])
			assert.Equal(t, tt.wantVersion, rec["version"])
			assert.Equal(t, tt.wantUser, rec["user"])
			assert.Equal(t, "relay", rec["decision"])
		})
	}
}

// TestProxyName checks that a proxy given by name is found with the
// Dialer's Resolver when the Dialer connects to it itself.
func TestProxyName(t *testing.T) {
	echo := sockstest.Echo(t)
	p := startProxy(t, listener.Config{})
	_, port, err := net.SplitHostPort(p.addr)
	require.NoError(t, err)
	d := &dialer.Dialer{
		Proxy:    net.JoinHostPort("proxy.sockstap.test", port),
		Resolver: fakeResolver(t, map[string][]netip.Addr{"proxy.sockstap.test": {loopback4}}),
	}
	c, err := d.Dial("tcp", echo.String())
	require.NoError(t, err)
	defer c.Close()
	echoCheck(t, c)
	assert.Equal(t, p.addr, c.RemoteAddr().String())

	d.Resolver = fakeResolver(t, nil)
	_, err = d.Dial("tcp", echo.String())
	_, ok := errors.AsType[*net.DNSError](err)
	assert.True(t, ok, "the proxy's name is not found: %v", err)
}

func TestDialIPv6(t *testing.T) {
	echo6 := sockstest.EchoOn(t, "[::1]:0")
	port := strconv.Itoa(echo6.Port)
	p := startProxy(t, listener.Config{})
	resolver := fakeResolver(t, map[string][]netip.Addr{
		"v6only.sockstap.test": {loopback6},
		"dual.sockstap.test":   {loopback6, loopback4},
	})

	t.Run("socks5 carries an IPv6 address", func(t *testing.T) {
		d := &dialer.Dialer{Proxy: p.addr, Scheme: dialer.SOCKS5}
		c, err := d.Dial("tcp", "[::1]:"+port)
		require.NoError(t, err)
		defer c.Close()
		echoCheck(t, c)
		c.Close()
		assert.Equal(t, "[::1]:"+port, p.record(t, c)["target"])
	})
	t.Run("socks5 resolves a name to IPv6", func(t *testing.T) {
		d := &dialer.Dialer{Proxy: p.addr, Scheme: dialer.SOCKS5, Resolver: resolver}
		c, err := d.Dial("tcp6", "v6only.sockstap.test:"+port)
		require.NoError(t, err)
		defer c.Close()
		echoCheck(t, c)
		c.Close()
		assert.Equal(t, "[::1]:"+port, p.record(t, c)["target"])
	})
	t.Run("socks4 picks the IPv4 address of a name that has both", func(t *testing.T) {
		echo4 := sockstest.Echo(t)
		d := &dialer.Dialer{Proxy: p.addr, Scheme: dialer.SOCKS4, Resolver: resolver}
		c, err := d.Dial("tcp", "dual.sockstap.test:"+strconv.Itoa(echo4.Port))
		require.NoError(t, err)
		defer c.Close()
		echoCheck(t, c)
		c.Close()
		assert.Equal(t, "127.0.0.1:"+strconv.Itoa(echo4.Port), p.record(t, c)["target"])
	})

	before := p.accepts.Load()
	refused := []struct {
		name    string
		scheme  dialer.Scheme
		network string
		address string
	}{
		{"socks4, IPv6 address", dialer.SOCKS4, "tcp", "[::1]:" + port},
		{"socks4a, IPv6 address", dialer.SOCKS4A, "tcp", "[::1]:" + port},
		{"socks4, name with only IPv6", dialer.SOCKS4, "tcp", "v6only.sockstap.test:" + port},
		{"socks4, tcp6", dialer.SOCKS4, "tcp6", "dual.sockstap.test:" + port},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			d := &dialer.Dialer{Proxy: p.addr, Scheme: tt.scheme, Resolver: resolver}
			c, err := d.Dial(tt.network, tt.address)
			require.Error(t, err)
			assert.Nil(t, c)
			assert.ErrorIs(t, err, dialer.ErrIPv4Only)
			assert.Contains(t, err.Error(), "IPv6")
			assertOpError(t, err, tt.network, p.addr, tt.address)
		})
	}
	assert.Equal(t, before, p.accepts.Load(), "an address SOCKS4 cannot carry is refused before the proxy is contacted")
}

// assertOpError checks the *net.OpError a failed dial returns.
func assertOpError(t testing.TB, err error, network, proxyAddr, target string) *net.OpError {
	t.Helper()
	oe, ok := errors.AsType[*net.OpError](err)
	require.True(t, ok, "want a *net.OpError, got %T: %v", err, err)
	assert.Equal(t, "connect", oe.Op)
	assert.Equal(t, network, oe.Net)
	if assert.NotNil(t, oe.Source) {
		assert.Equal(t, proxyAddr, oe.Source.String())
	}
	if assert.NotNil(t, oe.Addr) {
		assert.Equal(t, target, oe.Addr.String())
	}
	return oe
}

// TestErrors checks the errors a dial returns: *net.OpErrors wrapping the
// reply code or the cause, so that errors.As tells them apart.
func TestErrors(t *testing.T) {
	echo := sockstest.Echo(t)
	refusedTarget := closedAddr(t)
	creds := socks5.NewCredentials(map[string]string{"alice": "secret"})
	open := startProxy(t, listener.Config{})
	denying := startProxy(t, listener.Config{Policy: func(context.Context, *listener.Request) error {
		return listener.Deny("not today")
	}})
	authed := startProxy(t, listener.Config{Methods: []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}}})
	down := closedAddr(t)
	nowhere := fakeResolver(t, nil)

	tests := []struct {
		name    string
		d       dialer.Dialer
		network string
		target  string
		check   func(t *testing.T, err error)
	}{
		{"socks5: target refused", dialer.Dialer{Proxy: open.addr, Scheme: dialer.SOCKS5}, "tcp", refusedTarget,
			func(t *testing.T, err error) {
				re, ok := errors.AsType[*socks5.ReplyError](err)
				require.True(t, ok)
				assert.Equal(t, socks5.ConnectionRefused, re.Reply)
			}},
		{"socks5: not allowed", dialer.Dialer{Proxy: denying.addr, Scheme: dialer.SOCKS5H}, "tcp", echo.String(),
			func(t *testing.T, err error) {
				re, ok := errors.AsType[*socks5.ReplyError](err)
				require.True(t, ok)
				assert.Equal(t, socks5.NotAllowed, re.Reply)
			}},
		{"socks4: rejected", dialer.Dialer{Proxy: open.addr, Scheme: dialer.SOCKS4}, "tcp4", refusedTarget,
			func(t *testing.T, err error) {
				re, ok := errors.AsType[*socks4.ReplyError](err)
				require.True(t, ok)
				assert.Equal(t, socks4.Rejected, re.Reply)
			}},
		{"socks4a: not allowed", dialer.Dialer{Proxy: denying.addr, Scheme: dialer.SOCKS4A}, "tcp", echo.String(),
			func(t *testing.T, err error) {
				re, ok := errors.AsType[*socks4.ReplyError](err)
				require.True(t, ok)
				assert.Equal(t, socks4.Rejected, re.Reply)
			}},
		{"wrong password", dialer.Dialer{Proxy: authed.addr, Scheme: dialer.SOCKS5, Username: "alice", Password: "guess"}, "tcp", echo.String(),
			func(t *testing.T, err error) { assert.ErrorIs(t, err, socks5.ErrAuthFailed) }},
		{"no credentials", dialer.Dialer{Proxy: authed.addr, Scheme: dialer.SOCKS5}, "tcp", echo.String(),
			func(t *testing.T, err error) { assert.ErrorIs(t, err, socks5.ErrNoAcceptableMethod) }},
		{"proxy down", dialer.Dialer{Proxy: down, Scheme: dialer.SOCKS5}, "tcp", echo.String(),
			func(t *testing.T, err error) {
				assert.ErrorIs(t, err, errConnRefused)
				_, isReply := errors.AsType[*socks5.ReplyError](err)
				assert.False(t, isReply)
			}},
		{"unknown network", dialer.Dialer{Proxy: open.addr}, "sctp", echo.String(),
			func(t *testing.T, err error) {
				_, ok := errors.AsType[net.UnknownNetworkError](err)
				assert.True(t, ok, "%v", err)
			}},
		{"username without password", dialer.Dialer{Proxy: open.addr, Scheme: dialer.SOCKS5, Username: "alice"}, "tcp", echo.String(),
			func(t *testing.T, err error) { assert.ErrorContains(t, err, "1 to 255 bytes") }},
		{"password without username", dialer.Dialer{Proxy: open.addr, Scheme: dialer.SOCKS5H, Password: "secret"}, "tcp", echo.String(),
			func(t *testing.T, err error) { assert.ErrorContains(t, err, "without a username") }},
		{"unknown scheme", dialer.Dialer{Proxy: open.addr, Scheme: "socks6"}, "tcp", echo.String(),
			func(t *testing.T, err error) { assert.ErrorContains(t, err, "socks6") }},
		{"name not found by the client", dialer.Dialer{Proxy: open.addr, Scheme: dialer.SOCKS5, Resolver: nowhere}, "tcp", "nowhere.sockstap.test:80",
			func(t *testing.T, err error) {
				de, ok := errors.AsType[*net.DNSError](err)
				require.True(t, ok, "%v", err)
				assert.True(t, de.IsNotFound)
			}},
		{"tcp4 to an IPv6 address", dialer.Dialer{Proxy: open.addr, Scheme: dialer.SOCKS5}, "tcp4", "[::1]:80",
			func(t *testing.T, err error) {
				ae, ok := errors.AsType[*net.AddrError](err)
				require.True(t, ok, "%v", err)
				assert.Equal(t, "no suitable address found", ae.Err)
			}},
		{"tcp6 to an IPv4 address", dialer.Dialer{Proxy: open.addr, Scheme: dialer.SOCKS5H}, "tcp6", "127.0.0.1:80",
			func(t *testing.T, err error) {
				_, ok := errors.AsType[*net.AddrError](err)
				assert.True(t, ok, "%v", err)
			}},
	}
	// These fail before the proxy is contacted.
	early := map[string]bool{
		"username without password": true, "password without username": true,
		"unknown network": true, "unknown scheme": true, "name not found by the client": true,
		"tcp4 to an IPv6 address": true, "tcp6 to an IPv4 address": true,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := open.accepts.Load()
			c, err := tt.d.DialContext(context.Background(), tt.network, tt.target)
			require.Error(t, err)
			assert.Nil(t, c)
			assertOpError(t, err, tt.network, tt.d.Proxy, tt.target)
			tt.check(t, err)
			if early[tt.name] {
				assert.Equal(t, before, open.accepts.Load(), "refused before the proxy is contacted")
			}
		})
	}

	t.Run("address without a port", func(t *testing.T) {
		d := &dialer.Dialer{Proxy: open.addr}
		_, err := d.Dial("tcp", "example.com")
		oe, ok := errors.AsType[*net.OpError](err)
		require.True(t, ok)
		assert.Nil(t, oe.Addr)
		assert.ErrorContains(t, err, "missing port")
	})
	t.Run("refused and not allowed are told apart", func(t *testing.T) {
		_, errRefused := (&dialer.Dialer{Proxy: open.addr}).Dial("tcp", refusedTarget)
		_, errDenied := (&dialer.Dialer{Proxy: denying.addr}).Dial("tcp", echo.String())
		var re *socks5.ReplyError
		require.ErrorAs(t, errRefused, &re)
		assert.Equal(t, socks5.ConnectionRefused, re.Reply)
		require.ErrorAs(t, errDenied, &re)
		assert.Equal(t, socks5.NotAllowed, re.Reply)
	})
}
