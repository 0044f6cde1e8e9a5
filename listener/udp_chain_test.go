package listener

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// Associations whose client, or whose outbound side, is the SOCKS client
// of package dialer: the client's UDP through the listener, and the
// listener's UDP through an upstream SOCKS5 server (sockstest's UDP
// proxy, and danted).

// TestAssociateDialerClient has dialer.PacketConn talk through the
// listener: to an address, and to a name the listener resolves.
func TestAssociateDialerClient(t *testing.T) {
	t.Parallel()
	resolver := sockstest.Resolver(t, func(name string) ([]netip.Addr, bool) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, name == "echo.test"
	})
	w, rec := udpWorld(t, &Config{Resolver: resolver})
	echo := sockstest.EchoUDP(t)
	ctx, cancel := context.WithTimeout(context.Background(), sockstest.Timeout)
	defer cancel()
	pc, err := (&dialer.Dialer{Proxy: w.l.Addr().String()}).ListenPacket(ctx, "udp", "")
	require.NoError(t, err)
	defer pc.Close()
	require.NoError(t, pc.SetDeadline(time.Now().Add(sockstest.Timeout)))
	for _, to := range []net.Addr{echo, socks5.Addr{Name: "echo.test", Port: uint16(echo.Port)}} {
		msg := "to " + to.String()
		_, err := pc.WriteTo([]byte(msg), to)
		require.NoError(t, err)
		buf := make([]byte, 128)
		n, from, err := pc.ReadFrom(buf)
		require.NoError(t, err)
		assert.Equal(t, msg, string(buf[:n]))
		assert.Equal(t, echo.String(), from.String())
	}
	require.NoError(t, pc.Close())
	r := rec.wait(t, decided(DecisionAssociate))
	assert.EqualValues(t, 2, r.DatagramsUp)
	assert.EqualValues(t, 2, r.DatagramsDown)
}

// TestAssociateUpstream sends the listener's datagrams on through an
// upstream SOCKS5 server: Config.UDPListener is a dialer.Dialer. The
// answers come back wrapped twice, and unwrapped once by each hop; the
// client hears the echo server's address as the sender. When the
// upstream ends its association, the listener ends the client's.
func TestAssociateUpstream(t *testing.T) {
	t.Parallel()
	echo := sockstest.EchoUDP(t)
	t.Run("sockstest", func(t *testing.T) {
		t.Parallel()
		upstream := sockstest.StartUDPProxy(t)
		w, rec := udpWorld(t, &Config{UDPListener: &dialer.Dialer{Proxy: upstream.Addr}})
		c := associate(t, w, socks5.Addr{})
		for _, m := range []string{"through", "two", "relays"} {
			c.roundTrip(echo, m)
		}
		assert.Equal(t, 1, upstream.Associations())
		upstream.EndAll()
		waitClosed(t, c.ctrl)
		r := rec.wait(t, decided(DecisionAssociate))
		assert.ErrorIs(t, r.Cause, dialer.ErrAssociationClosed)
		upstream.WaitIdle(t)
	})
	t.Run("danted", func(t *testing.T) {
		t.Parallel()
		upstream := interop.Dante(t, interop.Options{})
		w, rec := udpWorld(t, &Config{UDPListener: &dialer.Dialer{Proxy: upstream.String()}})
		c := associate(t, w, socks5.Addr{})
		for _, m := range []string{"through", "danted"} {
			c.roundTrip(echo, m)
		}
		c.ctrl.Close()
		r := rec.wait(t, decided(DecisionAssociate))
		assert.EqualValues(t, 2, r.DatagramsDown)
	})
}
