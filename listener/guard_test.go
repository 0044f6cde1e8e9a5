package listener

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// Tests of GuardDialer, the dial-time policy check against DNS rebinding:
// a name whose first lookup gives an allowed address and the next a
// denied one.

var (
	allowedIP = netip.MustParseAddr("127.0.0.1")
	deniedIP  = netip.MustParseAddr("127.0.0.2")
)

// noRebound is a policy that denies deniedIP at dial time.
var noRebound = Rules{
	{Allow: false, Dests: []netip.Prefix{netip.PrefixFrom(deniedIP, 32)}, Reason: "rebound"},
	{Allow: true},
}.Policy

// rebinding is a resolver whose nth lookup (from 0) gives answers[n], or
// the last of them.
type rebinding struct {
	mu      sync.Mutex
	answers [][]netip.Addr
	lookups int
}

func (r *rebinding) LookupNetIP(_ context.Context, _, _ string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.answers[min(r.lookups, len(r.answers)-1)]
	r.lookups++
	return a, nil
}

// recordingDialer dials TCP, records the addresses it is given, and
// resolves through its rebinding resolver: a dialer other than a
// *net.Dialer that comes with its resolver.
type recordingDialer struct {
	*rebinding
	mu    sync.Mutex
	dials []string
}

func (d *recordingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	d.mu.Lock()
	d.dials = append(d.dials, address)
	d.mu.Unlock()
	var nd net.Dialer
	return nd.DialContext(ctx, network, address)
}

func (d *recordingDialer) dialed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.dials...)
}

func withRequest(r *Request) context.Context {
	return NewContext(context.Background(), r)
}

func TestGuardDialerOtherDialer(t *testing.T) {
	echo := sockstest.Echo(t)
	port := strconv.Itoa(echo.Port)
	r := request("127.0.0.1:5000", "rebind.sockstap.test:"+port)

	t.Run("rebinding", func(t *testing.T) {
		d := &recordingDialer{rebinding: &rebinding{answers: [][]netip.Addr{{allowedIP}, {deniedIP}}}}
		g := GuardDialer(d, noRebound)
		c, err := g.DialContext(withRequest(r), "tcp", "rebind.sockstap.test:"+port)
		require.NoError(t, err, "the first lookup gives an allowed address")
		c.Close()
		_, err = g.DialContext(withRequest(r), "tcp", "rebind.sockstap.test:"+port)
		dn, ok := errors.AsType[*Denial](err)
		require.True(t, ok, "the second, a denied one: %v", err)
		assert.Equal(t, "rebound", dn.Reason)
		assert.Equal(t, []string{"127.0.0.1:" + port}, d.dialed(), "the dialer is given the checked address only, never the name")
	})

	t.Run("the first allowed address that answers", func(t *testing.T) {
		closed, err := net.Listen("tcp", "127.0.0.3:0")
		require.NoError(t, err)
		closed.Close() // 127.0.0.3 refuses
		d := &recordingDialer{rebinding: &rebinding{answers: [][]netip.Addr{{deniedIP, netip.MustParseAddr("127.0.0.3"), allowedIP}}}}
		g := GuardDialer(d, noRebound)
		c, err := g.DialContext(withRequest(r), "tcp", "many.sockstap.test:"+port)
		require.NoError(t, err)
		c.Close()
		assert.Equal(t, []string{"127.0.0.3:" + port, "127.0.0.1:" + port}, d.dialed())
	})

	t.Run("an IP address", func(t *testing.T) {
		d := &recordingDialer{rebinding: &rebinding{answers: [][]netip.Addr{{allowedIP}}}}
		g := GuardDialer(d, noRebound)
		_, err := g.DialContext(withRequest(r), "tcp", net.JoinHostPort(deniedIP.String(), port))
		_, ok := errors.AsType[*Denial](err)
		assert.True(t, ok, "%v", err)
		assert.Empty(t, d.dialed())
		assert.Zero(t, d.lookups, "an address is not looked up")
	})

	t.Run("no request", func(t *testing.T) {
		d := &recordingDialer{rebinding: &rebinding{answers: [][]netip.Addr{{allowedIP}}}}
		g := GuardDialer(d, noRebound)
		_, err := g.DialContext(context.Background(), "tcp", "127.0.0.1:"+port)
		assert.ErrorIs(t, err, ErrNoRequest)
		assert.Empty(t, d.dialed())
	})
}

