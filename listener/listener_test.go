package listener

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/peek"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks4"
	"github.com/sockstap/sockstap/socks5"
)

func TestPlainConnections(t *testing.T) {
	t.Run("sniffed bytes are given back", func(t *testing.T) {
		w := newWorld(t, nil)
		for _, first := range []byte{0x00, 0x03, 0x06, 'G', 0x16, 0xff} {
			c := w.dial()
			msg := append([]byte{first}, "rest of the message"...)
			_, err := c.Write(msg)
			require.NoError(t, err)
			a := w.accept()
			require.Nil(t, RequestOf(a), "a plain connection carries no request")
			got := make([]byte, len(msg))
			_, err = io.ReadFull(a, got)
			require.NoError(t, err)
			assert.Equal(t, msg, got)
			_, err = a.Write([]byte("answer"))
			require.NoError(t, err)
			got = make([]byte, 6)
			_, err = io.ReadFull(c, got)
			require.NoError(t, err)
			assert.Equal(t, "answer", string(got))
		}
	})

	t.Run("server speaks first", func(t *testing.T) {
		w := newWorld(t, &Config{SniffTimeout: 20 * time.Millisecond})
		c := w.dial()
		a := w.accept() // the client has sent nothing: handed over after the sniff timeout
		_, err := a.Write([]byte("220 banner\r\n"))
		require.NoError(t, err)
		line, err := bufio.NewReader(c).ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, "220 banner\r\n", line)
	})

	t.Run("client closes before sending", func(t *testing.T) {
		w := newWorld(t, nil)
		c := w.dial()
		require.NoError(t, c.CloseWrite())
		a := w.accept()
		n, err := a.Read(make([]byte, 1))
		assert.Equal(t, 0, n)
		assert.ErrorIs(t, err, io.EOF)
	})

	t.Run("http server on the same port", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		w := bareWorld(t, ln, nil)
		srv := &http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			fmt.Fprint(rw, "plain http")
		})}
		w.serveHTTP(srv)
		resp, err := http.Get("http://" + w.l.Addr().String() + "/")
		require.NoError(t, err)
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, "plain http", string(body))
	})
}

func TestSlowHandshakeDoesNotHoldAccept(t *testing.T) {
	w := newWorld(t, nil)
	stalled := w.dial()
	_, err := stalled.Write([]byte{5}) // a SOCKS5 greeting that never goes on
	require.NoError(t, err)
	plain := w.dial()
	_, err = plain.Write([]byte("hello"))
	require.NoError(t, err)
	a := w.accept()
	got := make([]byte, 5)
	_, err = io.ReadFull(a, got)
	require.NoError(t, err)
	assert.Equal(t, "hello", string(got))
}

func TestHandshakeTimeout(t *testing.T) {
	w := newWorld(t, &Config{HandshakeTimeout: 150 * time.Millisecond})
	t.Run("silent", func(t *testing.T) {
		c := w.dial()
		_, err := c.Write([]byte{5, 1})
		require.NoError(t, err)
		start := time.Now()
		waitClosed(t, c)
		assert.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("one byte at a time", func(t *testing.T) {
		c := w.dial()
		greeting := []byte{5, 1, 0}
		request := []byte{5, 1, 0, 3, 200}
		request = append(request, strings.Repeat("x", 200)...)
		msg := append(greeting, request...)
		closed := make(chan []byte, 1)
		go func() { closed <- waitClosed(t, c) }()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		start := time.Now()
	drip:
		for _, b := range msg {
			select {
			case <-tick.C:
				if _, err := c.Write([]byte{b}); err != nil {
					break drip
				}
			case <-closed:
				break drip
			}
		}
		elapsed := time.Since(start)
		// The whole message takes over 2 s at this pace: the listener must
		// have cut it off at its 150 ms handshake deadline, long before.
		assert.Less(t, elapsed, time.Second, "the drip went on for %v", elapsed)
		w.logs.Wait(t, func(r map[string]string) bool {
			return r["decision"] == "fail" && strings.Contains(r["cause"], "timeout")
		})
	})
}

func TestTapByDefault(t *testing.T) {
	w := newWorld(t, nil) // no dialer: the program owns the port
	for _, tc := range []struct {
		name    string
		connect func() (net.Conn, error)
		version string
		target  string
		user    string
	}{
		{"socks5 ip", func() (net.Conn, error) {
			c, _, err := w.connect5("192.0.2.7:80")
			return c, err
		}, "socks5", "192.0.2.7:80", ""},
		{"socks5 name", func() (net.Conn, error) {
			c, _, err := w.connect5("example.test:8080")
			return c, err
		}, "socks5", "example.test:8080", ""},
		{"socks4", func() (net.Conn, error) { return w.connect4("192.0.2.8", 81, "fred") }, "socks4", "192.0.2.8:81", "fred"},
		{"socks4a", func() (net.Conn, error) { return w.connect4("example.test", 82, "fred") }, "socks4a", "example.test:82", "fred"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.connect()
			require.NoError(t, err)
			_, err = c.Write([]byte("inside the tunnel"))
			require.NoError(t, err)
			a := w.accept()
			r := RequestOf(a)
			require.NotNil(t, r)
			assert.Equal(t, tc.version, r.VersionString())
			assert.Equal(t, tc.target, r.Target.String())
			assert.Equal(t, tc.user, r.User)
			assert.Equal(t, socks5.CmdConnect, r.Command)
			assert.Equal(t, c.LocalAddr().String(), r.Client.String())
			got := make([]byte, len("inside the tunnel"))
			_, err = io.ReadFull(a, got)
			require.NoError(t, err)
			assert.Equal(t, "inside the tunnel", string(got))
			w.logs.Wait(t, func(rec map[string]string) bool {
				return rec["decision"] == "tap" && rec["target"] == tc.target && rec["version"] == tc.version
			})
		})
	}
}

func TestTapHTTPServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	w := bareWorld(t, ln, nil)
	srv := &http.Server{
		Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			req, ok := FromContext(r.Context())
			if !ok {
				fmt.Fprintf(rw, "plain %s", r.Host)
				return
			}
			fmt.Fprintf(rw, "tapped %s for %s via %s", r.Host, req.Target, req.VersionString())
		}),
		ConnContext: ConnContext,
	}
	w.serveHTTP(srv)
	c, _, err := w.connect5("www.example.test:80")
	require.NoError(t, err)
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: www.example.test\r\nConnection: close\r\n\r\n")
	require.NoError(t, err)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "tapped www.example.test for www.example.test:80 via socks5", string(body))
}

