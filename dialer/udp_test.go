package dialer_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

// listenPacket makes an association through d, closed by the test's
// cleanup, with a deadline on every read and write.
func listenPacket(t testing.TB, d *dialer.Dialer) *dialer.PacketConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	pc, err := d.ListenPacket(ctx, "udp", "")
	require.NoError(t, err)
	t.Cleanup(func() { pc.Close() })
	require.NoError(t, pc.SetDeadline(time.Now().Add(wait)))
	return pc.(*dialer.PacketConn)
}

// roundTrip sends msg to to through pc and returns what comes back and
// from where.
func roundTrip(t testing.TB, pc net.PacketConn, to net.Addr, msg string) (string, net.Addr) {
	t.Helper()
	n, err := pc.WriteTo([]byte(msg), to)
	require.NoError(t, err)
	assert.Equal(t, len(msg), n)
	buf := make([]byte, 2048)
	n, from, err := pc.ReadFrom(buf)
	require.NoError(t, err)
	return string(buf[:n]), from
}

func TestListenPacket(t *testing.T) {
	proxy := sockstest.StartUDPProxy(t)
	echo := sockstest.EchoUDP(t)
	resolver := fakeResolver(t, map[string][]netip.Addr{"echo.sockstap.test": {loopback4}})

	t.Run("to an address", func(t *testing.T) {
		pc := listenPacket(t, &dialer.Dialer{Proxy: proxy.Addr})
		got, from := roundTrip(t, pc, echo, "to an address")
		assert.Equal(t, "to an address", got)
		assert.Equal(t, echo.String(), from.String(), "the real sender")
		_, isUDP := from.(*net.UDPAddr)
		assert.True(t, isUDP, "%T", from)
		assert.Equal(t, "127.0.0.1", pc.RelayAddr().(*net.UDPAddr).IP.String())
		assert.NotEqual(t, pc.LocalAddr().String(), pc.RelayAddr().String())
	})
	t.Run("socks5h sends a name to the proxy", func(t *testing.T) {
		pc := listenPacket(t, &dialer.Dialer{Proxy: proxy.Addr, Scheme: dialer.SOCKS5H})
		got, from := roundTrip(t, pc, socks5.Addr{Name: "localhost", Port: uint16(echo.Port)}, "by name")
		assert.Equal(t, "by name", got)
		assert.Equal(t, echo.String(), from.String())
		// The proxy knows no other name: sent as a name, it is dropped.
		_, err := pc.WriteTo([]byte("x"), &socks5.Addr{Name: "echo.sockstap.test", Port: uint16(echo.Port)})
		require.NoError(t, err)
		require.NoError(t, pc.SetReadDeadline(time.Now().Add(50*time.Millisecond)))
		_, _, err = pc.ReadFrom(make([]byte, 10))
		assert.True(t, deadline.IsTimeout(err), "nothing came back: %v", err)
	})
	t.Run("socks5 resolves a name on the client", func(t *testing.T) {
		pc := listenPacket(t, &dialer.Dialer{Proxy: proxy.Addr, Scheme: dialer.SOCKS5, Resolver: resolver})
		got, _ := roundTrip(t, pc, socks5.Addr{Name: "echo.sockstap.test", Port: uint16(echo.Port)}, "resolved here")
		assert.Equal(t, "resolved here", got)
	})
	t.Run("the write deadline bounds resolving a name", func(t *testing.T) {
		stuck := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}}
		pc := listenPacket(t, &dialer.Dialer{Proxy: proxy.Addr, Scheme: dialer.SOCKS5, Resolver: stuck})
		require.NoError(t, pc.SetWriteDeadline(time.Now().Add(20*time.Millisecond)))
		_, err := pc.WriteTo([]byte("x"), socks5.Addr{Name: "stuck.sockstap.test", Port: 7})
		require.Error(t, err)
		assertOp(t, err, "write")
	})
	t.Run("from a given local address", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		pc, err := (&dialer.Dialer{Proxy: proxy.Addr}).ListenPacket(ctx, "udp4", "127.0.0.1:0")
		require.NoError(t, err)
		defer pc.Close()
		require.NoError(t, pc.SetDeadline(time.Now().Add(wait)))
		assert.Equal(t, "127.0.0.1", pc.LocalAddr().(*net.UDPAddr).IP.String())
		got, _ := roundTrip(t, pc, echo, "udp4")
		assert.Equal(t, "udp4", got)
	})
	t.Run("WriteTo takes only addresses it can send to", func(t *testing.T) {
		pc := listenPacket(t, &dialer.Dialer{Proxy: proxy.Addr})
		for _, a := range []net.Addr{nil, (*net.UDPAddr)(nil), (*socks5.Addr)(nil), socks5.Addr{}, &net.TCPAddr{}, &net.UnixAddr{Name: "x"}} {
			n, err := pc.WriteTo([]byte("x"), a)
			assert.Error(t, err, "%#v", a)
			assert.Zero(t, n)
			_, isOp := errors.AsType[*net.OpError](err)
			assert.True(t, isOp, "%T", err)
		}
	})
	t.Run("the deadline bounds ReadFrom", func(t *testing.T) {
		pc := listenPacket(t, &dialer.Dialer{Proxy: proxy.Addr})
		require.NoError(t, pc.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		_, _, err := pc.ReadFrom(make([]byte, 10))
		assert.True(t, deadline.IsTimeout(err), "%v", err)
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "as a socket's")
		require.NoError(t, pc.SetReadDeadline(time.Now().Add(wait)))
		got, _ := roundTrip(t, pc, echo, "after a timeout")
		assert.Equal(t, "after a timeout", got)
	})
	t.Run("the association ends with the control connection", func(t *testing.T) {
		pc := listenPacket(t, &dialer.Dialer{Proxy: proxy.Addr})
		roundTrip(t, pc, echo, "before")
		read := make(chan error, 1)
		go func() {
			_, _, err := pc.ReadFrom(make([]byte, 10))
			read <- err
		}()
		proxy.EndAll()
		err := await(t, read, "ReadFrom to fail")
		assert.ErrorIs(t, err, dialer.ErrAssociationClosed)
		_, isOp := errors.AsType[*net.OpError](err)
		assert.True(t, isOp)
		_, err = pc.WriteTo([]byte("after"), echo)
		assert.ErrorIs(t, err, dialer.ErrAssociationClosed)
		assert.NoError(t, pc.Close())
	})
	t.Run("Close ends reads", func(t *testing.T) {
		pc := listenPacket(t, &dialer.Dialer{Proxy: proxy.Addr})
		read := make(chan error, 1)
		go func() {
			_, _, err := pc.ReadFrom(make([]byte, 10))
			read <- err
		}()
		require.NoError(t, pc.Close())
		assert.ErrorIs(t, await(t, read, "ReadFrom to fail"), net.ErrClosed)
		assert.NoError(t, pc.Close(), "a second Close")
	})
	t.Run("DialContext udp is a connected conn", func(t *testing.T) {
		other := sockstest.EchoUDP(t)
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		c, err := (&dialer.Dialer{Proxy: proxy.Addr}).DialContext(ctx, "udp", echo.String())
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
		assert.Equal(t, echo.String(), c.RemoteAddr().String())
		// A datagram from elsewhere, sent on the same association, is not
		// read.
		_, err = c.(net.PacketConn).WriteTo([]byte("not this"), other)
		require.NoError(t, err)
		_, err = c.Write([]byte("this"))
		require.NoError(t, err)
		buf := make([]byte, 100)
		n, err := c.Read(buf)
		require.NoError(t, err)
		assert.Equal(t, "this", string(buf[:n]))
	})
	t.Run("through a chain, the control connection rides the first hop", func(t *testing.T) {
		first := startProxy(t, listener.Config{})
		d := dialer.Chain(&dialer.Dialer{Proxy: first.addr}, &dialer.Dialer{Proxy: proxy.Addr})
		before := proxy.Associations()
		pc := listenPacket(t, d)
		got, _ := roundTrip(t, pc, echo, "chained")
		assert.Equal(t, "chained", got)
		assert.Equal(t, before+1, proxy.Associations())
		pc.Close()
		first.logs.Wait(t, sockstest.Key("target", proxy.Addr))
	})
}

