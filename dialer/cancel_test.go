package dialer_test

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
)

// A fakeProxy is a TCP server that misbehaves as a SOCKS proxy. got
// receives a value when a connection's first bytes have arrived; closed
// receives one when the client has closed a connection and the server has
// closed its end too.
type fakeProxy struct {
	addr        string
	got, closed chan struct{}
}

// startFakeProxy starts a fakeProxy that reads what the client sends,
// answers answer (nothing, to stall) and waits for the client to close.
func startFakeProxy(t testing.TB, answer []byte) *fakeProxy {
	t.Helper()
	p := &fakeProxy{got: make(chan struct{}, 256), closed: make(chan struct{}, 256)}
	p.addr = sockstest.Serve(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(wait))
		if _, err := c.Read(make([]byte, 512)); err == nil {
			p.got <- struct{}{}
		}
		if answer != nil {
			c.Write(answer)
		}
		io.Copy(io.Discard, c)
		c.Close()
		p.closed <- struct{}{}
	}).String()
	return p
}

// await receives from ch, failing the test when nothing comes in time.
func await[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		require.FailNow(t, "not in time: "+what)
		panic("unreachable")
	}
}

type dialResult struct {
	c   net.Conn
	err error
}

func dialAsync(ctx context.Context, d *dialer.Dialer, address string) <-chan dialResult {
	ch := make(chan dialResult, 1)
	go func() {
		c, err := d.DialContext(ctx, "tcp", address)
		ch <- dialResult{c, err}
	}()
	return ch
}

// blockingDialer waits for its context to end, and reports each call.
type blockingDialer struct{ called chan struct{} }

func (b *blockingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	b.called <- struct{}{}
	<-ctx.Done()
	return nil, ctx.Err()
}

