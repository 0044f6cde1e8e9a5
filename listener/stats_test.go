package listener

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// awaitStats waits until the listener's Stats satisfy cond, checking with
// a growing pause, bounded in count and time, and returns them.
func awaitStats(t *testing.T, l *Listener, what string, cond func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(sockstest.Timeout)
	delay := 100 * time.Microsecond
	var s Stats
	for i := 0; i < 500 && time.Now().Before(deadline); i++ {
		if s = l.Stats(); cond(s) {
			return s
		}
		<-time.After(delay)
		delay = min(2*delay, 20*time.Millisecond)
	}
	t.Fatalf("stats never showed %s: %+v", what, s)
	return s
}

func TestStats(t *testing.T) {
	slow := &Config{SniffTimeout: time.Minute, HandshakeTimeout: time.Minute}
	t.Run("Sniffing", func(t *testing.T) {
		w := newWorld(t, slow)
		c := w.dial()
		awaitStats(t, w.l, "a connection sniffed", func(s Stats) bool {
			return s == Stats{Conns: 1, Sniffing: 1, Accepted: 1}
		})
		c.Close()
		awaitStats(t, w.l, "nothing held", func(s Stats) bool { return s.Conns == 0 })
	})
	t.Run("Handshake", func(t *testing.T) {
		w := newWorld(t, slow)
		c := w.dial()
		_, err := c.Write([]byte{5}) // and the rest of the greeting never comes
		require.NoError(t, err)
		awaitStats(t, w.l, "a handshake", func(s Stats) bool {
			return s == Stats{Conns: 1, Handshakes: 1, Accepted: 1}
		})
	})
	t.Run("Relay", func(t *testing.T) {
		echo := sockstest.Echo(t)
		w := newWorld(t, &Config{Dialer: &net.Dialer{}})
		c, _, err := w.connect5(echo.String())
		require.NoError(t, err)
		awaitStats(t, w.l, "a relay", func(s Stats) bool {
			return s == Stats{Conns: 1, Relays: 1, Accepted: 1}
		})
		require.NoError(t, c.CloseWrite())
		io.Copy(io.Discard, c)
		awaitStats(t, w.l, "the relay's end", func(s Stats) bool { return s.Conns == 0 && s.Relays == 0 })
	})
	t.Run("Association", func(t *testing.T) {
		w, _ := fakeWorld(t, nil) // UDP ASSOCIATE: a fake that holds its socket
		c := w.dial()
		_, _, err := socks5.ClientHandshake(context.Background(), c,
			socks5.Request{Command: socks5.CmdUDPAssociate, Addr: socks5.Addr{IP: netip.MustParseAddr("0.0.0.0")}})
		require.NoError(t, err)
		awaitStats(t, w.l, "an association", func(s Stats) bool {
			return s == Stats{Conns: 1, Associations: 1, Accepted: 1}
		})
	})
	t.Run("HandingAndTapped", func(t *testing.T) {
		w := bareWorld(t, listen(t), nil) // every CONNECT tapped; nobody accepts yet
		plain := w.dial()
		_, err := plain.Write([]byte("GET / HTTP/1.1\r\n"))
		require.NoError(t, err)
		c := w.dial()
		_, _, err = socks5.ClientHandshake(context.Background(), c,
			socks5.Request{Command: socks5.CmdConnect, Addr: socks5.Addr{Name: "tapped.test", Port: 80}})
		require.NoError(t, err)
		awaitStats(t, w.l, "two connections for Accept", func(s Stats) bool {
			return s == Stats{Conns: 2, Handing: 2, Accepted: 2}
		})
		for range 2 {
			a, err := w.l.Accept()
			require.NoError(t, err)
			defer a.Close()
		}
		awaitStats(t, w.l, "both taken", func(s Stats) bool {
			return s == Stats{Accepted: 2, Tapped: 1}
		})
	})
	t.Run("Refused", func(t *testing.T) {
		w := newWorld(t, &Config{SniffTimeout: time.Minute, MaxConns: 1})
		w.dial()
		awaitStats(t, w.l, "one held", func(s Stats) bool { return s.Conns == 1 })
		over := w.dial()
		_, err := over.Read(make([]byte, 1))
		assert.Error(t, err, "the connection over MaxConns is closed")
		awaitStats(t, w.l, "one refused", func(s Stats) bool {
			return s == Stats{Conns: 1, Sniffing: 1, Accepted: 2, Refused: 1}
		})
	})
}
