package listener

// Interop tests: real SOCKS clients from Debian's packages (curl, ncat,
// socat, proxychains4 running curl, privoxy forwarding) talk to the
// listener on loopback. Each checks the bytes that arrive at the far end
// and back, exactly, and reads the listener's log record to check how the
// request arrived: its version, and whether its target was a name (the
// proxy resolves it: socks4a, socks5 with a domain name) or an address
// (the client resolved it). internal/interop runs the programs; a missing
// one skips the test, or fails it under CI=true.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// clientTimeout bounds each run of a client program.
const clientTimeout = 10 * time.Second

// The account of the listeners that require a username and password.
const (
	interopUser     = "alice"
	interopPassword = "wonder:land" // a colon: curl, ncat and privoxy split user:pass at the first one
)

// interopConfig relays every CONNECT with a *net.Dialer; with auth, it
// requires interopUser's username and password, and so refuses SOCKS4.
func interopConfig(auth bool) *Config {
	cfg := &Config{Dialer: &net.Dialer{}}
	if auth {
		creds := socks5.NewCredentials(map[string]string{interopUser: interopPassword})
		cfg.Methods = []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}}
	}
	return cfg
}

// payload returns n deterministic pseudo-random bytes, different for each
// seed, followed by a marker line: a body no proxy or client mistakes for
// text, and whose every byte counts.
func payload(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x50c45a9))
	b := make([]byte, n, n+64)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return fmt.Appendf(b, "\nsockstap interop payload %d ends here\n", seed)
}

// served is what a far-end server read from and wrote to one connection.
type served struct{ read, written int64 }

// farEnd is a loopback server at the end of a tunnel, which reports what
// it read and wrote on each connection once the connection is over.
type farEnd struct {
	addr     *net.TCPAddr
	served   chan served
	accepted atomic.Int64 // connections accepted (HTTP origins only)
}

func newFarEnd() *farEnd { return &farEnd{served: make(chan served, 16)} }

func (f *farEnd) report(s served) {
	select {
	case f.served <- s:
	default: // more connections than any test makes: the test's count check fails
	}
}

// port is the far end's port, as text.
func (f *farEnd) port() string { return strconv.Itoa(f.addr.Port) }

// wait returns what the far end read and wrote on the next connection to
// end, or fails the test when none ends in time.
func (f *farEnd) wait(t *testing.T) served {
	t.Helper()
	select {
	case s := <-f.served:
		return s
	case <-time.After(sockstest.Timeout):
		t.Fatal("the far end saw no connection end in time")
		return served{}
	}
}

// httpOrigin starts an HTTP server on 127.0.0.1 that answers every GET
// with body, as application/octet-stream.
func httpOrigin(t *testing.T, body []byte) *farEnd {
	t.Helper()
	f := newFarEnd()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(rw, "GET only", http.StatusMethodNotAllowed)
			return
		}
		rw.Header().Set("Content-Type", "application/octet-stream")
		rw.Write(body)
	}))
	srv.Listener = &countingListener{Listener: srv.Listener, f: f}
	srv.Start()
	t.Cleanup(srv.Close)
	f.addr = srv.Listener.Addr().(*net.TCPAddr)
	return f
}

// countingListener hands out connections that count their bytes and
// report them to f when closed.
type countingListener struct {
	net.Listener
	f *farEnd
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.f.accepted.Add(1)
	return &countingConn{Conn: c, f: l.f}, nil
}

type countingConn struct {
	net.Conn
	f             *farEnd
	read, written atomic.Int64
	once          sync.Once
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func (c *countingConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.written.Add(int64(n))
	return n, err
}

func (c *countingConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.f.report(served{c.read.Load(), c.written.Load()}) })
	return err
}

// echoServer starts a TCP server on 127.0.0.1 that writes back what each
// connection sends, and closes once the client has half-closed.
func echoServer(t *testing.T) *farEnd {
	f := newFarEnd()
	f.addr = sockstest.Serve(t, func(c net.Conn) {
		n, _ := io.Copy(c, c)
		f.report(served{n, n})
	})
	return f
}

