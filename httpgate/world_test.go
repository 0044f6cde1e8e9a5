package httpgate

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// world is a gateway serving on a loopback port, the records it made, and
// its logs.
type world struct {
	t        *testing.T
	addr     string
	g        *Gateway
	logs     *sockstest.Logs
	mu       sync.Mutex
	records  []*Record
	recorded chan struct{}

	stop func()       // ends the server's context
	done <-chan error // what Serve returned
}

// newWorld serves g (with its Logger and OnRecord set by the world) on a
// Server; configure, if not nil, changes the Server first.
func newWorld(t *testing.T, g *Gateway, configure func(*Server)) *world {
	t.Helper()
	if g == nil {
		g = &Gateway{}
	}
	w := &world{t: t, g: g, recorded: make(chan struct{}, 1024)}
	g.Logger, w.logs = sockstest.NewLogger()
	g.OnRecord = func(r *Record) {
		w.mu.Lock()
		w.records = append(w.records, r)
		w.mu.Unlock()
		select {
		case w.recorded <- struct{}{}:
		default: // a test that makes many requests reads none of these
		}
	}
	s := &Server{Gateway: g}
	if configure != nil {
		configure(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	w.addr = ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	w.stop, w.done = cancel, done
	t.Cleanup(func() {
		cancel()
		select {
		case err, ok := <-w.done:
			if ok {
				require.NoError(t, err)
			}
		case <-time.After(sockstest.Timeout):
			t.Error("server did not stop")
		}
	})
	return w
}

// served waits, at most Timeout, for Serve to return (once w.stop has
// ended its context), and checks it returned nil.
func (w *world) served() {
	w.t.Helper()
	select {
	case err := <-w.done:
		require.NoError(w.t, err)
		w.done = closedDone
	case <-time.After(sockstest.Timeout):
		w.t.Fatal("Serve did not return in time")
	}
}

// serving reports whether Serve has not returned yet.
func (w *world) serving() bool {
	select {
	case err, ok := <-w.done:
		if ok {
			require.NoError(w.t, err)
			w.done = closedDone
		}
		return false
	default:
		return true
	}
}

var closedDone = func() <-chan error {
	c := make(chan error)
	close(c)
	return c
}()

// record waits for the next record the gateway makes.
func (w *world) record() *Record {
	w.t.Helper()
	select {
	case <-w.recorded:
	case <-time.After(sockstest.Timeout):
		w.t.Fatal("no record in time")
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.records[len(w.records)-1]
}

// client is an HTTP client that uses the gateway as its proxy.
func (w *world) client() *http.Client {
	u := &url.URL{Scheme: "http", Host: w.addr}
	tr := &http.Transport{Proxy: http.ProxyURL(u), DisableCompression: true}
	w.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: sockstest.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// socksClient is an HTTP client that reaches origins through the SOCKS
// proxy proxyURL ("socks5h://user:password@host:port").
func socksClient(t *testing.T, proxyURL string) *http.Client {
	t.Helper()
	d, err := dialer.Parse(proxyURL)
	require.NoError(t, err)
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	return &http.Client{Transport: tr, Timeout: sockstest.Timeout}
}

// raw sends request, as it is, on a new connection to the gateway and
// returns the connection and a reader of what comes back.
func (w *world) raw(request string) (net.Conn, *bufio.Reader) {
	w.t.Helper()
	c, err := net.Dial("tcp", w.addr)
	require.NoError(w.t, err)
	w.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(sockstest.Timeout))
	_, err = io.WriteString(c, request)
	require.NoError(w.t, err)
	return c, bufio.NewReader(c)
}

// origin is an HTTP server on loopback that counts its requests and its
// connections.
type origin struct {
	*httptest.Server
	requests atomic.Int64
	conns    atomic.Int64
	last     atomic.Pointer[http.Request]
}

func newOrigin(t *testing.T, h http.HandlerFunc) *origin {
	t.Helper()
	o := &origin{}
	o.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		o.last.Store(r)
		h(w, r)
	}))
	o.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			o.conns.Add(1)
		}
	}
	o.Start()
	t.Cleanup(o.Close)
	return o
}

// host is the origin's host:port.
func (o *origin) host() string { return strings.TrimPrefix(o.URL, "http://") }
