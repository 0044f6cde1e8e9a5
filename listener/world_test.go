package listener

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks4"
	"github.com/sockstap/sockstap/socks5"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// world is a wrapped listener on loopback with a goroutine that accepts
// from it, and what it logs.
type world struct {
	t        testing.TB
	l        *Listener
	logs     *sockstest.Logs
	accepted chan net.Conn
}

func newWorld(t testing.TB, cfg *Config) *world {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return wrapWorld(t, ln, cfg)
}

// wrapWorld wraps ln with cfg, its Logger replaced by a recorder, and
// accepts from it.
func wrapWorld(t testing.TB, ln net.Listener, cfg *Config, setup ...func(*Listener)) *world {
	t.Helper()
	w := bareWorld(t, ln, cfg, setup...)
	w.accepted = make(chan net.Conn)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := w.l.Accept()
			if err != nil {
				return
			}
			select {
			case w.accepted <- conn:
			case <-stop:
				conn.Close()
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		w.l.Close()
		<-done
	})
	return w
}

// bareWorld wraps ln with cfg, its Logger replaced by a recorder; the test
// accepts from it.
func bareWorld(t testing.TB, ln net.Listener, cfg *Config, setup ...func(*Listener)) *world {
	t.Helper()
	logger, logs := sockstest.NewLogger()
	var c Config
	if cfg != nil {
		c = *cfg
	}
	c.Logger = logger
	w := &world{t: t, logs: logs}
	w.l = wrap(ln, &c, func(l *Listener) {
		for _, f := range setup {
			f(l)
		}
	})
	t.Cleanup(func() { w.l.Close() })
	return w
}

// serveHTTP has srv serve the world's listener until the test's cleanup
// closes it; the world must be a bare one.
func (w *world) serveHTTP(srv *http.Server) {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(w.l) }()
	w.t.Cleanup(func() {
		srv.Close()
		<-served
	})
}

// dial connects to the listener, with a deadline that keeps a broken test
// from hanging; the test's cleanup closes the connection.
func (w *world) dial() *net.TCPConn {
	w.t.Helper()
	c, err := net.Dial("tcp", w.l.Addr().String())
	require.NoError(w.t, err)
	c.SetDeadline(time.Now().Add(sockstest.Timeout))
	w.t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// accept returns the next connection Accept returned; the test's cleanup
// closes it.
func (w *world) accept() net.Conn {
	w.t.Helper()
	select {
	case c := <-w.accepted:
		w.t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(sockstest.Timeout))
		return c
	case <-time.After(sockstest.Timeout):
		w.t.Fatal("nothing accepted in time")
		return nil
	}
}

// connect5 opens a SOCKS5 CONNECT to target through the listener.
func (w *world) connect5(target string, methods ...socks5.ClientMethod) (*net.TCPConn, socks5.Addr, error) {
	w.t.Helper()
	c := w.dial()
	a, err := socks5.ParseAddr(target)
	require.NoError(w.t, err)
	bound, _, err := socks5.ClientHandshake(context.Background(), c,
		socks5.Request{Command: socks5.CmdConnect, Addr: a}, methods...)
	return c, bound, err
}

// connect4 opens a SOCKS4 CONNECT, or a SOCKS4a one when host is a name.
func (w *world) connect4(host string, port uint16, user string) (*net.TCPConn, error) {
	w.t.Helper()
	c := w.dial()
	_, err := socks4.ClientHandshake(context.Background(), c, request4(host, port, user))
	return c, err
}

func request4(host string, port uint16, user string) socks4.Request {
	q := socks4.Request{Command: socks4.CmdConnect, Port: port, User: user}
	a, err := socks5.ParseAddr(net.JoinHostPort(host, "0"))
	if err == nil && a.Name == "" {
		q.IP = a.IP
	} else {
		q.Host = host
	}
	return q
}

// waitClosed reads c until the other side closes it, and returns what it
// read; it fails the test when that takes longer than Timeout.
func waitClosed(t testing.TB, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(sockstest.Timeout))
	var got []byte
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			require.False(t, deadline.IsTimeout(err), "connection not closed in time")
			return got
		}
	}
}