// digestServer starts a TCP server on 127.0.0.1 that reads each
// connection to its end (the client's half-close), then answers with the
// SHA-256 of what it read, in hex, and a newline.
func digestServer(t *testing.T) *farEnd {
	f := newFarEnd()
	f.addr = sockstest.Serve(t, func(c net.Conn) {
		h := sha256.New()
		n, _ := io.Copy(h, c)
		m, _ := io.WriteString(c, digest(h.Sum(nil)))
		f.report(served{n, int64(m)})
	})
	return f
}

func digest(sum []byte) string { return hex.EncodeToString(sum) + "\n" }

// assertSameBytes checks that got is want, byte for byte, without
// printing hundreds of KiB when it is not.
func assertSameBytes(t *testing.T, want, got []byte) {
	t.Helper()
	if bytes.Equal(want, got) {
		return
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	t.Errorf("got %d bytes, want %d; they differ from byte %d on (got % x, want % x)",
		len(got), len(want), i, got[i:min(i+16, len(got))], want[i:min(i+16, len(want))])
}

// tunnel is what a test expects the listener to log of one relayed
// connection.
type tunnel struct {
	version string // socks4, socks4a or socks5
	target  string // as logged: "localhost:80" for a name, "127.0.0.1:80" for an address
	user    string
}

// assertRelayed waits for the listener's record of a relay to want.target
// and for the far end's account of the connection, and checks that the
// request arrived as want says and that the listener moved exactly the
// bytes the far end read and wrote, one connection in all.
func assertRelayed(t *testing.T, w *world, far *farEnd, want tunnel) {
	t.Helper()
	rec := w.logs.Wait(t, func(r map[string]string) bool {
		return r["msg"] == "socks" && r["target"] == want.target
	})
	s := far.wait(t)
	assert.Equal(t, "relay", rec["decision"], "record %v", rec)
	assert.Equal(t, want.version, rec["version"], "record %v", rec)
	assert.Equal(t, want.user, rec["user"], "record %v", rec)
	assert.Equal(t, "CONNECT", rec["cmd"], "record %v", rec)
	assert.Equal(t, strconv.FormatInt(s.read, 10), rec["bytes_up"], "bytes the far end read")
	assert.Equal(t, strconv.FormatInt(s.written, 10), rec["bytes_down"], "bytes the far end wrote")
	assert.Empty(t, rec["cause"], "the relay ended cleanly")
	assert.Len(t, w.logs.All(), 1, "one SOCKS connection: %v", w.logs.All())
	assert.Empty(t, far.served, "one connection reached the far end")
}

// byName and byIP are the logged targets of a request for a far end's
// port: by the name "localhost", which the listener resolves, or by the
// address the client resolved it to.
func byName(f *farEnd) string { return "localhost:" + f.port() }
func byIP(f *farEnd) string   { return "127.0.0.1:" + f.port() }

// curlArgs are the options every curl run takes: quiet but for errors,
// failing on an HTTP error status, IPv4 only (so "localhost" is
// 127.0.0.1 wherever curl resolves it), bounded in time, and deaf to the
// environment's no_proxy, which could send it straight to "localhost"
// past the proxy it is given. A later --noproxy overrides the last.
func curlArgs(extra ...string) []string {
	return append([]string{"--silent", "--show-error", "--fail", "--ipv4", "--noproxy", "",
		"--max-time", strconv.Itoa(int(clientTimeout / time.Second))}, extra...)
}

// runCtx returns a context that bounds one client program's run and ends
// with the test.
func runCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	t.Cleanup(cancel)
	return ctx
}