func TestTapDecision(t *testing.T) {
	echo := sockstest.Echo(t)
	banner := sockstest.Serve(t, func(c net.Conn) {
		io.WriteString(c, "SSH-2.0-banner\r\n")
		io.Copy(io.Discard, c)
	})
	w := newWorld(t, &Config{
		Dialer:      &net.Dialer{},
		Tap:         TapHTTP,
		PeekTimeout: 50 * time.Millisecond,
	})

	t.Run("http is tapped", func(t *testing.T) {
		c, _, err := w.connect5(echo.String())
		require.NoError(t, err)
		req := "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
		_, err = io.WriteString(c, req)
		require.NoError(t, err)
		a := w.accept()
		require.NotNil(t, RequestOf(a))
		got := make([]byte, len(req))
		_, err = io.ReadFull(a, got)
		require.NoError(t, err)
		assert.Equal(t, req, string(got), "the peeked bytes are given back")
	})

	t.Run("other protocols are relayed", func(t *testing.T) {
		c, _, err := w.connect5(echo.String())
		require.NoError(t, err)
		msg := "\x16\x03\x01 not http at all"
		_, err = io.WriteString(c, msg)
		require.NoError(t, err)
		got := make([]byte, len(msg))
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
		assert.Equal(t, msg, string(got), "echoed by the target, the peeked bytes included")
	})

	t.Run("a silent client is relayed", func(t *testing.T) {
		c, _, err := w.connect5(banner.String())
		require.NoError(t, err)
		line, err := bufio.NewReader(c).ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, "SSH-2.0-banner\r\n", line)
	})
}