func TestGuardDialerNetDialer(t *testing.T) {
	echo := sockstest.Echo(t)
	port := strconv.Itoa(echo.Port)
	r := request("127.0.0.1:5000", "rebind.sockstap.test:"+port)

	t.Run("rebinding", func(t *testing.T) {
		// The name's first lookup gives the allowed address, the next
		// ones the denied one.
		dns := &rebinding{answers: [][]netip.Addr{{allowedIP}, {deniedIP}}}
		resolver := sockstest.Resolver(t, func(string) ([]netip.Addr, bool) {
			a, _ := dns.LookupNetIP(context.Background(), "ip4", "")
			return a, true
		})
		g := GuardDialer(&net.Dialer{Resolver: resolver}, noRebound)
		_, ok := g.(*net.Dialer)
		require.True(t, ok, "a *net.Dialer stays one")
		c, err := g.DialContext(withRequest(r), "tcp4", "rebind.sockstap.test:"+port)
		require.NoError(t, err, "the first lookup gives an allowed address")
		assert.Equal(t, echo.String(), c.RemoteAddr().String())
		c.Close()
		_, err = g.DialContext(withRequest(r), "tcp4", "rebind.sockstap.test:"+port)
		dn, ok := errors.AsType[*Denial](err)
		require.True(t, ok, "the second, a denied one: %v", err)
		assert.Equal(t, "rebound", dn.Reason)
	})

	t.Run("the dialer's own Control still runs", func(t *testing.T) {
		var controlled []string
		nd := &net.Dialer{ControlContext: func(_ context.Context, _, address string, _ syscall.RawConn) error {
			controlled = append(controlled, address)
			return nil
		}}
		g := GuardDialer(nd, noRebound)
		c, err := g.DialContext(withRequest(r), "tcp", echo.String())
		require.NoError(t, err)
		c.Close()
		_, err = g.DialContext(withRequest(r), "tcp", net.JoinHostPort(deniedIP.String(), port))
		require.Error(t, err)
		assert.Equal(t, []string{echo.String()}, controlled, "after the check, and only for what it allows")
		assert.Nil(t, nd.Control, "the dialer given is left as it was")
	})

	t.Run("no request", func(t *testing.T) {
		g := GuardDialer(nil, nil)
		_, err := g.DialContext(context.Background(), "tcp", echo.String())
		assert.ErrorIs(t, err, ErrNoRequest)
	})

	t.Run("nil policy is DefaultPolicy", func(t *testing.T) {
		g := GuardDialer(nil, nil)
		far := request("192.0.2.9:5000", echo.String())
		far.Authenticated = true
		_, err := g.DialContext(withRequest(far), "tcp", echo.String())
		dn, ok := errors.AsType[*Denial](err)
		require.True(t, ok, "%v", err)
		assert.Contains(t, dn.Reason, "only for clients on loopback")
		c, err := g.DialContext(withRequest(r), "tcp", echo.String())
		require.NoError(t, err, "a client on loopback reaches loopback")
		c.Close()
	})
}

// TestRelayGuardsOtherDialers checks the listener's own relays through a
// dialer that is not a *net.Dialer: the policy is asked about the address
// the listener resolved, and the dialer is given that address.
func TestRelayGuardsOtherDialers(t *testing.T) {
	echo := sockstest.Echo(t)
	d := &recordingDialer{rebinding: &rebinding{answers: [][]netip.Addr{{allowedIP}, {deniedIP}}}}
	w := newWorld(t, &Config{Dialer: d, Policy: noRebound})
	target := "rebind.sockstap.test:" + strconv.Itoa(echo.Port)
	c, _, err := w.connect5(target)
	require.NoError(t, err)
	c.Close()
	_, _, err = w.connect5(target)
	re, ok := errors.AsType[*socks5.ReplyError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, socks5.NotAllowed, re.Reply)
	rec := w.logs.Wait(t, sockstest.Key("decision", "deny"))
	assert.Equal(t, "rebound", rec["reason"])
	assert.Equal(t, []string{echo.String()}, d.dialed())
}