func TestInteropCurl(t *testing.T) {
	interop.Need(t, "curl", "curl")
	cred := interopUser + ":" + interopPassword
	for i, tc := range []struct {
		name    string
		flag    string   // the option that names the proxy
		extra   []string // more options
		auth    bool     // the listener requires a username and password
		version string
		byName  bool   // curl sends the name; else it resolves it
		user    string // as logged
	}{
		{"socks4", "--socks4", nil, false, "socks4", false, ""},
		{"socks4 user id", "--socks4", []string{"--proxy-user", "fred:"}, false, "socks4", false, "fred"},
		{"socks4a", "--socks4a", nil, false, "socks4a", true, ""},
		{"socks5", "--socks5", nil, false, "socks5", false, ""},
		{"socks5-hostname", "--socks5-hostname", nil, false, "socks5", true, ""},
		{"socks5 user pass", "--socks5", []string{"--proxy-user", cred}, true, "socks5", false, interopUser},
		{"socks5-hostname user pass", "--socks5-hostname", []string{"--proxy-user", cred}, true, "socks5", true, interopUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := payload(uint64(i), 300<<10)
			origin := httpOrigin(t, body)
			w := newWorld(t, interopConfig(tc.auth))
			args := curlArgs(append([]string{tc.flag, w.l.Addr().String()}, tc.extra...)...)
			got := interop.Run(t, runCtx(t), "curl", append(args, "http://localhost:"+origin.port()+"/")...)
			assertSameBytes(t, body, got)
			want := tunnel{version: tc.version, target: byIP(origin), user: tc.user}
			if tc.byName {
				want.target = byName(origin)
			}
			assertRelayed(t, w, origin, want)
		})
	}
}

func TestInteropCurlRefused(t *testing.T) {
	interop.Need(t, "curl", "curl")
	for _, tc := range []struct {
		name    string
		flag    string
		extra   []string
		version string // as logged; none when the handshake failed before the request
		reason  string
	}{
		{"wrong password", "--socks5-hostname", []string{"--proxy-user", interopUser + ":looking-glass"}, "", "authentication failed"},
		{"no credentials", "--socks5-hostname", nil, "", "no acceptable authentication method"},
		{"socks4a cannot authenticate", "--socks4a", []string{"--proxy-user", interopUser + ":"}, "socks4a",
			"authentication required, and socks4a cannot authenticate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			origin := httpOrigin(t, []byte("never sent"))
			w := newWorld(t, interopConfig(true))
			args := curlArgs(append([]string{tc.flag, w.l.Addr().String()}, tc.extra...)...)
			out, err := interop.Try(t, runCtx(t), nil, "curl", append(args, "http://localhost:"+origin.port()+"/")...)
			require.Error(t, err, "curl got through")
			t.Logf("curl, as expected: %v", err)
			assert.Empty(t, out)
			rec := w.logs.Wait(t, sockstest.Key("msg", "socks"))
			assert.Equal(t, "deny", rec["decision"], "record %v", rec)
			assert.Equal(t, tc.reason, rec["reason"], "record %v", rec)
			assert.Equal(t, tc.version, rec["version"], "record %v", rec)
			for k, v := range rec {
				assert.NotContains(t, v, "looking-glass", "a password in the log, key %s", k)
			}
			assert.Zero(t, origin.accepted.Load(), "the origin was reached")
		})
	}
}

func TestInteropNcat(t *testing.T) {
	interop.Need(t, "ncat", "ncat")
	cred := interopUser + ":" + interopPassword
	for i, tc := range []struct {
		name    string
		args    []string // after --proxy
		host    string   // the target's host as ncat is given it
		auth    bool
		version string
		byName  bool
		user    string
	}{
		{"socks4", []string{"--proxy-type", "socks4"}, "127.0.0.1", false, "socks4", false, ""},
		{"socks4 user id", []string{"--proxy-type", "socks4", "--proxy-auth", "fred"}, "127.0.0.1", false, "socks4", false, "fred"},
		// Given a name, ncat's socks4 sends it (SOCKS4a) unless told to
		// resolve it itself.
		{"socks4 name", []string{"--proxy-type", "socks4"}, "localhost", false, "socks4a", true, ""},
		{"socks4 local dns", []string{"--proxy-type", "socks4", "--proxy-dns", "local"}, "localhost", false, "socks4", false, ""},
		{"socks5", []string{"--proxy-type", "socks5"}, "127.0.0.1", false, "socks5", false, ""},
		{"socks5 remote dns", []string{"--proxy-type", "socks5"}, "localhost", false, "socks5", true, ""},
		{"socks5 local dns", []string{"--proxy-type", "socks5", "--proxy-dns", "local"}, "localhost", false, "socks5", false, ""},
		{"socks5 user pass", []string{"--proxy-type", "socks5", "--proxy-auth", cred}, "localhost", true, "socks5", true, interopUser},
	} {
		t.Run(tc.name, func(t *testing.T) {
			echo := echoServer(t)
			w := newWorld(t, interopConfig(tc.auth))
			msg := payload(100+uint64(i), 200<<10)
			args := append([]string{"--proxy", w.l.Addr().String()}, tc.args...)
			// At the end of its input ncat half-closes; the listener
			// passes that on, the echo server closes once it has sent
			// everything back, and ncat exits.
			got := interop.RunInput(t, runCtx(t), msg, "ncat", append(args, tc.host, echo.port())...)
			assertSameBytes(t, msg, got)
			want := tunnel{version: tc.version, target: byIP(echo), user: tc.user}
			if tc.byName {
				want.target = byName(echo)
			}
			assertRelayed(t, w, echo, want)
		})
	}
}