// TestNoDeadlineLeftBehind checks that the deadlines the listener sets
// while it sniffs, handshakes, answers and peeks are gone once it hands a
// connection on: to Accept, or to a relay (which, with no idle timeout,
// sets none of its own).
func TestNoDeadlineLeftBehind(t *testing.T) {
	echo := sockstest.Echo(t)
	// The handshake's timeout is long enough for a loaded machine to
	// finish a handshake within it.
	timeouts := Config{
		HandshakeTimeout: 200 * time.Millisecond,
		SniffTimeout:     30 * time.Millisecond,
		PeekTimeout:      30 * time.Millisecond,
	}
	// afterDeadlines waits until any deadline the listener may have set
	// has passed.
	afterDeadlines := func() { <-time.After(timeouts.HandshakeTimeout + 50*time.Millisecond) }
	// accepted is the next connection Accept returned, with no deadline
	// of the test's own, unlike w.accept's.
	accepted := func(t *testing.T, w *world) net.Conn {
		select {
		case a := <-w.accepted:
			t.Cleanup(func() { a.Close() })
			return a
		case <-time.After(sockstest.Timeout):
			t.Fatal("nothing accepted in time")
			return nil
		}
	}
	roundTrip := func(t *testing.T, c, a net.Conn) {
		_, err := c.Write([]byte("ping"))
		require.NoError(t, err)
		got := make([]byte, 4)
		_, err = io.ReadFull(a, got)
		require.NoError(t, err, "reading the accepted connection")
		_, err = a.Write([]byte("pong"))
		require.NoError(t, err, "writing the accepted connection")
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
		assert.Equal(t, "pong", string(got))
	}
	echoes := func(t *testing.T, c net.Conn) {
		_, err := c.Write([]byte("ping"))
		require.NoError(t, err)
		got := make([]byte, 4)
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
		assert.Equal(t, "ping", string(got))
	}

	t.Run("not SOCKS", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, &timeouts)
		c := w.dial()
		_, err := c.Write([]byte("G"))
		require.NoError(t, err)
		a := accepted(t, w)
		got := make([]byte, 1)
		_, err = io.ReadFull(a, got)
		require.NoError(t, err)
		afterDeadlines()
		roundTrip(t, c, a)
	})
	t.Run("silent, not SOCKS", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, &timeouts)
		c := w.dial()
		a := accepted(t, w)
		afterDeadlines()
		roundTrip(t, c, a)
	})
	t.Run("tapped", func(t *testing.T) {
		t.Parallel()
		w := newWorld(t, &timeouts)
		c, _, err := w.connect5(echo.String())
		require.NoError(t, err)
		a := accepted(t, w)
		afterDeadlines()
		roundTrip(t, c, a)
	})
	t.Run("tapped after a peek", func(t *testing.T) {
		t.Parallel()
		cfg := timeouts
		cfg.Dialer = &net.Dialer{}
		cfg.Tap = TapHTTP
		w := newWorld(t, &cfg)
		c, _, err := w.connect5(echo.String())
		require.NoError(t, err)
		_, err = c.Write([]byte("GET "))
		require.NoError(t, err)
		a := accepted(t, w)
		got := make([]byte, 4)
		_, err = io.ReadFull(a, got)
		require.NoError(t, err)
		afterDeadlines()
		roundTrip(t, c, a)
	})
	for _, idle := range []time.Duration{-1, time.Minute} {
		t.Run(fmt.Sprintf("relayed, idle timeout %v", idle), func(t *testing.T) {
			t.Parallel()
			cfg := timeouts
			cfg.Dialer = &net.Dialer{}
			cfg.IdleTimeout = idle
			w := newWorld(t, &cfg)
			c, _, err := w.connect5(echo.String())
			require.NoError(t, err)
			afterDeadlines()
			echoes(t, c)
		})
	}
	t.Run("relayed after a peek", func(t *testing.T) {
		t.Parallel()
		cfg := timeouts
		cfg.Dialer = &net.Dialer{}
		cfg.Tap = TapHTTP
		cfg.IdleTimeout = -1
		w := newWorld(t, &cfg)
		c, _, err := w.connect5(echo.String())
		require.NoError(t, err)
		afterDeadlines()
		echoes(t, c)
	})
}

func TestTapWithDialerAndNoTapRelays(t *testing.T) {
	echo := sockstest.Echo(t)
	w := newWorld(t, &Config{Dialer: &net.Dialer{}})
	c, _, err := w.connect5(echo.String())
	require.NoError(t, err)
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\n\r\n")
	require.NoError(t, err)
	got := make([]byte, 18)
	_, err = io.ReadFull(c, got)
	require.NoError(t, err)
	assert.Equal(t, "GET / HTTP/1.1\r\n\r\n", string(got), "relayed to the echo server, not tapped")
}

// peerAddrServer answers each connection with the address it came from.
func peerAddrServer(t *testing.T) *net.TCPAddr {
	return sockstest.Serve(t, func(c net.Conn) {
		io.WriteString(c, c.RemoteAddr().String()+"\n")
		io.Copy(io.Discard, c)
	})
}

func TestRelay(t *testing.T) {
	echo := sockstest.Echo(t)
	peer := peerAddrServer(t)
	w := newWorld(t, &Config{Dialer: &net.Dialer{}})
	port := uint16(echo.Port)

	for _, tc := range []struct {
		name    string
		connect func() (net.Conn, error)
	}{
		{"socks5 ipv4", func() (net.Conn, error) {
			c, _, err := w.connect5(echo.String())
			return c, err
		}},
		{"socks5 name", func() (net.Conn, error) {
			c, _, err := w.connect5(fmt.Sprintf("localhost:%d", port))
			return c, err
		}},
		{"socks4", func() (net.Conn, error) { return w.connect4("127.0.0.1", port, "") }},
		{"socks4a", func() (net.Conn, error) { return w.connect4("localhost", port, "u") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := tc.connect()
			require.NoError(t, err)
			msg := strings.Repeat("relay me ", 1000)
			go io.WriteString(c, msg)
			got := make([]byte, len(msg))
			_, err = io.ReadFull(c, got)
			require.NoError(t, err)
			assert.Equal(t, msg, string(got))
		})
	}

	t.Run("bound address is the outbound connection's", func(t *testing.T) {
		c, bound, err := w.connect5(peer.String())
		require.NoError(t, err)
		line, err := bufio.NewReader(c).ReadString('\n')
		require.NoError(t, err)
		assert.Equal(t, strings.TrimSpace(line), bound.String())
	})

	t.Run("optimistic data", func(t *testing.T) {
		c := w.dial()
		a, err := socks5.ParseAddr(echo.String())
		require.NoError(t, err)
		msg := []byte{5, 1, 0}
		msg, err = socks5.Request{Command: socks5.CmdConnect, Addr: a}.AppendBinary(msg)
		require.NoError(t, err)
		msg = append(msg, "sent before the reply"...)
		_, err = c.Write(msg) // greeting, request and payload in one write
		require.NoError(t, err)
		_, err = socks5.ReadMethodSelection(c)
		require.NoError(t, err)
		resp, err := socks5.ReadResponse(c)
		require.NoError(t, err)
		require.Equal(t, socks5.Succeeded, resp.Reply)
		got := make([]byte, len("sent before the reply"))
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
		assert.Equal(t, "sent before the reply", string(got))
	})
}

