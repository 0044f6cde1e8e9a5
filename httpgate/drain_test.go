package httpgate

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// A tunnel through the mixed port: the client's end of it.
type tunnelKind struct {
	name string
	open func(t *testing.T, w *world) net.Conn
	// tunnel says whether it is a tunnel of the gateway's (which the
	// http.Server forgets once hijacked), not a relay of the listener's.
	tunnel bool
}

var tunnelKinds = []tunnelKind{
	{"CONNECT", openConnect, true},
	{"upgrade", openUpgrade, true},
	{"SOCKS relay", openSOCKSRelay, false},
}

func openConnect(t *testing.T, w *world) net.Conn {
	echo := sockstest.Echo(t)
	c, br := w.raw("CONNECT " + echo.String() + " HTTP/1.1\r\nHost: " + echo.String() + "\r\n\r\n")
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	require.NoError(t, err)
	require.Equal(t, 200, resp.StatusCode)
	require.Zero(t, br.Buffered())
	return c
}

func openUpgrade(t *testing.T, w *world) net.Conn {
	o := sockstest.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		io.Copy(c, br) // an echo, until the client is done
	})
	c, br := w.raw("GET http://" + o.String() + "/ws HTTP/1.1\r\nHost: " + o.String() + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, 101, resp.StatusCode)
	require.Zero(t, br.Buffered())
	return c
}

func openSOCKSRelay(t *testing.T, w *world) net.Conn {
	echo := sockstest.Echo(t)
	d, err := dialer.Parse("socks5://" + w.addr)
	require.NoError(t, err)
	c, err := d.DialContext(context.Background(), "tcp", echo.String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// echoes checks that what is written to c comes back: the tunnel works.
// The first byte is not a letter, so that a SOCKS stream is not taken
// for HTTP and tapped.
func echoes(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	msg = "\x16" + msg
	require.NoError(t, c.SetDeadline(time.Now().Add(sockstest.Timeout)))
	_, err := io.WriteString(c, msg)
	require.NoError(t, err)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	assert.Equal(t, msg, string(got))
}

// Ending Serve drains the tunnels under way (CONNECT, upgrades) and the
// SOCKS relays, as listener.Shutdown drains relays: they go on while they
// last, and Serve returns once they have ended, long before its
// ShutdownTimeout.
func TestServeDrainsTunnels(t *testing.T) {
	for _, k := range tunnelKinds {
		t.Run(k.name, func(t *testing.T) {
			w := newWorld(t, nil, func(s *Server) { s.ShutdownTimeout = time.Minute })
			c := k.open(t, w)
			echoes(t, c, "before")
			w.stop()
			w.logs.Wait(t, sockstest.Key("msg", "httpgate shutdown"))
			echoes(t, c, "while the server drains")
			assert.True(t, w.serving(), "Serve waits for the tunnel")
			require.NoError(t, c.Close())
			w.served()
			_, err := net.DialTimeout("tcp", w.addr, sockstest.Timeout)
			assert.Error(t, err, "the port is closed")
			if k.tunnel {
				rec := w.recordWhere(func(r *Record) bool { return r.Status == 200 || r.Status == 101 })
				assert.Empty(t, rec.Reason, "the tunnel ended as its client closed it")
			}
			for _, m := range w.logs.All() {
				assert.NotEqual(t, "httpgate shutdown: tunnels closed", m["msg"])
			}
		})
	}
}

// A tunnel still open when ShutdownTimeout has passed is closed, both of
// its ends, and Serve returns; the record and the log say why.
func TestServeClosesTunnels(t *testing.T) {
	const grace = 200 * time.Millisecond
	for _, k := range tunnelKinds {
		t.Run(k.name, func(t *testing.T) {
			w := newWorld(t, nil, func(s *Server) { s.ShutdownTimeout = grace })
			c := k.open(t, w)
			echoes(t, c, "before")
			start := time.Now()
			w.stop()
			w.served()
			assert.GreaterOrEqual(t, time.Since(start), grace, "the tunnel had its grace")
			require.NoError(t, c.SetReadDeadline(time.Now().Add(sockstest.Timeout)))
			_, err := c.Read(make([]byte, 1))
			require.Error(t, err, "the tunnel is closed")
			var ne net.Error
			assert.False(t, errors.As(err, &ne) && ne.Timeout(), "closed by the server, not timed out here: %v", err)
			if k.tunnel {
				rec := w.recordWhere(func(r *Record) bool { return r.Status == 200 || r.Status == 101 })
				assert.Equal(t, "closed: the server shut down", rec.Reason)
				assert.ErrorIs(t, rec.Err, errShutdown)
				m := w.logs.Wait(t, sockstest.Key("msg", "httpgate shutdown: tunnels closed"))
				assert.Equal(t, "1", m["tunnels"])
			}
		})
	}
}

// Once Serve has returned, a request that was about to become a tunnel
// does not become one: the tunnels are closed for good.
func TestTunnelsClosedForGood(t *testing.T) {
	ts := newTunnels()
	require.True(t, ts.start())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	done := make(chan int, 1)
	go func() { done <- ts.shutdown(ctx) }()
	select {
	case <-ts.ctx.Done(): // the running tunnel is told to close
	case <-time.After(sockstest.Timeout):
		t.Fatal("the tunnel was not told to close")
	}
	assert.False(t, ts.start(), "no tunnel starts while they close")
	ts.end()
	select {
	case n := <-done:
		assert.Equal(t, 1, n)
	case <-time.After(sockstest.Timeout):
		t.Fatal("shutdown did not return once the tunnel ended")
	}
	assert.False(t, ts.start())
}
