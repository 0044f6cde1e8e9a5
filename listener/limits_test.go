package listener

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// Tests of the handshake limits: they shed the stalled, never the fast.

// drainWorld is a world with no dialer (every CONNECT is tapped) whose
// accepted connections are closed at once: a client is served when it is
// told "succeeded". Its SniffTimeout is long: a client of a burst, on a
// loaded machine, may take longer than the default to send its first
// byte, and would be handed to Accept as a plain connection.
func drainWorld(t *testing.T, cfg *Config) *world {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if cfg == nil {
		cfg = &Config{}
	}
	cfg.SniffTimeout = sockstest.Timeout
	w := bareWorld(t, ln, cfg)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := w.l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	t.Cleanup(func() {
		w.l.Close()
		<-done
	})
	return w
}

// drops counts the records of handshakes the limits dropped.
func (w *world) drops() int {
	n := 0
	for _, r := range w.logs.All() {
		if r["decision"] == "drop" {
			n++
		}
	}
	return n
}

// stall opens n connections that each send a handshake's first byte and
// nothing more, one after the other, and returns once the listener has
// seen them all: holding them as handshakes, or dropped.
func (w *world) stall(n int) []*net.TCPConn {
	w.t.Helper()
	held, dropped := w.l.handshakeCount(), w.drops()
	conns := make([]*net.TCPConn, n)
	for i := range conns {
		conns[i] = w.dial()
		_, err := conns[i].Write([]byte{5})
		require.NoError(w.t, err)
	}
	require.Eventually(w.t, func() bool {
		return w.l.handshakeCount()+w.drops() >= held+dropped+n
	}, sockstest.Timeout, time.Millisecond, "the listener sees every stalled connection")
	return conns
}

// burst has n clients, all at once, run a whole SOCKS5 CONNECT handshake
// through w, and returns how many were answered "succeeded".
func (w *world) burst(n int) int {
	var served atomic.Int64
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			c, err := net.Dial("tcp", w.l.Addr().String())
			if err != nil {
				w.t.Logf("burst: %v", err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(sockstest.Timeout))
			a := socks5.Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 80}
			_, _, err = socks5.ClientHandshake(context.Background(), c, socks5.Request{Command: socks5.CmdConnect, Addr: a})
			if err != nil {
				w.t.Logf("burst: %v", err)
				return
			}
			served.Add(1)
		})
	}
	close(start)
	wg.Wait()
	return int(served.Load())
}

// TestBurstBesideStalledHandshakes is issue 7's fault 2: one local user
// holds many stalled handshakes while another, from the same address,
// makes a burst of complete ones. Every one of the burst is served.
func TestBurstBesideStalledHandshakes(t *testing.T) {
	const stalled, fast = 200, 300
	w := drainWorld(t, nil) // the default limits
	held := w.stall(stalled)
	served := w.burst(fast)
	t.Logf("burst of %d complete handshakes from 127.0.0.1 beside %d stalled ones: %d/%d served, %d stalled held",
		fast, len(held), served, fast, w.l.handshakeCount())
	assert.Equal(t, fast, served, "served of the burst")
}

// TestStalledHandshakesCannotStarve: a client that holds more stalled
// handshakes than MaxHandshakes allows at once loses its own, not others'
// chance: the listener holds at most MaxHandshakes, and serves a burst
// that comes after, as large as the limit (a larger one is more than the
// listener holds at once, stalled or not).
func TestStalledHandshakesCannotStarve(t *testing.T) {
	const limit, stalled, fast = 50, 150, 50
	w := drainWorld(t, &Config{MaxHandshakes: limit})
	w.stall(stalled)
	assert.Equal(t, limit, w.l.handshakeCount(), "handshakes held")
	served := w.burst(fast)
	t.Logf("MaxHandshakes %d, %d stalled: %d/%d of a burst served", limit, stalled, served, fast)
	assert.Equal(t, fast, served, "served of the burst")
	assert.LessOrEqual(t, w.l.handshakeCount(), limit)
}

// heldPorts are the client ports of the handshakes the listener holds.
func (l *Listener) heldPorts() map[int]bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	ports := map[int]bool{}
	for h := l.hs.head; h != nil; h = h.next {
		ports[h.conn.RemoteAddr().(*net.TCPAddr).Port] = true
	}
	return ports
}

func port(c *net.TCPConn) int { return c.LocalAddr().(*net.TCPAddr).Port }

// TestShedTheLongestSilent checks whom the overall limit sheds: the
// handshake that has been silent longest, so never one that makes
// progress while a stalled one is held.
func TestShedTheLongestSilent(t *testing.T) {
	w := drainWorld(t, &Config{MaxHandshakes: 3})
	a := w.stall(1)[0]
	b := w.stall(1)[0]
	c := w.stall(1)[0]
	d := w.stall(1)[0] // four: a, the longest silent, is shed
	assert.Equal(t, map[int]bool{port(b): true, port(c): true, port(d): true}, w.l.heldPorts())
	waitClosed(t, a)

	// c makes progress: the next of its greeting's bytes.
	_, err := c.Write([]byte{1})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return w.l.progressOf(port(c)) > w.l.progressOf(port(d)) },
		sockstest.Timeout, time.Millisecond, "the listener reads c's byte")
	e := w.stall(1)[0] // sheds b, silent since it began
	f := w.stall(1)[0] // sheds d, silent for longer than c
	assert.Equal(t, map[int]bool{port(c): true, port(e): true, port(f): true}, w.l.heldPorts())
	waitClosed(t, b)
	waitClosed(t, d)

	// c goes on, and is served.
	_, err = c.Write([]byte{0}) // the method it offers
	require.NoError(t, err)
	got := make([]byte, 2)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	assert.Equal(t, []byte{5, 0}, got)
	rec := w.logs.Wait(t, sockstest.Key("decision", "drop"))
	assert.Contains(t, rec["reason"], "stalled")
}

// progressOf is when the handshake from the client port p last read a
// byte.
func (l *Listener) progressOf(p int) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	for h := l.hs.head; h != nil; h = h.next {
		if h.conn.RemoteAddr().(*net.TCPAddr).Port == p {
			return h.progress.Load()
		}
	}
	return -1
}

// TestPerClientCountsSlowHandshakes checks MaxHandshakesPerClient: a
// handshake counts once it is slow (here at once: a grace of a
// nanosecond), and a client over the limit loses its longest-silent
// handshakes, down to the limit.
func TestPerClientCountsSlowHandshakes(t *testing.T) {
	w := drainWorld(t, &Config{MaxHandshakesPerClient: 2, HandshakeGrace: time.Nanosecond})
	// One after the other, so that the listener sees them in this order.
	held := append(append(w.stall(1), w.stall(1)...), w.stall(1)...) // the third is not yet slow when it comes: none shed
	assert.Equal(t, 3, w.l.handshakeCount())
	more := w.stall(1) // three slow ones: the first is shed
	assert.Equal(t, map[int]bool{port(held[1]): true, port(held[2]): true, port(more[0]): true}, w.l.heldPorts())
	waitClosed(t, held[0])
	assert.Equal(t, 1, w.burst(1), "a complete handshake is served")
}