func TestRelayHalfClose(t *testing.T) {
	// The target reads everything, then answers with how much it read.
	counter := sockstest.Serve(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		fmt.Fprintf(c, "read %d bytes", n)
	})
	w := newWorld(t, &Config{Dialer: &net.Dialer{}})
	c, _, err := w.connect5(counter.String())
	require.NoError(t, err)
	_, err = c.Write(make([]byte, 100000))
	require.NoError(t, err)
	require.NoError(t, c.CloseWrite())
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, "read 100000 bytes", string(got))
	rec := w.logs.Wait(t, sockstest.Key("decision", "relay"))
	assert.Equal(t, "100000", rec["bytes_up"])
	assert.Equal(t, "17", rec["bytes_down"])
}

// blockingDialer is a dialer whose dials wait for their context to end.
type blockingDialer struct{}

func (blockingDialer) DialContext(ctx context.Context, _, _ string) (net.Conn, error) {
	<-ctx.Done()
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: ctx.Err()}
}

func TestReplyCodes(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refused := closed.Addr().String()
	closed.Close()

	deny := func(_ context.Context, r *Request) error {
		if r.Target.Port == 7 {
			return Deny("port 7 is closed to you")
		}
		return nil
	}
	for _, tc := range []struct {
		name   string
		cfg    *Config
		target string
		code5  socks5.Reply
	}{
		{"refused", &Config{Dialer: &net.Dialer{}}, refused, socks5.ConnectionRefused},
		{"no such host", &Config{Dialer: &net.Dialer{}}, "nonexistent.invalid:80", socks5.HostUnreachable},
		{"not allowed", &Config{Dialer: &net.Dialer{}, Policy: deny}, "127.0.0.1:7", socks5.NotAllowed},
		{"timeout", &Config{Dialer: blockingDialer{}, DialTimeout: 50 * time.Millisecond}, "127.0.0.1:9", socks5.HostUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.cfg)
			c, _, err := w.connect5(tc.target)
			re, ok := errors.AsType[*socks5.ReplyError](err)
			require.True(t, ok, "socks5: %v", err)
			assert.Equal(t, tc.code5, re.Reply)
			waitClosed(t, c)

			host, p, err := net.SplitHostPort(tc.target)
			require.NoError(t, err)
			var port uint16
			fmt.Sscan(p, &port)
			_, err = w.connect4(host, port, "")
			re4, ok := errors.AsType[*socks4.ReplyError](err)
			require.True(t, ok, "socks4: %v", err)
			assert.Equal(t, socks4.Rejected, re4.Reply)
			rec := w.logs.Wait(t, sockstest.Key("reply", tc.code5.String()))
			assert.Equal(t, tc.target, rec["target"])
		})
	}
}

// TestPolicyAtDialTime checks that a relay through a *net.Dialer asks the
// program's policy again about the address it connects to: for an IP
// address as for a name, which only then has an address to judge.
func TestPolicyAtDialTime(t *testing.T) {
	echo := sockstest.Echo(t)
	var mu sync.Mutex
	var asked []netip.Addr // DialedIP of each call
	policy := func(_ context.Context, r *Request) error {
		mu.Lock()
		asked = append(asked, r.DialedIP)
		mu.Unlock()
		if r.DialedIP.IsLoopback() && r.Target.Name != "" {
			return Deny("a name that resolves to loopback")
		}
		return nil
	}
	w := newWorld(t, &Config{Dialer: &net.Dialer{}, Policy: policy})
	calls := func() []netip.Addr {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(asked)
	}

	t.Run("IP address", func(t *testing.T) {
		c, _, err := w.connect5(echo.String())
		require.NoError(t, err)
		c.Close()
		want := []netip.Addr{{}, netip.MustParseAddr("127.0.0.1")}
		assert.Equal(t, want, calls(), "asked when the request came, then when dialing")
	})
	mu.Lock()
	asked = nil
	mu.Unlock()
	t.Run("name", func(t *testing.T) {
		_, _, err := w.connect5(net.JoinHostPort("localhost", strconv.Itoa(echo.Port)))
		re, ok := errors.AsType[*socks5.ReplyError](err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, socks5.NotAllowed, re.Reply)
		got := calls()
		require.GreaterOrEqual(t, len(got), 2)
		assert.False(t, got[0].IsValid(), "no address yet when the request came")
		assert.True(t, got[1].IsLoopback(), "the address dialed: %v", got[1])
	})
}