func TestCancel(t *testing.T) {
	t.Run("mid-handshake, the connection closes at once", func(t *testing.T) {
		for _, scheme := range []dialer.Scheme{dialer.SOCKS4, dialer.SOCKS5H} {
			t.Run(string(scheme), func(t *testing.T) {
				stall := startFakeProxy(t, nil)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				res := dialAsync(ctx, &dialer.Dialer{Proxy: stall.addr, Scheme: scheme}, "192.0.2.1:80")
				await(t, stall.got, "the request")
				cancel()
				cancelled := time.Now()
				r := await(t, res, "the dial's end")
				require.Error(t, r.err)
				assert.Nil(t, r.c)
				assert.ErrorIs(t, r.err, context.Canceled)
				assertOpError(t, r.err, "tcp", stall.addr, "192.0.2.1:80")
				await(t, stall.closed, "the proxy to see the connection closed")
				assert.Less(t, time.Since(cancelled), wait/2)
			})
		}
	})

	t.Run("the deadline bounds the handshake", func(t *testing.T) {
		stall := startFakeProxy(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		d := &dialer.Dialer{Proxy: stall.addr}
		c, err := d.DialContext(ctx, "tcp", "192.0.2.1:80")
		require.Error(t, err)
		assert.Nil(t, c)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		ne, ok := errors.AsType[net.Error](err)
		require.True(t, ok)
		assert.True(t, ne.Timeout(), "a timeout, as net.Dial's: %v", err)
		await(t, stall.closed, "the proxy to see the connection closed")
	})

	t.Run("the context reaches the connect to the proxy", func(t *testing.T) {
		bd := &blockingDialer{called: make(chan struct{}, 1)}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res := dialAsync(ctx, &dialer.Dialer{Proxy: "127.0.0.1:1080", Forward: bd}, "192.0.2.1:80")
		await(t, bd.called, "the connect")
		cancel()
		r := await(t, res, "the dial's end")
		assert.ErrorIs(t, r.err, context.Canceled)
		assertOpError(t, r.err, "tcp", "127.0.0.1:1080", "192.0.2.1:80")
	})

	t.Run("a chain whose first hop stalls", func(t *testing.T) {
		stall := startFakeProxy(t, nil)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		d := dialer.Chain(&dialer.Dialer{Proxy: stall.addr}, &dialer.Dialer{Proxy: "127.0.0.1:1080"})
		_, err := d.DialContext(ctx, "tcp", "192.0.2.1:80")
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		await(t, stall.closed, "the first hop to see the connection closed")
	})

	t.Run("cancelled before the dial", func(t *testing.T) {
		stall := startFakeProxy(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := (&dialer.Dialer{Proxy: stall.addr}).DialContext(ctx, "tcp", "192.0.2.1:80")
		assert.ErrorIs(t, err, context.Canceled)
	})

	t.Run("after the dial, the context no longer matters", func(t *testing.T) {
		echo := sockstest.Echo(t)
		p := startProxy(t, listener.Config{})
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		c, err := (&dialer.Dialer{Proxy: p.addr}).DialContext(ctx, "tcp", echo.String())
		require.NoError(t, err)
		defer c.Close()
		cancel()
		echoCheck(t, c)
	})
}

// countFDs returns how many sockets the process has open, as
// /proc/self/fd lists them. Only sockets are counted: what a dial can leak
// is a connection, while other tests' child processes leave pipes that
// close in their own time.
func countFDs(t testing.TB) int {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, e := range entries {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "socket:") {
			n++
		}
	}
	return n
}

// TestNoFDLeak runs many failing dials, each way a dial can fail, and
// checks that the process has as many file descriptors open afterwards as
// before: no error path leaves a connection open.
func TestNoFDLeak(t *testing.T) {
	countFDs(t)
	const rounds = 20
	refused := closedAddr(t)
	stall := startFakeProxy(t, nil)
	garbage := startFakeProxy(t, []byte("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n"))
	p := startProxy(t, listener.Config{})
	deadTarget := closedAddr(t)
	mid := startFakeProxy(t, nil)

	type failure struct {
		name string
		dial func(t *testing.T)
	}
	failures := []failure{
		{"proxy refuses the connection", func(t *testing.T) {
			for _, s := range []dialer.Scheme{dialer.SOCKS4, dialer.SOCKS5} {
				_, err := (&dialer.Dialer{Proxy: refused, Scheme: s}).Dial("tcp", "192.0.2.1:80")
				require.ErrorIs(t, err, errConnRefused)
			}
		}},
		{"proxy stalls", func(t *testing.T) {
			for _, s := range []dialer.Scheme{dialer.SOCKS4A, dialer.SOCKS5H} {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
				_, err := (&dialer.Dialer{Proxy: stall.addr, Scheme: s}).DialContext(ctx, "tcp", "192.0.2.1:80")
				cancel()
				require.ErrorIs(t, err, context.DeadlineExceeded)
				await(t, stall.closed, "the stalling proxy's end")
			}
		}},
		{"proxy answers garbage", func(t *testing.T) {
			for _, s := range []dialer.Scheme{dialer.SOCKS4, dialer.SOCKS5} {
				_, err := (&dialer.Dialer{Proxy: garbage.addr, Scheme: s}).Dial("tcp", "192.0.2.1:80")
				require.Error(t, err)
				await(t, garbage.closed, "the garbage proxy's end")
			}
		}},
		{"target refused", func(t *testing.T) {
			for _, s := range []dialer.Scheme{dialer.SOCKS4, dialer.SOCKS5} {
				_, err := (&dialer.Dialer{Proxy: p.addr, Scheme: s}).Dial("tcp", deadTarget)
				require.Error(t, err)
			}
		}},
		{"cancelled mid-handshake", func(t *testing.T) {
			for _, s := range []dialer.Scheme{dialer.SOCKS4, dialer.SOCKS5} {
				ctx, cancel := context.WithCancel(context.Background())
				res := dialAsync(ctx, &dialer.Dialer{Proxy: mid.addr, Scheme: s}, "192.0.2.1:80")
				await(t, mid.got, "the request")
				cancel()
				require.ErrorIs(t, await(t, res, "the dial").err, context.Canceled)
				await(t, mid.closed, "the proxy's end")
			}
		}},
	}
	refusals := func(n int) {
		p.logs.WaitN(t, n, sockstest.Key("target", deadTarget))
	}

	// Once, before counting, for whatever the runtime opens on first use.
	for _, f := range failures {
		f.dial(t)
	}
	drain(stall.got, garbage.got)
	refusals(2)

	before := countFDs(t)
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			for range rounds {
				f.dial(t)
			}
		})
		drain(stall.got, garbage.got)
	}
	// Our proxy closes its end of a refused request before logging it.
	refusals(2 + 2*rounds)
	assert.Equal(t, before, countFDs(t), "sockets open before and after %d failing dials", 5*2*rounds)
}

// drain empties channels of the notices nobody waited for.
func drain(chs ...chan struct{}) {
	for _, ch := range chs {
		for len(ch) > 0 {
			<-ch
		}
	}
}
