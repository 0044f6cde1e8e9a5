package relay

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/peek"
	"github.com/sockstap/sockstap/internal/sockstest"
)

func TestSplicePathChosen(t *testing.T) {
	a, b := tcpPair(t)
	c, d := tcpPair(t)
	p, q := net.Pipe()
	defer p.Close()
	defer q.Close()
	tests := []struct {
		name           string
		client, target net.Conn
		spliced        bool
	}{
		{"TCP both", a, c, true},
		{"TCP read ahead", peek.NewConn(b, []byte("x")), d, true},
		{"a pipe", p, c, false},
		{"a wrapper that does not unwrap", struct{ net.Conn }{a}, c, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRelay(context.Background(), tt.client, tt.target, 0)
			assert.Equal(t, tt.spliced, r.up.spliced)
			assert.Equal(t, tt.spliced, r.down.spliced)
		})
	}
}

// TestSpliceMovesMuch sends megabytes both ways at once, so that the
// pipes fill, are lent again and the writers wait for room.
func TestSpliceMovesMuch(t *testing.T) {
	s := start(t, context.Background(), time.Minute, nil)
	up := make([]byte, 8<<20+123)
	down := make([]byte, 5<<20+7)
	rand.Read(up)
	rand.Read(down)
	send := func(c *net.TCPConn, b []byte) {
		c.Write(b)
		c.CloseWrite()
	}
	go send(s.client, up)
	go send(s.target, down)
	gotUp := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(s.target)
		gotUp <- b
	}()
	gotDown, err := io.ReadAll(s.client)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(down, gotDown), "down: %d bytes, want %d", len(gotDown), len(down))
	assert.True(t, bytes.Equal(up, <-gotUp), "up")
	r := s.wait(t)
	assert.NoError(t, r.Err)
	assert.Equal(t, Result{Up: int64(len(up)), Down: int64(len(down))}, r)
}

// TestSpliceHoldsPipesWhileMoving shows where the pipes are: none while a
// relay waits for bytes, one in the direction whose writer waits for a
// peer to read, and none again once it has.
func TestSpliceHoldsPipesWhileMoving(t *testing.T) {
	base := pipes.out.Load()
	s := start(t, context.Background(), time.Minute, nil)
	for _, way := range []struct{ from, to *net.TCPConn }{{s.client, s.target}, {s.target, s.client}} {
		_, err := way.from.Write([]byte("ping"))
		require.NoError(t, err)
		_, err = io.ReadFull(way.to, make([]byte, 4))
		require.NoError(t, err)
	}
	require.Eventually(t, func() bool { return pipes.out.Load() == base }, sockstest.Timeout, time.Millisecond,
		"an idle relay holds no pipe")

	// The target does not read: the client's bytes fill the sockets'
	// buffers, and the relay's writer waits with what it holds in a pipe.
	big := make([]byte, 32<<20)
	rand.Read(big)
	wrote := make(chan error, 1)
	go func() {
		_, err := s.client.Write(big)
		wrote <- err
	}()
	require.Eventually(t, func() bool { return pipes.out.Load() == base+1 }, sockstest.Timeout, time.Millisecond,
		"the stuck direction holds one pipe")
	got := make([]byte, len(big))
	_, err := io.ReadFull(s.target, got)
	require.NoError(t, err)
	assert.True(t, bytes.Equal(big, got))
	require.NoError(t, <-wrote)
	require.Eventually(t, func() bool { return pipes.out.Load() == base }, sockstest.Timeout, time.Millisecond,
		"once read, the pipe is given back")

	s.client.Close()
	s.target.Close()
	r := s.wait(t)
	assert.Equal(t, int64(len(big)+4), r.Up)
	assert.Equal(t, int64(4), r.Down)
}