func TestCommandsOtherThanConnect(t *testing.T) {
	w := newWorld(t, &Config{Dialer: &net.Dialer{}})
	for _, cmd := range []socks5.Command{socks5.CmdBind, socks5.CmdUDPAssociate, socks5.CmdResolve, socks5.CmdResolvePTR, 0x09} {
		t.Run(cmd.String(), func(t *testing.T) {
			c := w.dial()
			_, _, err := socks5.ClientHandshake(context.Background(), c, socks5.Request{
				Command: cmd, Addr: socks5.Addr{IP: netip.MustParseAddr("127.0.0.1"), Port: 1}})
			re, ok := errors.AsType[*socks5.ReplyError](err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, socks5.CommandNotSupported, re.Reply)
		})
	}
	t.Run("socks4 BIND", func(t *testing.T) {
		c := w.dial()
		_, err := socks4.ClientHandshake(context.Background(), c, socks4.Request{
			Command: socks4.CmdBind, IP: netip.MustParseAddr("127.0.0.1"), Port: 1})
		re, ok := errors.AsType[*socks4.ReplyError](err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, socks4.Rejected, re.Reply)
	})
}

func TestAuthentication(t *testing.T) {
	echo := sockstest.Echo(t)
	creds := socks5.NewCredentials(map[string]string{"alice": "wonderland"})
	w := newWorld(t, &Config{
		Dialer:  &net.Dialer{},
		Methods: []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}},
	})

	t.Run("right password", func(t *testing.T) {
		c, _, err := w.connect5(echo.String(), socks5.UserPassClient{Username: "alice", Password: "wonderland"})
		require.NoError(t, err)
		_, err = c.Write([]byte("ping"))
		require.NoError(t, err)
		got := make([]byte, 4)
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
		assert.Equal(t, "ping", string(got))
		require.NoError(t, c.CloseWrite())
		waitClosed(t, c)
		rec := w.logs.Wait(t, sockstest.Key("user", "alice"))
		assert.Equal(t, "relay", rec["decision"])
	})
	t.Run("wrong password", func(t *testing.T) {
		_, _, err := w.connect5(echo.String(), socks5.UserPassClient{Username: "alice", Password: "looking-glass"})
		require.ErrorIs(t, err, socks5.ErrAuthFailed)
		w.logs.Wait(t, sockstest.Key("reason", "authentication failed"))
	})
	t.Run("no auth offered", func(t *testing.T) {
		_, _, err := w.connect5(echo.String())
		require.ErrorIs(t, err, socks5.ErrNoAcceptableMethod)
	})
	t.Run("socks4 cannot authenticate", func(t *testing.T) {
		_, err := w.connect4("127.0.0.1", uint16(echo.Port), "alice")
		re, ok := errors.AsType[*socks4.ReplyError](err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, socks4.Rejected, re.Reply)
	})
	t.Run("no credential is logged", func(t *testing.T) {
		for _, rec := range w.logs.All() {
			for k, v := range rec {
				assert.NotContains(t, v, "wonderland", "key %s", k)
				assert.NotContains(t, v, "looking-glass", "key %s", k)
			}
		}
	})
}

// waitingMethod is an authentication method that reads nothing and waits
// for its context to end, as one that asks a slow service would.
type waitingMethod struct{ deadline chan bool }

func (waitingMethod) Method() socks5.AuthMethod { return 0x80 }

func (m waitingMethod) Verify(ctx context.Context, _ io.ReadWriter) (socks5.AuthResult, error) {
	_, ok := ctx.Deadline()
	m.deadline <- ok
	<-ctx.Done()
	return socks5.AuthResult{}, ctx.Err()
}

func (waitingMethod) Authenticate(_ context.Context, rw io.ReadWriter) (io.ReadWriter, error) {
	return rw, nil
}

func TestMethodContextHasHandshakeDeadline(t *testing.T) {
	m := waitingMethod{deadline: make(chan bool, 1)}
	w := newWorld(t, &Config{
		HandshakeTimeout: 100 * time.Millisecond,
		Methods:          []socks5.ServerMethod{socks5.NoAuth{}, m},
	})
	start := time.Now()
	c, _, err := w.connect5("127.0.0.1:1", m)
	require.Error(t, err)
	assert.True(t, <-m.deadline, "the method's context has a deadline")
	waitClosed(t, c)
	assert.Less(t, time.Since(start), 5*time.Second)
	rec := w.logs.Wait(t, sockstest.Key("decision", "fail"))
	assert.Contains(t, rec["cause"], context.DeadlineExceeded.Error())
}