func TestUnsupportedCommands(t *testing.T) {
	p := startFakeProxy(t, nil)
	for _, s := range []dialer.Scheme{dialer.SOCKS4, dialer.SOCKS4A} {
		d := &dialer.Dialer{Proxy: p.addr, Scheme: s}
		ctx := context.Background()
		_, err := d.ListenPacket(ctx, "udp", "")
		assert.ErrorIs(t, err, dialer.ErrUnsupportedCommand)
		assert.ErrorContains(t, err, string(s)+" has no UDP ASSOCIATE command (use socks5 or socks5h)")
		assertOp(t, err, "udp associate")
		_, err = d.DialContext(ctx, "udp", "127.0.0.1:53")
		assert.ErrorIs(t, err, dialer.ErrUnsupportedCommand)
		_, err = d.Resolve(ctx, "example.com")
		assert.ErrorIs(t, err, dialer.ErrUnsupportedCommand)
		assertOp(t, err, "resolve")
		_, err = d.ResolvePTR(ctx, loopback4)
		assert.ErrorIs(t, err, dialer.ErrUnsupportedCommand)
		assertOp(t, err, "resolve ptr")
	}
	select {
	case <-p.got:
		t.Error("the proxy was contacted")
	default:
	}
}

// assertOp checks that err is a *net.OpError whose Op is op.
func assertOp(t testing.TB, err error, op string) {
	t.Helper()
	oe, ok := errors.AsType[*net.OpError](err)
	if assert.True(t, ok, "%T: %v", err, err) {
		assert.Equal(t, op, oe.Op)
	}
}