func TestInteropSocat(t *testing.T) {
	interop.Need(t, "socat", "socat")
	for i, tc := range []struct {
		address string // socat's address type
		version string
		byName  bool
	}{
		{"SOCKS4", "socks4", false},
		{"SOCKS4A", "socks4a", true},
	} {
		t.Run(tc.address, func(t *testing.T) {
			far := digestServer(t)
			w := newWorld(t, interopConfig(false))
			proxy := w.l.Addr().(*net.TCPAddr)
			msg := payload(200+uint64(i), 200<<10)
			// SOCKS4:<socks-server>:<host>:<port>, the server's port as
			// an option. Given the name "localhost", SOCKS4 resolves it
			// and sends the address, SOCKS4A sends the name.
			addr := fmt.Sprintf("%s:%s:localhost:%d,socksport=%d,socksuser=sockstap",
				tc.address, proxy.IP, far.addr.Port, proxy.Port)
			// -t: after its input ends socat half-closes, and waits this
			// long for the answer (the far end closes once it has
			// answered, which ends socat at once).
			got := interop.RunInput(t, runCtx(t), msg, "socat", "-t", "5", "-", addr)
			sum := sha256.Sum256(msg)
			assert.Equal(t, digest(sum[:]), string(got))
			want := tunnel{version: tc.version, target: byIP(far), user: "sockstap"}
			if tc.byName {
				want.target = byName(far)
			}
			assertRelayed(t, w, far, want)
		})
	}
}

// madeUpName is a name no resolver knows (RFC 6761's .test), which
// hostsDialer takes for 127.0.0.1: only a proxy that is sent the name can
// reach the origin by it.
const madeUpName = "origin.sockstap.test"

// hostsDialer is a net.Dialer that takes madeUpName for 127.0.0.1, as a
// proxy's DNS would.
type hostsDialer struct{ net.Dialer }

func (d *hostsDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if host, port, err := net.SplitHostPort(addr); err == nil && host == madeUpName {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return d.Dialer.DialContext(ctx, network, addr)
}

func TestInteropProxychains(t *testing.T) {
	interop.Need(t, "proxychains4", "proxychains4")
	interop.Need(t, "curl", "curl")
	for i, tc := range []struct {
		name     string
		hop      string // socks4 or socks5
		proxyDNS bool
		host     string // the URL's host
		auth     bool
		version  string
		byName   bool
		user     string
	}{
		{"socks5", "socks5", false, "localhost", false, "socks5", false, ""},
		{"socks5 proxy_dns", "socks5", true, madeUpName, false, "socks5", true, ""},
		// proxychains4 resolves the names of /etc/hosts itself, proxy_dns
		// or not.
		{"socks5 proxy_dns localhost", "socks5", true, "localhost", false, "socks5", false, ""},
		{"socks5 user pass", "socks5", true, madeUpName, true, "socks5", true, interopUser},
		{"socks4", "socks4", false, "localhost", false, "socks4", false, ""},
		{"socks4 proxy_dns", "socks4", true, madeUpName, false, "socks4a", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := payload(300+uint64(i), 300<<10)
			origin := httpOrigin(t, body)
			cfg := interopConfig(tc.auth)
			cfg.Dialer = &hostsDialer{}
			w := newWorld(t, cfg)
			hop := interop.Proxy{Type: tc.hop, Addr: w.l.Addr().(*net.TCPAddr)}
			if tc.auth {
				hop.User, hop.Password = interopUser, interopPassword
			}
			conf := interop.ProxychainsConf(t, tc.proxyDNS, hop)
			// --noproxy "*": curl connects straight, whatever the
			// environment says, and proxychains4 takes it through the
			// chain.
			got := interop.Proxychains(t, runCtx(t), conf, "curl",
				curlArgs("--noproxy", "*", "http://"+tc.host+":"+origin.port()+"/")...)
			assertSameBytes(t, body, got)
			want := tunnel{version: tc.version, target: byIP(origin), user: tc.user}
			if tc.byName {
				want.target = madeUpName + ":" + origin.port()
			}
			assertRelayed(t, w, origin, want)
		})
	}
}