// remoteListener is a listener whose connections claim to come from addr.
type remoteListener struct {
	net.Listener
	addr net.Addr
}

func (l *remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &remoteConn{c.(*net.TCPConn), l.addr}, nil
}

type remoteConn struct {
	*net.TCPConn
	addr net.Addr
}

func (c *remoteConn) RemoteAddr() net.Addr { return c.addr }

func TestSafeDefaults(t *testing.T) {
	echo := sockstest.Echo(t)
	faraway := &net.TCPAddr{IP: net.ParseIP("198.51.100.9"), Port: 40000}
	far := func(t *testing.T, cfg *Config) *world {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		return wrapWorld(t, &remoteListener{ln, faraway}, cfg)
	}

	t.Run("no auth: clients elsewhere are refused", func(t *testing.T) {
		w := far(t, &Config{Dialer: &net.Dialer{}})
		_, _, err := w.connect5("192.0.2.1:80")
		re, ok := errors.AsType[*socks5.ReplyError](err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, socks5.NotAllowed, re.Reply)
		w.logs.Wait(t, sockstest.Key("reason", "unauthenticated client not on loopback"))
	})

	creds := socks5.NewCredentials(map[string]string{"bob": "secret"})
	auth := []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}}
	bob := socks5.UserPassClient{Username: "bob", Password: "secret"}

	t.Run("authenticated clients elsewhere cannot reach loopback", func(t *testing.T) {
		w := far(t, &Config{Dialer: &net.Dialer{}, Methods: auth})
		for _, target := range []string{echo.String(), fmt.Sprintf("[::ffff:127.0.0.1]:%d", echo.Port), "169.254.169.254:80"} {
			_, _, err := w.connect5(target, bob)
			re, ok := errors.AsType[*socks5.ReplyError](err)
			require.True(t, ok, "%s: %v", target, err)
			assert.Equal(t, socks5.NotAllowed, re.Reply, target)
		}
	})

	t.Run("a name that resolves to loopback is checked at dial time", func(t *testing.T) {
		w := far(t, &Config{Dialer: &net.Dialer{}, Methods: auth})
		_, _, err := w.connect5(fmt.Sprintf("localhost:%d", echo.Port), bob)
		re, ok := errors.AsType[*socks5.ReplyError](err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, socks5.NotAllowed, re.Reply)
		rec := w.logs.Wait(t, sockstest.Key("decision", "deny"))
		assert.Contains(t, rec["reason"], "only for clients on loopback")
	})

	t.Run("a rule opens loopback", func(t *testing.T) {
		w := far(t, &Config{Dialer: &net.Dialer{}, Policy: Rules{
			{Allow: true, Dests: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
		}.Policy})
		c, _, err := w.connect5(echo.String())
		require.NoError(t, err)
		_, err = c.Write([]byte("x"))
		require.NoError(t, err)
		got := make([]byte, 1)
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
	})
}

func TestLimits(t *testing.T) {
	t.Run("handshakes overall", func(t *testing.T) {
		w := newWorld(t, &Config{MaxHandshakes: 1})
		first := w.dial()
		_, err := first.Write([]byte{5}) // stalls in its handshake
		require.NoError(t, err)
		require.Eventually(t, func() bool { return w.l.handshakeCount() == 1 }, sockstest.Timeout, time.Millisecond)
		second := w.dial()
		_, err = second.Write([]byte{5, 1, 0})
		require.NoError(t, err)
		assert.Empty(t, waitClosed(t, first), "the stalled handshake is shed, unanswered")
		got := make([]byte, 2)
		_, err = io.ReadFull(second, got)
		require.NoError(t, err)
		assert.Equal(t, []byte{5, 0}, got, "the new one is served")
		w.logs.Wait(t, sockstest.Key("decision", "drop"))
	})
	t.Run("handshakes per client", func(t *testing.T) {
		w := newWorld(t, &Config{MaxHandshakesPerClient: 2, HandshakeGrace: time.Nanosecond})
		var stalled []*net.TCPConn
		for range 3 {
			c := w.dial()
			_, err := c.Write([]byte{4})
			require.NoError(t, err)
			stalled = append(stalled, c)
			require.Eventually(t, func() bool { return w.l.handshakeCount() == len(stalled) }, sockstest.Timeout, time.Millisecond)
		}
		fourth := w.dial()
		_, err := fourth.Write([]byte{5, 1, 0})
		require.NoError(t, err)
		assert.Empty(t, waitClosed(t, stalled[0]), "three slow ones: the first is shed")
		got := make([]byte, 2)
		_, err = io.ReadFull(fourth, got)
		require.NoError(t, err)
		assert.Equal(t, []byte{5, 0}, got)
	})
	t.Run("connections overall", func(t *testing.T) {
		w := newWorld(t, &Config{MaxConns: 1, SniffTimeout: time.Minute})
		first := w.dial()
		require.Eventually(t, func() bool { return w.l.connCount() == 1 }, sockstest.Timeout, time.Millisecond)
		second := w.dial()
		assert.Empty(t, waitClosed(t, second))
		_, err := first.Write([]byte("still served"))
		require.NoError(t, err)
		a := w.accept()
		got := make([]byte, 12)
		_, err = io.ReadFull(a, got)
		require.NoError(t, err)
	})
}

