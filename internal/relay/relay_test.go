package relay

import (
	"bytes"
	"context"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sockstap/sockstap/internal/peek"
	"github.com/sockstap/sockstap/internal/sockstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// tcpPair returns the two ends of a loopback TCP connection.
func tcpPair(t *testing.T) (*net.TCPConn, *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	a, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	b := <-accepted
	require.NotNil(t, b)
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	for _, c := range []net.Conn{a, b} {
		c.SetDeadline(time.Now().Add(sockstest.Timeout))
	}
	return a.(*net.TCPConn), b.(*net.TCPConn)
}

// setup is a relay between a client and a target: the test holds the
// client's end (client) and the target's end (target), Run the other two.
type setup struct {
	client, target *net.TCPConn
	result         chan Result
}

func start(t *testing.T, ctx context.Context, idle time.Duration, wrap func(net.Conn) net.Conn) *setup {
	t.Helper()
	client, relayClient := tcpPair(t)
	relayTarget, target := tcpPair(t)
	for _, c := range []net.Conn{relayClient, relayTarget} {
		c.SetDeadline(time.Time{})
	}
	s := &setup{client: client, target: target, result: make(chan Result, 1)}
	var rc net.Conn = relayClient
	if wrap != nil {
		rc = wrap(relayClient)
	}
	go func() { s.result <- Run(ctx, rc, relayTarget, idle) }()
	return s
}

func (s *setup) wait(t *testing.T) Result {
	t.Helper()
	select {
	case r := <-s.result:
		return r
	case <-time.After(sockstest.Timeout):
		t.Fatal("relay did not end in time")
		return Result{}
	}
}

func TestRelayBothWays(t *testing.T) {
	s := start(t, context.Background(), 0, nil)
	up := bytes.Repeat([]byte("up"), 50000)
	down := bytes.Repeat([]byte("down"), 30000)
	go func() {
		s.client.Write(up)
		s.client.CloseWrite()
	}()
	go func() {
		s.target.Write(down)
		s.target.CloseWrite()
	}()
	gotUp, err := io.ReadAll(s.target)
	require.NoError(t, err)
	gotDown, err := io.ReadAll(s.client)
	require.NoError(t, err)
	assert.Equal(t, up, gotUp)
	assert.Equal(t, down, gotDown)
	r := s.wait(t)
	assert.NoError(t, r.Err)
	assert.Equal(t, int64(len(up)), r.Up)
	assert.Equal(t, int64(len(down)), r.Down)
}

func TestRelayHalfClose(t *testing.T) {
	s := start(t, context.Background(), 0, nil)
	_, err := s.client.Write([]byte("question"))
	require.NoError(t, err)
	require.NoError(t, s.client.CloseWrite())
	got, err := io.ReadAll(s.target) // EOF arrives: the half-close went through
	require.NoError(t, err)
	assert.Equal(t, "question", string(got))
	_, err = s.target.Write([]byte("answer after the question's end"))
	require.NoError(t, err)
	require.NoError(t, s.target.CloseWrite())
	got, err = io.ReadAll(s.client)
	require.NoError(t, err)
	assert.Equal(t, "answer after the question's end", string(got))
	assert.NoError(t, s.wait(t).Err)
}

func TestRelaySendsBufferedBytesFirst(t *testing.T) {
	s := start(t, context.Background(), 0, func(c net.Conn) net.Conn {
		return peek.NewConn(c, []byte("read ahead, "))
	})
	_, err := s.client.Write([]byte("then the rest"))
	require.NoError(t, err)
	require.NoError(t, s.client.CloseWrite())
	got, err := io.ReadAll(s.target)
	require.NoError(t, err)
	assert.Equal(t, "read ahead, then the rest", string(got))
	s.target.Close()
	r := s.wait(t)
	assert.Equal(t, int64(len("read ahead, then the rest")), r.Up)
}

func TestRelayIdle(t *testing.T) {
	t.Run("closes when nothing moves", func(t *testing.T) {
		s := start(t, context.Background(), 50*time.Millisecond, nil)
		r := s.wait(t)
		assert.ErrorIs(t, r.Err, ErrIdle)
		n, err := s.client.Read(make([]byte, 1))
		assert.Zero(t, n)
		assert.ErrorIs(t, err, io.EOF, "the client's connection is closed")
	})

	t.Run("one busy direction keeps it open", func(t *testing.T) {
		const idle = 60 * time.Millisecond
		s := start(t, context.Background(), idle, nil)
		// The target trickles a byte every 15 ms for 20 idle periods while
		// the client sends nothing.
		tick := time.NewTicker(15 * time.Millisecond)
		defer tick.Stop()
		const n = 80
		for i := range n {
			<-tick.C
			select {
			case r := <-s.result:
				t.Fatalf("relay ended after %d bytes: %v", i, r.Err)
			default:
			}
			_, err := s.target.Write([]byte{'.'})
			require.NoError(t, err)
		}
		got := make([]byte, n)
		_, err := io.ReadFull(s.client, got)
		require.NoError(t, err)
		assert.Equal(t, bytes.Repeat([]byte{'.'}, n), got)
		// Then both are quiet: it closes.
		r := s.wait(t)
		assert.ErrorIs(t, r.Err, ErrIdle)
		assert.Equal(t, int64(n), r.Down)
	})

	t.Run("a peer that does not read", func(t *testing.T) {
		s := start(t, context.Background(), 50*time.Millisecond, nil)
		// The target sends far more than the buffers hold; the client
		// neither reads nor sends. The relay's writer is stuck: it ends.
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			s.target.Write(make([]byte, 64<<20))
		}()
		r := s.wait(t)
		assert.ErrorIs(t, r.Err, ErrIdle)
		s.target.Close()
		<-wrote
	})

	t.Run("half-closed and quiet", func(t *testing.T) {
		s := start(t, context.Background(), 50*time.Millisecond, nil)
		require.NoError(t, s.client.CloseWrite())
		r := s.wait(t)
		assert.ErrorIs(t, r.Err, ErrIdle)
	})
}

func TestRelayContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := start(t, ctx, 0, nil)
	_, err := s.client.Write([]byte("x"))
	require.NoError(t, err)
	got := make([]byte, 1)
	_, err = io.ReadFull(s.target, got)
	require.NoError(t, err)
	cancel()
	r := s.wait(t)
	assert.ErrorIs(t, r.Err, context.Canceled)
	assert.Equal(t, int64(1), r.Up)
}

func TestRelayReset(t *testing.T) {
	s := start(t, context.Background(), 0, nil)
	s.target.SetLinger(0)
	s.target.Close() // a reset, not an orderly close
	r := s.wait(t)
	assert.ErrorIs(t, r.Err, syscall.ECONNRESET)
	n, err := s.client.Read(make([]byte, 1))
	assert.Zero(t, n)
	assert.ErrorIs(t, err, io.EOF, "the relay closed the client's side too")
}

func TestRelayPipes(t *testing.T) {
	// Connections that cannot half-close: an EOF closes the relay.
	client, relayClient := net.Pipe()
	relayTarget, target := net.Pipe()
	defer client.Close()
	defer target.Close()
	done := make(chan Result, 1)
	go func() { done <- Run(context.Background(), relayClient, relayTarget, 0) }()
	go func() {
		client.Write([]byte("over a pipe"))
		client.Close()
	}()
	got, err := io.ReadAll(target)
	require.NoError(t, err)
	assert.Equal(t, "over a pipe", string(got))
	select {
	case r := <-done:
		assert.Equal(t, int64(len("over a pipe")), r.Up)
	case <-time.After(sockstest.Timeout):
		t.Fatal("relay did not end")
	}
}
