package relay

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/peek"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// wayWorld is a relay between two TCP connections: the test speaks on client
// and target, the far ends of the relay's own two.
type wayWorld struct {
	client, target *net.TCPConn
	result         chan Result
}

// ways are the two entry points, each run on the relay's ends with ctx and
// idle: Run on a goroutine of the test's, Start on goroutines it spawns.
var ways = []struct {
	name string
	run  func(ctx context.Context, client, target net.Conn, idle time.Duration, result chan<- Result)
}{
	{"Run", func(ctx context.Context, client, target net.Conn, idle time.Duration, result chan<- Result) {
		go func() { result <- Run(ctx, client, target, idle) }()
	}},
	{"Start", func(ctx context.Context, client, target net.Conn, idle time.Duration, result chan<- Result) {
		var spawned sync.WaitGroup
		Start(ctx, client, target, idle, spawned.Go, func(r Result) { result <- r })
	}},
}

// newWayWorld starts a relay the given way; relayClient, when not nil, wraps
// the relay's end towards the client.
func newWayWorld(t *testing.T, way int, ctx context.Context, idle time.Duration, relayClient func(net.Conn) net.Conn) *wayWorld {
	t.Helper()
	w := &wayWorld{result: make(chan Result, 1)}
	var rc, rt *net.TCPConn
	w.client, rc = tcpPair(t)
	rt, w.target = tcpPair(t)
	var c net.Conn = rc
	if relayClient != nil {
		c = relayClient(rc)
	}
	ways[way].run(ctx, c, rt, idle, w.result)
	return w
}

// wait returns the relay's result, failing the test when it does not end
// in time.
func (w *wayWorld) wait(t *testing.T) Result {
	t.Helper()
	select {
	case r := <-w.result:
		return r
	case <-time.After(sockstest.Timeout):
		t.Fatal("the relay did not end in time")
		return Result{}
	}
}

func readAll(t *testing.T, c net.Conn) string {
	t.Helper()
	b, err := io.ReadAll(c)
	require.NoError(t, err)
	return string(b)
}

func TestRunAndStart(t *testing.T) {
	for i, way := range ways {
		t.Run(way.name, func(t *testing.T) {
			t.Run("HalfClose", func(t *testing.T) {
				w := newWayWorld(t, i, context.Background(), time.Minute, nil)
				_, err := w.client.Write([]byte("request"))
				require.NoError(t, err)
				require.NoError(t, w.client.CloseWrite())
				assert.Equal(t, "request", readAll(t, w.target), "the client's half-close reaches the target")
				_, err = w.target.Write([]byte("the response"))
				require.NoError(t, err, "the other direction goes on")
				require.NoError(t, w.target.CloseWrite())
				assert.Equal(t, "the response", readAll(t, w.client))
				r := w.wait(t)
				assert.Equal(t, Result{Up: 7, Down: 12}, r)
			})

			t.Run("ReadAheadFirst", func(t *testing.T) {
				w := newWayWorld(t, i, context.Background(), time.Minute, func(c net.Conn) net.Conn {
					return peek.NewConn(c, []byte("read ahead, "))
				})
				_, err := w.client.Write([]byte("then the rest"))
				require.NoError(t, err)
				require.NoError(t, w.client.CloseWrite())
				assert.Equal(t, "read ahead, then the rest", readAll(t, w.target))
				w.target.Close()
				r := w.wait(t)
				assert.Equal(t, int64(25), r.Up)
			})

			t.Run("Idle", func(t *testing.T) {
				idle := 50 * time.Millisecond
				w := newWayWorld(t, i, context.Background(), idle, nil)
				start := time.Now()
				_, err := w.client.Write([]byte("x"))
				require.NoError(t, err)
				buf := make([]byte, 1)
				_, err = io.ReadFull(w.target, buf)
				require.NoError(t, err)
				r := w.wait(t)
				assert.ErrorIs(t, r.Err, ErrIdle)
				assert.GreaterOrEqual(t, time.Since(start), idle)
				assert.Equal(t, "", readAll(t, w.client), "the relay closed the client's connection")
				assert.Equal(t, "", readAll(t, w.target), "and the target's")
			})

			t.Run("Context", func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				w := newWayWorld(t, i, ctx, time.Minute, nil)
				cancel()
				r := w.wait(t)
				assert.ErrorIs(t, r.Err, context.Canceled)
				assert.Equal(t, "", readAll(t, w.client))
			})
		})
	}
}

// TestStartSpawnsTwo checks that Start starts its copies through spawn,
// and calls done once, after both connections are closed.
func TestStartSpawnsTwo(t *testing.T) {
	client, rc := tcpPair(t)
	rt, target := tcpPair(t)
	var spawned sync.WaitGroup
	n := 0
	results := make(chan Result, 2)
	Start(context.Background(), rc, rt, time.Minute, func(f func()) {
		n++
		spawned.Go(f)
	}, func(r Result) { results <- r })
	assert.Equal(t, 2, n)
	client.Close()
	target.Close()
	spawned.Wait()
	require.Len(t, results, 1)
	_, err := rc.Write([]byte("x"))
	assert.ErrorIs(t, err, net.ErrClosed)
	_, err = rt.Write([]byte("x"))
	assert.ErrorIs(t, err, net.ErrClosed)
}