func (l *Listener) handshakeCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hs.n
}

func (l *Listener) connCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns)
}

// flakyListener fails its first accepts with EMFILE.
type flakyListener struct {
	net.Listener
	failures int
	calls    int
	times    []time.Time
}

func (l *flakyListener) Accept() (net.Conn, error) {
	l.calls++
	l.times = append(l.times, time.Now())
	if l.calls <= l.failures {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}
	}
	return l.Listener.Accept()
}

func TestAcceptSurvivesEMFILE(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fl := &flakyListener{Listener: ln, failures: 4}
	w := wrapWorld(t, fl, nil)
	c := w.dial()
	_, err = c.Write([]byte("after EMFILE"))
	require.NoError(t, err)
	a := w.accept()
	got := make([]byte, 12)
	_, err = io.ReadFull(a, got)
	require.NoError(t, err)
	assert.Equal(t, "after EMFILE", string(got))
	w.l.Close()
	// Four failures, then the connection: five calls, backing off 5, 10,
	// 20 and 40 ms in between, not spinning.
	require.GreaterOrEqual(t, fl.calls, 5)
	assert.GreaterOrEqual(t, fl.times[4].Sub(fl.times[0]), 75*time.Millisecond)
	w.logs.Wait(t, sockstest.Key("msg", "socks accept"))
}

func TestAcceptAfterClose(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	l := Wrap(ln, nil)
	require.NoError(t, l.Close())
	_, err = l.Accept()
	assert.ErrorIs(t, err, net.ErrClosed)
	_, err = net.Dial("tcp", ln.Addr().String())
	assert.Error(t, err, "the wrapped listener is closed")
}

// TestAcceptAfterStopPrefersTheStop checks that once Close or Shutdown has
// begun, Accept returns net.ErrClosed even when a connection is ready for
// it: select chooses at random between ready cases, so Accept must look
// at the stop first. Each round hands Accept a connection from a goroutine
// that, unlike the listener's own, did not see the stop.
func TestAcceptAfterStopPrefersTheStop(t *testing.T) {
	for _, stop := range []struct {
		name string
		stop func(*Listener) error
	}{
		{"Close", (*Listener).Close},
		{"Shutdown", func(l *Listener) error { return l.Shutdown(context.Background()) }},
	} {
		t.Run(stop.name, func(t *testing.T) {
			for i := range 100 {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				require.NoError(t, err)
				l := Wrap(ln, nil)
				c1, c2 := net.Pipe()
				done := make(chan struct{})
				handed := make(chan bool, 1)
				go func() {
					select {
					case l.ready <- &tracked{conn: c1, out: &Conn{Conn: peek.NewConn(c1, nil)}}:
						handed <- true
					case <-done:
						handed <- false
					}
				}()
				require.NoError(t, stop.stop(l))
				got, err := l.Accept()
				close(done)
				if <-handed {
					require.NotNil(t, got, "round %d: the connection went somewhere", i)
				}
				if got != nil {
					got.Close()
				}
				c1.Close()
				c2.Close()
				require.ErrorIs(t, err, net.ErrClosed, "round %d: Accept after %s", i, stop.name)
			}
		})
	}
}

