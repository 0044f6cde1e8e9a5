package dialer_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

// TestInteropDanteBind has danted BIND for us: the peer connects to the
// address danted listens on, Accept returns its connection with its
// address, and data flows both ways.
func TestInteropDanteBind(t *testing.T) {
	t.Parallel()
	server := interop.Dante(t, interop.Options{})
	for _, c := range []struct {
		scheme dialer.Scheme
		peer   string // the address told to danted
	}{
		{dialer.SOCKS5, "127.0.0.1:0"},
		{dialer.SOCKS5H, "localhost:0"},
		{dialer.SOCKS4, "127.0.0.1:0"},
	} {
		t.Run(string(c.scheme)+" "+c.peer, func(t *testing.T) {
			l := listen(t, &dialer.Dialer{Proxy: server.String(), Scheme: c.scheme}, c.peer)
			bound := l.Addr().(*net.TCPAddr)
			assert.Equal(t, "127.0.0.1", bound.IP.String())
			assert.NotZero(t, bound.Port)

			peer, err := net.DialTimeout("tcp", bound.String(), wait)
			require.NoError(t, err)
			defer peer.Close()
			require.NoError(t, l.SetDeadline(time.Now().Add(wait)))
			conn, err := l.Accept()
			require.NoError(t, err)
			defer conn.Close()
			assert.Equal(t, peer.LocalAddr().String(), conn.RemoteAddr().String(), "the peer's address")

			require.NoError(t, conn.SetDeadline(time.Now().Add(wait)))
			require.NoError(t, peer.SetDeadline(time.Now().Add(wait)))
			_, err = peer.Write([]byte("from the peer"))
			require.NoError(t, err)
			got := make([]byte, len("from the peer"))
			_, err = io.ReadFull(conn, got)
			require.NoError(t, err)
			assert.Equal(t, "from the peer", string(got))
			_, err = conn.Write([]byte("to the peer"))
			require.NoError(t, err)
			got = got[:len("to the peer")]
			_, err = io.ReadFull(peer, got)
			require.NoError(t, err)
			assert.Equal(t, "to the peer", string(got))
		})
	}
}

// TestInteropDanteUDP sends datagrams through danted's UDP relay: to an
// IPv4 address, and to a name that danted resolves (socks5h).
func TestInteropDanteUDP(t *testing.T) {
	t.Parallel()
	server := interop.Dante(t, interop.Options{})
	echo := sockstest.EchoUDP(t)
	for _, c := range []struct {
		scheme dialer.Scheme
		to     net.Addr
	}{
		{dialer.SOCKS5, echo},
		{dialer.SOCKS5H, echo},
		{dialer.SOCKS5H, socks5.Addr{Name: "localhost", Port: uint16(echo.Port)}},
	} {
		t.Run(string(c.scheme)+" "+c.to.String(), func(t *testing.T) {
			pc := listenPacket(t, &dialer.Dialer{Proxy: server.String(), Scheme: c.scheme})
			assert.Equal(t, "127.0.0.1", pc.RelayAddr().(*net.UDPAddr).IP.String())
			for i := range 3 {
				msg := "datagram " + itoa(i) + " through danted"
				got, from := roundTrip(t, pc, c.to, msg)
				assert.Equal(t, msg, got)
				assert.Equal(t, echo.String(), from.String(), "the real sender")
			}
		})
	}
	t.Run("DialContext udp", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		c, err := (&dialer.Dialer{Proxy: server.String()}).DialContext(ctx, "udp", echo.String())
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
		_, err = c.Write([]byte("connected"))
		require.NoError(t, err)
		buf := make([]byte, 64)
		n, err := c.Read(buf)
		require.NoError(t, err)
		assert.Equal(t, "connected", string(buf[:n]))
	})
}

// TestInteropDanteMore checks BIND through a chain whose last hop is
// danted, and what a RESOLVE to danted, which does not know the command,
// returns.
func TestInteropDanteMore(t *testing.T) {
	t.Parallel()
	server := interop.Dante(t, interop.Options{})
	first := startProxy(t, listener.Config{})
	t.Run("BIND through a chain", func(t *testing.T) {
		d := dialer.Chain(&dialer.Dialer{Proxy: first.addr}, &dialer.Dialer{Proxy: server.String(), Scheme: dialer.SOCKS5})
		l := listen(t, d, "127.0.0.1:0")
		peer, err := net.DialTimeout("tcp", l.Addr().String(), wait)
		require.NoError(t, err)
		defer peer.Close()
		require.NoError(t, l.SetDeadline(time.Now().Add(wait)))
		c, err := l.Accept()
		require.NoError(t, err)
		defer c.Close()
		assert.Equal(t, peer.LocalAddr().String(), c.RemoteAddr().String())
		echoTo(t, peer, c)
		c.Close()
		peer.Close()
		// The control connection rode the first hop, to danted.
		first.logs.Wait(t, sockstest.Key("target", server.String()))
	})
	t.Run("RESOLVE", func(t *testing.T) {
		// danted closes the connection without a reply.
		_, err := (&dialer.Dialer{Proxy: server.String()}).Resolve(context.Background(), "localhost")
		assertOp(t, err, "resolve")
		assert.ErrorIs(t, err, io.EOF)
	})
}

// echoTo sends a line from a to b and back, and checks both arrive.
func echoTo(t *testing.T, a, b net.Conn) {
	t.Helper()
	require.NoError(t, a.SetDeadline(time.Now().Add(wait)))
	require.NoError(t, b.SetDeadline(time.Now().Add(wait)))
	for _, p := range [][2]net.Conn{{a, b}, {b, a}} {
		msg := "from " + p[0].LocalAddr().String()
		_, err := p[0].Write([]byte(msg))
		require.NoError(t, err)
		got := make([]byte, len(msg))
		_, err = io.ReadFull(p[1], got)
		require.NoError(t, err)
		assert.Equal(t, msg, string(got))
	}
}