func TestInteropPrivoxy(t *testing.T) {
	interop.Need(t, "privoxy", "privoxy")
	interop.Need(t, "curl", "curl")
	for i, tc := range []struct {
		name    string
		forward func(*net.TCPAddr) string
		auth    bool
		version string
		user    string
	}{
		{"forward-socks5", func(a *net.TCPAddr) string { return interop.ForwardSOCKS5(a, "", "") }, false, "socks5", ""},
		{"forward-socks5 user pass", func(a *net.TCPAddr) string {
			return interop.ForwardSOCKS5(a, interopUser, interopPassword)
		}, true, "socks5", interopUser},
		// privoxy's SOCKS4 user id is "anonymous".
		{"forward-socks4a", interop.ForwardSOCKS4a, false, "socks4a", "anonymous"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel() // privoxy takes a while to start: start them together
			body := payload(400+uint64(i), 300<<10)
			origin := httpOrigin(t, body)
			w := newWorld(t, interopConfig(tc.auth))
			privoxy := interop.Privoxy(t, tc.forward(w.l.Addr().(*net.TCPAddr)))
			got := interop.Run(t, runCtx(t), "curl",
				curlArgs("--proxy", "http://"+privoxy.String(), "http://localhost:"+origin.port()+"/")...)
			assertSameBytes(t, body, got)
			// privoxy sends the URL's host on, for the listener to
			// resolve, with forward-socks5 as with forward-socks4a.
			assertRelayed(t, w, origin, tunnel{version: tc.version, target: byName(origin), user: tc.user})
		})
	}
}

// TestInteropCurlTapped has curl reach a name that exists nowhere through
// a listener with no dialer: the listener taps the stream, and the
// program's own http.Server answers it, with the request it carries.
func TestInteropCurlTapped(t *testing.T) {
	interop.Need(t, "curl", "curl")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	w := bareWorld(t, ln, nil)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			req, ok := FromContext(r.Context())
			if !ok {
				http.Error(rw, "not a tapped stream", http.StatusBadGateway)
				return
			}
			fmt.Fprintf(rw, "%s to %s asked %s %s%s", req.VersionString(), req.Target, r.Method, r.Host, r.URL.Path)
		}),
		ConnContext: ConnContext,
	}
	w.serveHTTP(srv)
	const name = "tapped.sockstap.test"
	for _, tc := range []struct {
		flag, version string
	}{
		{"--socks5-hostname", "socks5"},
		{"--socks4a", "socks4a"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			path := "/" + tc.version
			got := interop.Run(t, runCtx(t), "curl", curlArgs(tc.flag, w.l.Addr().String(), "http://"+name+path)...)
			assert.Equal(t, tc.version+" to "+name+":80 asked GET "+name+path, string(got))
			rec := w.logs.Wait(t, func(r map[string]string) bool {
				return r["msg"] == "socks" && r["version"] == tc.version
			})
			assert.Equal(t, "tap", rec["decision"], "record %v", rec)
			assert.Equal(t, name+":80", rec["target"], "record %v", rec)
		})
	}
}