func TestShutdown(t *testing.T) {
	echo := sockstest.Echo(t)

	t.Run("drains relays", func(t *testing.T) {
		w := newWorld(t, &Config{Dialer: &net.Dialer{}})
		c, _, err := w.connect5(echo.String())
		require.NoError(t, err)
		idle := w.dial()
		_, err = idle.Write([]byte{5})
		require.NoError(t, err)
		require.Eventually(t, func() bool { return w.l.handshakeCount() == 1 }, sockstest.Timeout, time.Millisecond)

		shut := make(chan error, 1)
		go func() { shut <- w.l.Shutdown(context.Background()) }()
		assert.Empty(t, waitClosed(t, idle), "a handshake is closed at once")
		_, err = w.l.Accept()
		assert.ErrorIs(t, err, net.ErrClosed)

		_, err = c.Write([]byte("still relayed"))
		require.NoError(t, err)
		got := make([]byte, 13)
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
		assert.Equal(t, "still relayed", string(got))
		require.NoError(t, c.CloseWrite())
		waitClosed(t, c)
		select {
		case err := <-shut:
			assert.NoError(t, err)
		case <-time.After(sockstest.Timeout):
			t.Fatal("Shutdown did not return once the relay ended")
		}
	})

	t.Run("a relay is one before its client is answered", func(t *testing.T) {
		// Shutdown leaves relays open: a client told "succeeded" must not
		// find its connection closed by a Shutdown that came between the
		// reply and the relay's start.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		var l atomic.Pointer[Listener]
		relays := make(chan int, 1)
		hooked := &writeHookListener{Listener: ln, hook: func(p []byte) {
			if len(p) > 2 && p[0] == 5 && p[1] == byte(socks5.Succeeded) { // the reply, not the method selection
				relays <- l.Load().relayCount()
			}
		}}
		w := wrapWorld(t, hooked, &Config{Dialer: &net.Dialer{}})
		l.Store(w.l)
		_, _, err = w.connect5(echo.String())
		require.NoError(t, err)
		select {
		case n := <-relays:
			assert.Equal(t, 1, n, "relays held when the success reply was written")
		case <-time.After(sockstest.Timeout):
			t.Fatal("no reply written")
		}
	})

	t.Run("context ends first", func(t *testing.T) {
		w := newWorld(t, &Config{Dialer: &net.Dialer{}})
		c, _, err := w.connect5(echo.String())
		require.NoError(t, err)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		assert.ErrorIs(t, w.l.Shutdown(ctx), context.DeadlineExceeded)
		waitClosed(t, c)
		rec := w.logs.Wait(t, sockstest.Key("decision", "relay"))
		assert.Equal(t, context.Canceled.Error(), rec["cause"], "the relay was cut short by Shutdown")
	})
}

func (l *Listener) relayCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for t := range l.conns {
		if t.relaying {
			n++
		}
	}
	return n
}

// writeHookListener hands out connections that call hook with what is
// about to be written, before each Write.
type writeHookListener struct {
	net.Listener
	hook func(p []byte)
}

func (l *writeHookListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &writeHookConn{c.(*net.TCPConn), l.hook}, nil
}

type writeHookConn struct {
	*net.TCPConn
	hook func(p []byte)
}

func (c *writeHookConn) Write(p []byte) (int, error) {
	c.hook(p)
	return c.TCPConn.Write(p)
}

// TestPanicIsContained has the policy panic on a connection's goroutine,
// for a connection of known address and for one whose wrapper does not
// know it: the panic is logged, the connection closed, and the listener
// goes on.
func TestPanicIsContained(t *testing.T) {
	echo := sockstest.Echo(t)
	cfg := &Config{Dialer: &net.Dialer{}, Policy: func(_ context.Context, r *Request) error {
		if r.Target.Port == 1 {
			panic("policy bug")
		}
		return nil
	}}
	for _, tc := range []struct {
		name   string
		world  func(*testing.T, *Config) *world
		client func(net.Conn) string
	}{
		{"known address", func(t *testing.T, c *Config) *world { return newWorld(t, c) }, func(c net.Conn) string { return c.LocalAddr().String() }},
		{"nil address", nilWorld, func(net.Conn) string { return "unknown" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := tc.world(t, cfg)
			c, _, err := w.connect5("127.0.0.1:1")
			require.Error(t, err)
			waitClosed(t, c)
			rec := w.logs.Wait(t, sockstest.Key("msg", "socks panic"))
			assert.Equal(t, "policy bug", rec["cause"])
			assert.Equal(t, tc.client(c), rec["client"])
			rec = w.logs.Wait(t, sockstest.Key("msg", "socks"))
			assert.Equal(t, "fail", rec["decision"], "the session ends with its record")

			c, _, err = w.connect5(echo.String())
			require.NoError(t, err, "the listener goes on serving")
			_, err = c.Write([]byte("ok"))
			require.NoError(t, err)
		})
	}
}

func TestPolicyChoosesTheCode(t *testing.T) {
	w := newWorld(t, &Config{Dialer: &net.Dialer{}, Policy: func(_ context.Context, r *Request) error {
		if r.Version == 4 {
			return &socks4.ReplyError{Reply: socks4.IdentdMismatch}
		}
		return &socks5.ReplyError{Reply: socks5.NetworkUnreachable, Err: errors.New("no route there")}
	}})
	_, _, err := w.connect5("192.0.2.1:80")
	re, ok := errors.AsType[*socks5.ReplyError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, socks5.NetworkUnreachable, re.Reply)
	rec := w.logs.Wait(t, sockstest.Key("version", "socks5"))
	assert.Equal(t, "deny", rec["decision"])
	assert.Contains(t, rec["reason"], "no route there")

	_, err = w.connect4("192.0.2.1", 80, "fred")
	re4, ok := errors.AsType[*socks4.ReplyError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, socks4.IdentdMismatch, re4.Reply)
}