// TestSpliceCutWhileHolding ends a relay whose writer holds bytes in a
// pipe: the pipe is closed with them, and the pool keeps only empty ones.
func TestSpliceCutWhileHolding(t *testing.T) {
	base := pipes.out.Load()
	s := start(t, context.Background(), time.Minute, nil)
	go s.client.Write(make([]byte, 32<<20))
	require.Eventually(t, func() bool { return pipes.out.Load() == base+1 }, sockstest.Timeout, time.Millisecond)
	s.target.SetLinger(0)
	s.target.Close()
	r := s.wait(t)
	assert.Error(t, r.Err)
	assert.Equal(t, base, pipes.out.Load())
	pipes.mu.Lock()
	defer pipes.mu.Unlock()
	for _, p := range pipes.free {
		assert.Zero(t, pipeBytes(t, p.r), "a pipe kept is empty")
	}
}

// TestSpliceBytesQueuedBeforeStart has both peers send before the relay
// starts (a server that speaks first, a client that sent ahead): the
// relay's first look finds them, with no wake-up from the poller to come.
func TestSpliceBytesQueuedBeforeStart(t *testing.T) {
	client, relayClient := tcpPair(t)
	relayTarget, target := tcpPair(t)
	for _, c := range []*net.TCPConn{relayClient, relayTarget} {
		c.SetDeadline(time.Time{})
	}
	_, err := target.Write([]byte("220 banner"))
	require.NoError(t, err)
	_, err = client.Write([]byte("sent ahead"))
	require.NoError(t, err)
	// Both are queued on the relay's sockets before it looks.
	require.Eventually(t, func() bool { return inQueue(t, relayClient) == 10 && inQueue(t, relayTarget) == 10 },
		sockstest.Timeout, time.Millisecond)

	result := make(chan Result, 1)
	go func() { result <- Run(context.Background(), relayClient, relayTarget, time.Minute) }()
	got := make([]byte, 10)
	_, err = io.ReadFull(client, got)
	require.NoError(t, err)
	assert.Equal(t, "220 banner", string(got))
	_, err = io.ReadFull(target, got)
	require.NoError(t, err)
	assert.Equal(t, "sent ahead", string(got))
	client.Close()
	target.Close()
	select {
	case r := <-result:
		assert.Equal(t, int64(10), r.Up)
		assert.Equal(t, int64(10), r.Down)
	case <-time.After(sockstest.Timeout):
		t.Fatal("the relay did not end")
	}
}

// inQueue returns how many bytes wait in c's receive queue.
func inQueue(t *testing.T, c *net.TCPConn) int {
	rc, err := c.SyscallConn()
	require.NoError(t, err)
	var n int
	require.NoError(t, rc.Control(func(fd uintptr) { n = pipeBytes(t, int(fd)) }))
	return n
}

// TestSpliceBusyPastIdle streams for several idle periods without a
// pause: the read deadlines that fire in the middle of the stream, with a
// pipe in hand or bytes queued that the copy was late to read, neither end
// the relay nor lose a byte. A run in which the machine stalled the writer
// itself for half the idle timeout proves nothing (the relay may rightly
// have closed), and is tried again.
func TestSpliceBusyPastIdle(t *testing.T) {
	const idle = 60 * time.Millisecond
	for range 3 {
		s := start(t, context.Background(), idle, nil)
		type digest struct {
			n   int64
			sum []byte
		}
		arrived := make(chan digest, 1)
		go func() {
			h := sha256.New()
			n, _ := io.Copy(h, s.target)
			arrived <- digest{n, h.Sum(nil)}
		}()
		h := sha256.New()
		var sent int64
		chunk := make([]byte, 16<<10)
		last := time.Now()
		until := last.Add(8 * idle)
		var stall time.Duration
		var werr error
		for i := 0; time.Now().Before(until) && i < 100000; i++ {
			rand.Read(chunk)
			if _, werr = s.client.Write(chunk); werr != nil {
				break
			}
			h.Write(chunk)
			sent += int64(len(chunk))
			now := time.Now()
			stall = max(stall, now.Sub(last))
			last = now
		}
		s.client.CloseWrite()
		got := <-arrived
		s.target.Close()
		r := s.wait(t)
		if stall >= idle/2 {
			t.Logf("the writer stalled for %v: trying again", stall)
			continue
		}
		// Every write went through and every byte arrived: the relay
		// did not close while the stream lasted. (Once the client has
		// half-closed, the quiet way back may rightly end it as idle.)
		require.NoError(t, werr)
		assert.Equal(t, sent, got.n)
		assert.Equal(t, h.Sum(nil), got.sum)
		assert.Equal(t, sent, r.Up)
		return
	}
	t.Skip("the machine stalled the writer in every try")
}

