package relay

import (
	"bytes"
	"context"
	"crypto/rand"
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
