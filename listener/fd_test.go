package listener

// Descriptor tests. Each counts the descriptors of a relaying Listener that
// runs in a server process of its own (the one BenchmarkIdleRelay starts,
// TestIdleRelayServer), while this process holds the clients' and the
// targets' ends: no socket or pipe of another test, nor of a client or a
// target, is counted.

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// fdWait bounds each wait of these tests for the server process's
// descriptors to reach a count: the relay's pool closes the pipes no one
// needs within two seconds.
const fdWait = 15 * time.Second

// startFdServer starts a relaying Listener in a process of its own, with
// env added to its environment, stopped by t's cleanup, and returns it with
// what it holds before any connection.
func startFdServer(t *testing.T, conns int, env ...string) (*idleServer, procStats) {
	t.Helper()
	needProc(t)
	if need := uint64(4*conns + 64); !raiseFileLimit(need) {
		t.Skipf("the descriptor limit is below %d", need)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	child, err := startIdleServer(ctx, "listener", env...)
	require.NoError(t, err)
	t.Cleanup(func() { child.stop() })
	before, err := child.count()
	require.NoError(t, err)
	return child, before
}

// waitCount waits, for at most fdWait, until what the server process holds
// satisfies ok, and returns it and how long that took.
func waitCount(t *testing.T, child *idleServer, ok func(procStats) bool) (procStats, time.Duration, bool) {
	t.Helper()
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		s, err := child.count()
		require.NoError(t, err)
		if ok(s) {
			return s, time.Since(start), true
		}
		if time.Since(start) > fdWait {
			return s, time.Since(start), false
		}
		<-tick.C
	}
}

// dialThrough opens n relayed connections through the server process to
// target, one after the other (a burst of handshakes from one address is
// limited), and closes them at t's end.
func dialThrough(t *testing.T, child *idleServer, target *net.TCPAddr, n int) []*net.TCPConn {
	t.Helper()
	p := benchPath{name: "listener", proxy: child.addr}
	conns := make([]*net.TCPConn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		c, err := p.dial(target)
		require.NoError(t, err)
		conns = append(conns, c)
	}
	return conns
}

// TestIdleRelayDescriptors opens relayed connections, moves bytes both
// ways on each, and finds that each idle relay holds two descriptors, its
// two sockets, and no pipe.
func TestIdleRelayDescriptors(t *testing.T) {
	const n = 64
	child, before := startFdServer(t, n)
	echo := sockstest.Serve(t, echoTarget)
	for _, c := range dialThrough(t, child, echo, n) {
		require.NoError(t, pingPong(c))
	}
	s, took, ok := waitCount(t, child, func(s procStats) bool { return s.pipes <= before.pipes })
	require.True(t, ok, "the pool's pipes were not closed in %v: %d pipes, %d before", fdWait, s.pipes, before.pipes)
	t.Logf("the pool's pipes closed %v after the last byte", took.Round(time.Millisecond))
	assert.Equal(t, int64(2*n), s.fds-before.fds, "two descriptors per idle relay")
	assert.Equal(t, before.pipes, s.pipes, "no pipe held by an idle relay")
}

// TestBurstDescriptors runs a burst of relays that all move bytes at
// once, closes them, and finds the server process's descriptors back where
// they were within seconds, in a process whose garbage collector is off:
// no finalizer closes pipes.
func TestBurstDescriptors(t *testing.T) {
	const n = 200
	child, before := startFdServer(t, n, idleNoGCEnv+"=1")
	echo := sockstest.Echo(t)
	conns := dialThrough(t, child, echo, n)

	payload := make([]byte, 256<<10)
	rand.Read(payload)
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range conns {
		wg.Go(func() {
			<-start
			errs[i] = echoOnce(c, payload)
			c.Close()
		})
	}
	close(start)
	wg.Wait()
	require.NoError(t, errors.Join(errs...))

	s, took, ok := waitCount(t, child, func(s procStats) bool { return s.fds == before.fds })
	require.True(t, ok, "descriptors not back to %d in %v: %d, with %d pipes", before.fds, fdWait, s.fds, s.pipes)
	t.Logf("descriptors back to %d %v after the burst", before.fds, took.Round(time.Millisecond))
	assert.Equal(t, before.pipes, s.pipes)
}

// echoOnce sends payload on c while it reads it back.
func echoOnce(c *net.TCPConn, payload []byte) error {
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		wrote <- err
	}()
	got := make([]byte, len(payload))
	_, err := io.ReadFull(c, got)
	return errors.Join(err, <-wrote)
}

// TestRelaySplices shows that a relay's copy runs between the raw TCP
// connections, the bytes the listener read ahead with the handshake sent
// first, so that the kernel splices: a direction whose target does not
// read holds a pipe with the bytes it could not write, one pipe, and gives
// it back once the target reads; then the pool closes it.
func TestRelaySplices(t *testing.T) {
	child, before := startFdServer(t, 1)
	const big = 32 << 20
	type received struct {
		first string
		rest  int64
		err   error
	}
	release := make(chan struct{})
	got := make(chan received, 1)
	target := sockstest.Serve(t, func(c net.Conn) {
		select {
		case <-release:
		case <-time.After(sockstest.Timeout):
		}
		first := make([]byte, len("read ahead"))
		_, err := io.ReadFull(c, first)
		n, err2 := io.Copy(io.Discard, c)
		got <- received{string(first), n, errors.Join(err, err2)}
	})

	c, err := net.DialTCP("tcp", nil, child.addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(sockstest.Timeout))
	// Greeting, request and data in one write: the listener reads the data
	// ahead with the handshake, and must still splice once it has sent it
	// on.
	addr, err := socks5.ParseAddr(target.String())
	require.NoError(t, err)
	msg, err := socks5.Request{Command: socks5.CmdConnect, Addr: addr}.AppendBinary([]byte{5, 1, 0})
	require.NoError(t, err)
	_, err = c.Write(append(msg, "read ahead"...))
	require.NoError(t, err)
	_, err = socks5.ReadMethodSelection(c)
	require.NoError(t, err)
	_, err = socks5.ReadResponse(c)
	require.NoError(t, err)
	wrote := make(chan error, 1)
	go func() {
		_, err := c.Write(make([]byte, big))
		if err == nil {
			err = c.CloseWrite()
		}
		wrote <- err
	}()

	s, _, ok := waitCount(t, child, func(s procStats) bool { return s.pipes == before.pipes+1 })
	require.True(t, ok, "%d pipes, want %d", s.pipes, before.pipes+1)
	assert.Equal(t, before.fds+4, s.fds, "two sockets and a pipe's two ends")

	close(release)
	r := <-got
	require.NoError(t, r.err)
	assert.Equal(t, "read ahead", r.first)
	assert.Equal(t, int64(big), r.rest)
	require.NoError(t, <-wrote)
	s, _, ok = waitCount(t, child, func(s procStats) bool { return s.pipes == before.pipes })
	assert.True(t, ok, "%d pipes, want %d", s.pipes, before.pipes)
}
