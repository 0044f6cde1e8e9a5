package dialer_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// wait bounds every wait in these tests.
const wait = sockstest.Timeout

// A proxyServer is one of our listeners serving SOCKS on loopback and
// relaying, with what it logs and how many connections it accepted.
type proxyServer struct {
	addr    string
	logs    *sockstest.Logs
	accepts *atomic.Int64
}

// startProxy starts a SOCKS server, listener.Serve with cfg, on
// 127.0.0.1. A nil cfg.Dialer dials directly. The test's cleanup stops it.
func startProxy(t testing.TB, cfg listener.Config) *proxyServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	logger, logs := sockstest.NewLogger()
	cfg.Logger = logger
	if cfg.Dialer == nil {
		cfg.Dialer = &net.Dialer{}
	}
	cl := &countingListener{Listener: ln, n: new(atomic.Int64)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- listener.Serve(ctx, cl, &cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(wait):
			t.Error("proxy did not stop in time")
		}
	})
	return &proxyServer{addr: ln.Addr().String(), logs: logs, accepts: cl.n}
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// record waits for the proxy's log record of the connection c, a
// connection to it that has been closed, and returns it.
func (p *proxyServer) record(t testing.TB, c net.Conn) map[string]string {
	t.Helper()
	return p.logs.Wait(t, sockstest.Key("client", c.LocalAddr().String()))
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// mapDialer dials like a net.Dialer, but knows made-up names of its own,
// such as "origin.sockstap.test": a proxy with it resolves names that the
// client cannot. Other names are not found.
type mapDialer struct {
	names map[string]string // name -> IP address
	d     net.Dialer
}

func (m *mapDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	if _, err := netip.ParseAddr(host); err != nil {
		ip, ok := m.names[strings.ToLower(host)]
		if !ok {
			return nil, &net.OpError{Op: "dial", Net: network,
				Err: &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}}
		}
		address = net.JoinHostPort(ip, port)
	}
	return m.d.DialContext(ctx, network, address)
}

// fakeResolver returns a resolver that answers from names (a name, without
// its final dot, to its addresses) and says "no such host" for any other
// name, through sockstest's DNS server in memory: tests resolve made-up
// names, and never reach a real one.
func fakeResolver(t testing.TB, names map[string][]netip.Addr) *net.Resolver {
	return sockstest.Resolver(t, func(name string) ([]netip.Addr, bool) {
		addrs, ok := names[name]
		return addrs, ok
	})
}

// pipeDialer hands out the connection of a scripted peer, once.
type pipeDialer struct {
	mu   sync.Mutex
	conn net.Conn
}

func (p *pipeDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.conn
	p.conn = nil
	if c == nil {
		return nil, io.ErrClosedPipe
	}
	return c, nil
}

// echoCheck writes a line through c and checks that it comes back.
func echoCheck(t testing.TB, c net.Conn) {
	t.Helper()
	require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
	msg := []byte("through the proxy\n")
	_, err := c.Write(msg)
	require.NoError(t, err)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	assert.Equal(t, msg, got)
}

var errConnRefused = syscall.ECONNREFUSED

var loopback4 = netip.MustParseAddr("127.0.0.1")
var loopback6 = netip.MustParseAddr("::1")

func itoa(n int) string { return strconv.Itoa(n) }
