package listener

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// Tests of the listener under careless wrappers: net.Conn says RemoteAddr
// and LocalAddr return the address "if known", so a wrapper may return
// nil; and a wrapper's own methods may panic. No path may take the
// program down: each goroutine recovers, logs, and closes only its own
// connection.

// nilAddrListener hands out connections whose RemoteAddr and LocalAddr
// are nil, and whose Read panics when it reads panicPayload.
type nilAddrListener struct{ net.Listener }

func (l nilAddrListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &nilAddrConn{c.(*net.TCPConn)}, nil
}

type nilAddrConn struct{ *net.TCPConn }

func (*nilAddrConn) RemoteAddr() net.Addr { return nil }
func (*nilAddrConn) LocalAddr() net.Addr  { return nil }

// panicPayload, read by a nilAddrConn, makes its Read panic.
const panicPayload = "make the wrapper panic"

func (c *nilAddrConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	if strings.Contains(string(p[:n]), panicPayload) {
		panic("wrapper bug")
	}
	return n, err
}

// WriteTo copies through Read, where the embedded connection's would
// splice past it.
func (c *nilAddrConn) WriteTo(w io.Writer) (int64, error) {
	return io.Copy(w, struct{ io.Reader }{c})
}

// nilAddrDialer dials TCP and wraps the connection as a nilAddrConn.
type nilAddrDialer struct{}

func (nilAddrDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return &nilAddrConn{c.(*net.TCPConn)}, nil
}

func allowAll(context.Context, *Request) error { return nil }

// nilWorld is a world whose connections have nil addresses.
func nilWorld(t *testing.T, cfg *Config) *world {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return wrapWorld(t, nilAddrListener{ln}, cfg)
}

// noPanics fails the test when the listener logged a panic.
func noPanics(t *testing.T, w *world) {
	t.Helper()
	for _, r := range w.logs.All() {
		assert.NotEqual(t, "socks panic", r["msg"], "record %v", r)
	}
}

func TestNilAddresses(t *testing.T) {
	echo := sockstest.Echo(t)

	t.Run("sniff: a plain connection", func(t *testing.T) {
		w := nilWorld(t, nil)
		c := w.dial()
		_, err := c.Write([]byte("plain"))
		require.NoError(t, err)
		a := w.accept()
		got := make([]byte, 5)
		_, err = io.ReadFull(a, got)
		require.NoError(t, err)
		assert.Equal(t, "plain", string(got))
		noPanics(t, w)
	})

	t.Run("sniff: over the handshake limit", func(t *testing.T) {
		w := nilWorld(t, &Config{MaxHandshakes: 1})
		for range 2 {
			c := w.dial()
			_, err := c.Write([]byte{5}) // stalls in its handshake
			require.NoError(t, err)
		}
		rec := w.logs.Wait(t, sockstest.Key("decision", "drop"))
		assert.Equal(t, "unknown", rec["client"])
		noPanics(t, w)
	})

	t.Run("deny", func(t *testing.T) {
		// The default policy serves loopback only: a client of no known
		// address is not on loopback.
		w := nilWorld(t, &Config{Dialer: &net.Dialer{}})
		_, _, err := w.connect5(echo.String())
		re, ok := errors.AsType[*socks5.ReplyError](err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, socks5.NotAllowed, re.Reply)
		rec := w.logs.Wait(t, sockstest.Key("decision", "deny"))
		assert.Equal(t, "unknown", rec["client"])
		noPanics(t, w)
	})

	t.Run("tap", func(t *testing.T) {
		w := nilWorld(t, &Config{Policy: allowAll})
		c, bound, err := w.connect5("192.0.2.1:80")
		require.NoError(t, err, "the client is answered")
		assert.True(t, bound.IsZero() || bound.IP.IsUnspecified(), "no local address to tell: %v", bound)
		_, err = c.Write([]byte("tapped"))
		require.NoError(t, err)
		a := w.accept()
		assert.Nil(t, RequestOf(a).Client)
		got := make([]byte, 6)
		_, err = io.ReadFull(a, got)
		require.NoError(t, err)
		assert.Equal(t, "tapped", string(got))
		w.logs.Wait(t, sockstest.Key("decision", "tap"))
		noPanics(t, w)
	})

	t.Run("relay end", func(t *testing.T) {
		// Both ends have nil addresses: the client's, and the target's as
		// the dialer returns it.
		w := nilWorld(t, &Config{Dialer: nilAddrDialer{}, Policy: allowAll})
		c, _, err := w.connect5(echo.String())
		require.NoError(t, err)
		_, err = c.Write([]byte("ping"))
		require.NoError(t, err)
		got := make([]byte, 4)
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
		require.NoError(t, c.CloseWrite())
		waitClosed(t, c)
		rec := w.logs.Wait(t, sockstest.Key("decision", "relay"))
		assert.Equal(t, "4", rec["bytes_up"])
		noPanics(t, w)
	})

	for _, stop := range []struct {
		name string
		stop func(*Listener) error
	}{
		{"Close", (*Listener).Close},
		{"Shutdown", func(l *Listener) error {
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // the relays are cut at once
			return l.Shutdown(ctx)
		}},
	} {
		t.Run(stop.name, func(t *testing.T) {
			w := nilWorld(t, &Config{Dialer: &net.Dialer{}, Policy: allowAll})
			c, _, err := w.connect5(echo.String())
			require.NoError(t, err)
			plain := w.dial()
			_, err = plain.Write([]byte{5, 1}) // a handshake under way
			require.NoError(t, err)
			require.Eventually(t, func() bool { return w.l.handshakeCount() == 1 }, sockstest.Timeout, time.Millisecond)
			stop.stop(w.l)
			waitClosed(t, c)
			waitClosed(t, plain)
			w.logs.Wait(t, sockstest.Key("decision", "relay"))
			noPanics(t, w)
		})
	}
}

// TestPanicOnRelayGoroutine has a wrapper panic on one of a relay's own
// goroutines: the relay's two connections are closed and the session
// logged, while another relay goes on.
func TestPanicOnRelayGoroutine(t *testing.T) {
	echo := sockstest.Echo(t)
	w := nilWorld(t, &Config{Dialer: &net.Dialer{}, Policy: allowAll})
	other, _, err := w.connect5(echo.String())
	require.NoError(t, err)

	c, _, err := w.connect5(echo.String())
	require.NoError(t, err)
	_, err = io.WriteString(c, panicPayload)
	require.NoError(t, err)
	waitClosed(t, c)
	rec := w.logs.Wait(t, sockstest.Key("msg", "socks panic"))
	assert.Equal(t, "wrapper bug", rec["cause"])
	w.logs.Wait(t, func(r map[string]string) bool {
		return r["decision"] == "relay" && strings.Contains(r["cause"], "wrapper bug")
	})
	require.Eventually(t, func() bool { return w.l.connCount() == 1 }, sockstest.Timeout, time.Millisecond,
		"the panicked relay's connection is let go")

	_, err = other.Write([]byte("still here"))
	require.NoError(t, err)
	got := make([]byte, 10)
	_, err = io.ReadFull(other, got)
	require.NoError(t, err)
	assert.Equal(t, "still here", string(got))
}