// unrun returns a relay that is only looked at, never run: from src, the
// far end of peer, to a TCP connection, spliced or (wrapped) not.
func unrun(t *testing.T, spliced bool, idle time.Duration) (peer, src *net.TCPConn, r *relay) {
	t.Helper()
	peer, src = tcpPair(t)
	_, dst := tcpPair(t)
	var to net.Conn = dst
	if !spliced {
		to = struct{ net.Conn }{dst}
	}
	r = newRelay(context.Background(), src, to, idle)
	require.Equal(t, spliced, r.up.spliced)
	return peer, src, r
}

// TestPending checks the look a direction takes at its source when its
// read deadline passes: bytes, the end of the stream or an error make it
// busy, an empty queue does not; on the splice path and on the ReadFrom
// path of a TCP source.
func TestPending(t *testing.T) {
	for _, spliced := range []bool{true, false} {
		t.Run(fmt.Sprint("spliced=", spliced), func(t *testing.T) {
			peer, src, r := unrun(t, spliced, time.Hour)
			d := &r.up
			pending := func() bool { return d.pending() }

			assert.False(t, d.pending(), "nothing queued")
			_, err := peer.Write([]byte("x"))
			require.NoError(t, err)
			require.Eventually(t, pending, sockstest.Timeout, time.Millisecond, "a byte queued")
			_, err = io.ReadFull(src, make([]byte, 1))
			require.NoError(t, err)
			assert.False(t, d.pending(), "read")
			require.NoError(t, peer.CloseWrite())
			require.Eventually(t, pending, sockstest.Timeout, time.Millisecond, "the end of the stream")
		})
	}
	t.Run("reset", func(t *testing.T) {
		peer, _, r := unrun(t, true, time.Hour)
		d := &r.up
		peer.SetLinger(0)
		peer.Close()
		require.Eventually(t, func() bool { return d.pending() }, sockstest.Timeout, time.Millisecond)
	})
}

// TestLateCopyIsNotIdle judges a direction whose deadline passed before its
// copy could look, with bytes waiting: the relay is not idle, and the
// direction asks the other nothing (a question that a quiet other would
// answer with idle).
func TestLateCopyIsNotIdle(t *testing.T) {
	for _, spliced := range []bool{true, false} {
		t.Run(fmt.Sprint("spliced=", spliced), func(t *testing.T) {
			const idle = time.Minute
			peer, _, r := unrun(t, spliced, idle)
			long := time.Now().Add(-2 * idle).UnixNano()
			r.up.moved.Store(long)
			r.down.moved.Store(long)
			assert.False(t, r.timedOut(&r.up), "quiet both ways, by the records")
			require.NotNil(t, r.probe.Load(), "so the up direction asks the down one")
			r.probe.Store(nil)

			_, err := peer.Write([]byte("late"))
			require.NoError(t, err)
			require.Eventually(t, func() bool { return r.up.pending() }, sockstest.Timeout, time.Millisecond)
			r.up.moved.Store(long)
			assert.False(t, r.timedOut(&r.up))
			assert.Nil(t, r.probe.Load(), "no question asked")
			assert.Greater(t, r.up.moved.Load(), long, "the waiting bytes count as movement")
		})
	}
}
