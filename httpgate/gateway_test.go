package httpgate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

func TestForwardProxy(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Origin", "yes")
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	})
	w := newWorld(t, &Gateway{Via: "gw"}, nil)
	resp, err := w.client().Get(o.URL + "/page?q=1")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "hello /page", string(body))
	assert.Equal(t, "yes", resp.Header.Get("X-Origin"))
	assert.Equal(t, "1.1 gw", resp.Header.Get("Via"))
	assert.Equal(t, "1.1 gw", o.last.Load().Header.Get("Via"))

	rec := w.record()
	assert.Equal(t, ArrivalProxy, rec.Arrival)
	assert.Equal(t, "GET", rec.Method)
	assert.Equal(t, o.URL+"/page?q=1", rec.URL)
	assert.Equal(t, o.host(), rec.Target)
	assert.Equal(t, 200, rec.Status)
	assert.Equal(t, int64(len("hello /page")), rec.BytesDown)
	assert.Equal(t, CacheNone, rec.Cache)
	logged := w.logs.Wait(t, func(m map[string]string) bool { return m["msg"] == "http" })
	assert.Equal(t, "http-proxy", logged["arrival"])
	assert.Equal(t, "200", logged["status"])
	assert.Equal(t, o.URL+"/page?q=1", logged["url"])
}

// A request on a tapped SOCKS stream goes to the SOCKS target, whatever its
// Host field says, and the Host field goes on as it came.
func TestTappedGoesToSOCKSTarget(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "host %s", r.Host)
	})
	for _, scheme := range []string{"socks4a", "socks5h", "socks4", "socks5"} {
		t.Run(scheme, func(t *testing.T) {
			w := newWorld(t, &Gateway{Via: "gw"}, nil)
			d, err := dialer.Parse(scheme + "://" + w.addr)
			require.NoError(t, err)
			target := o.host()
			if strings.HasSuffix(scheme, "a") || strings.HasSuffix(scheme, "h") {
				target = "localhost:" + o.URL[strings.LastIndex(o.URL, ":")+1:]
			}
			c, err := d.DialContext(context.Background(), "tcp", target)
			require.NoError(t, err)
			defer c.Close()
			c.SetDeadline(time.Now().Add(sockstest.Timeout))
			_, err = io.WriteString(c, "GET /x HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n")
			require.NoError(t, err)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			require.NoError(t, err)
			body, _ := io.ReadAll(resp.Body)
			assert.Equal(t, "host elsewhere.example", string(body))
			assert.Equal(t, "1.1 gw", resp.Header.Get("Via"))
			rec := w.record()
			assert.Equal(t, strings.TrimSuffix(scheme, "h"), rec.Arrival.String())
			assert.Equal(t, target, rec.Target)
			assert.Equal(t, "http://elsewhere.example/x", rec.URL)
		})
	}
}

func TestHopByHopRemoved(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Link", "</style.css>; rel=preload")
		h.Set("Connection", "X-Hop-103")
		h.Set("X-Hop-103", "early")
		w.WriteHeader(http.StatusEarlyHints)
		clear(h)
		h.Set("Connection", "X-Resp-Hop, Keep-Alive")
		h.Set("X-Resp-Hop", "1")
		h.Set("Keep-Alive", "timeout=5")
		h.Set("Proxy-Authenticate", "Basic")
		h.Set("X-End-To-End", "kept")
		for k, v := range r.Header {
			h["Got-"+k] = v
		}
		w.WriteHeader(200)
	})
	w := newWorld(t, nil, nil)
	req := "GET " + o.URL + "/ HTTP/1.1\r\nHost: " + o.host() + "\r\n" +
		"Connection: keep-alive, X-Req-Hop\r\nX-Req-Hop: 1\r\nKeep-Alive: 300\r\n" +
		"Proxy-Connection: keep-alive\r\nProxy-Authorization: Basic Zm9vOmJhcg==\r\n" +
		"TE: gzip\r\nUpgrade-Insecure-Requests: 1\r\nX-End-To-End: kept\r\n\r\n"
	_, br := w.raw(req)
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	require.NoError(t, err)
	require.Equal(t, "HTTP/1.1 103 Early Hints", line)
	early, err := tp.ReadMIMEHeader()
	require.NoError(t, err)
	assert.Equal(t, "</style.css>; rel=preload", early.Get("Link"))
	assert.Empty(t, early.Get("X-Hop-103"), "a field the 1xx's Connection names")
	assert.Empty(t, early.Get("Connection"))
	assert.NotEmpty(t, early.Get("Via"))

	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	assert.Empty(t, resp.Header.Get("X-Resp-Hop"))
	assert.Empty(t, resp.Header.Get("Keep-Alive"))
	assert.Empty(t, resp.Header.Get("Proxy-Authenticate"))
	assert.Equal(t, "kept", resp.Header.Get("X-End-To-End"))
	for _, f := range []string{"Got-X-Req-Hop", "Got-Keep-Alive", "Got-Proxy-Connection", "Got-Proxy-Authorization", "Got-Te", "Got-Connection"} {
		assert.Empty(t, resp.Header.Get(f), f)
	}
	assert.Equal(t, "kept", resp.Header.Get("Got-X-End-To-End"))
	assert.Equal(t, "1", resp.Header.Get("Got-Upgrade-Insecure-Requests"))
}

func TestViaLoopRefused(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {})
	w := newWorld(t, &Gateway{Via: "gw"}, nil)
	_, br := w.raw("GET " + o.URL + "/ HTTP/1.1\r\nHost: " + o.host() + "\r\nVia: 1.1 other, 1.1 GW\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusLoopDetected, resp.StatusCode)
	assert.Zero(t, o.requests.Load())
}

// A request whose framing is ambiguous is answered 400 and never reaches
// the origin; net/http refuses some of these shapes itself, the framing
// check the rest.
func TestSmugglingRefused(t *testing.T) {
	cases := []struct {
		name, head string
		want       int
	}{
		{"TE and CL", "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400},
		{"CL and TE", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", 400},
		{"conflicting CL", "Content-Length: 5\r\nContent-Length: 6\r\n", 400},
		{"CL list", "Content-Length: 5, 6\r\n", 400},
		{"TE not ending in chunked", "Transfer-Encoding: chunked, gzip\r\n", 400},
		{"TE gzip", "Transfer-Encoding: gzip\r\n", 400},
		{"TE folded", "Transfer-Encoding: gzip,\r\n chunked\r\nContent-Length: 5\r\n", 400},
		{"TE twice", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n", 400},
		{"space before colon", "Transfer-Encoding : chunked\r\n", 400},
		{"CL not a number", "Content-Length: +5\r\n", 400},
	}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, nil, nil)
			c, br := w.raw("POST " + o.URL + "/ HTTP/1.1\r\nHost: " + o.host() + "\r\n" + tc.head + "\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			assert.Equal(t, tc.want, resp.StatusCode)
			io.Copy(io.Discard, resp.Body)
			// The connection ends after the refusal.
			c.SetReadDeadline(time.Now().Add(sockstest.Timeout))
			_, err = br.ReadByte()
			assert.ErrorIs(t, err, io.EOF)
			assert.Zero(t, o.requests.Load())
		})
	}
	t.Run("HTTP/1.0 with TE", func(t *testing.T) {
		w := newWorld(t, nil, nil)
		_, br := w.raw("POST " + o.URL + "/ HTTP/1.0\r\nHost: " + o.host() + "\r\nTransfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		assert.Equal(t, 400, resp.StatusCode)
		assert.Zero(t, o.requests.Load())
	})
	t.Run("pipelined after a good request", func(t *testing.T) {
		w := newWorld(t, nil, nil)
		_, br := w.raw("GET " + o.URL + "/ok HTTP/1.1\r\nHost: " + o.host() + "\r\n\r\n" +
			"POST " + o.URL + "/ HTTP/1.1\r\nHost: " + o.host() + "\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		assert.Equal(t, 200, resp.StatusCode)
		io.Copy(io.Discard, resp.Body)
		resp, err = http.ReadResponse(br, nil)
		require.NoError(t, err)
		assert.Equal(t, 400, resp.StatusCode)
		assert.Equal(t, int64(1), o.requests.Load())
	})
	t.Run("chunked body is fine", func(t *testing.T) {
		o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			fmt.Fprintf(w, "got %q", b)
		})
		w := newWorld(t, nil, nil)
		_, br := w.raw("POST " + o.URL + "/ HTTP/1.1\r\nHost: " + o.host() + "\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n" +
			"GET " + o.URL + "/two HTTP/1.1\r\nHost: " + o.host() + "\r\n\r\n")
		for _, want := range []string{`got "abc"`, `got ""`} {
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			assert.Equal(t, want, string(b))
		}
	})
}

func TestExpectContinue(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			w.WriteHeader(http.StatusExpectationFailed)
			return
		}
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "got %s", b)
	})
	w := newWorld(t, nil, nil)
	t.Run("continue", func(t *testing.T) {
		c, br := w.raw("PUT " + o.URL + "/ HTTP/1.1\r\nHost: " + o.host() + "\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		tp := textproto.NewReader(br)
		line, err := tp.ReadLine()
		require.NoError(t, err)
		require.Equal(t, "HTTP/1.1 100 Continue", line)
		_, err = tp.ReadMIMEHeader()
		require.NoError(t, err)
		_, err = io.WriteString(c, "hello")
		require.NoError(t, err)
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		assert.Equal(t, 200, resp.StatusCode, "one 100 Continue, then the final response")
		b, _ := io.ReadAll(resp.Body)
		assert.Equal(t, "got hello", string(b))
	})
	t.Run("final status instead", func(t *testing.T) {
		_, br := w.raw("PUT " + o.URL + "/refuse HTTP/1.1\r\nHost: " + o.host() + "\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusExpectationFailed, resp.StatusCode)
	})
}

func TestTrailers(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("Got-Request-Trailer", r.Trailer.Get("X-Req-Sum"))
		io.WriteString(w, "body")
		w.Header().Set("X-Sum", "42")
	})
	w := newWorld(t, nil, nil)
	_, br := w.raw("POST " + o.URL + "/ HTTP/1.1\r\nHost: " + o.host() + "\r\nTE: trailers\r\nTrailer: X-Req-Sum\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nX-Req-Sum: 7\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, "body", string(b))
	assert.Equal(t, "42", resp.Trailer.Get("X-Sum"))
	assert.Equal(t, "7", resp.Header.Get("Got-Request-Trailer"))
}

func TestHTTP10Client(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "old")
	})
	w := newWorld(t, nil, nil)
	c, br := w.raw("GET " + o.URL + "/ HTTP/1.0\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	assert.Equal(t, "old", string(b))
	assert.Equal(t, "1.0 "+w.g.state().via, o.last.Load().Header.Get("Via"))
	c.SetReadDeadline(time.Now().Add(sockstest.Timeout))
	_, err = br.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "an HTTP/1.0 request without keep-alive ends its connection")

	// With keep-alive and a length, the connection stays.
	c, br = w.raw("GET " + o.URL + "/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	for range 2 {
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		assert.Equal(t, "old", string(b))
		assert.Equal(t, "keep-alive", resp.Header.Get("Connection"))
		io.WriteString(c, "GET "+o.URL+"/ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	}
}

// A response whose body ends with its connection reaches the client the
// same way, and the client's connection ends after it.
func TestCloseDelimitedStays(t *testing.T) {
	body := strings.Repeat("x", 5000)
	o := sockstest.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n"+body)
	})
	w := newWorld(t, nil, nil)
	c, br := w.raw("GET http://" + o.String() + "/ HTTP/1.1\r\nHost: " + o.String() + "\r\n\r\n")
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	require.NoError(t, err)
	assert.Equal(t, "HTTP/1.1 200 OK", line)
	h, err := tp.ReadMIMEHeader()
	require.NoError(t, err)
	assert.Empty(t, h.Get("Transfer-Encoding"), "not re-framed as chunked")
	assert.Empty(t, h.Get("Content-Length"))
	assert.Equal(t, "close", h.Get("Connection"))
	c.SetReadDeadline(time.Now().Add(sockstest.Timeout))
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, body, string(rest))
}

func TestConnect(t *testing.T) {
	echo := sockstest.Echo(t)
	w := newWorld(t, nil, nil)
	c, br := w.raw("CONNECT " + echo.String() + " HTTP/1.1\r\nHost: " + echo.String() + "\r\n\r\nearly")
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	_, err = io.WriteString(c, " bytes")
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	got, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, "early bytes", string(got), "half-close reaches the target, and its answer comes back")
	rec := w.record()
	assert.Equal(t, ArrivalConnect, rec.Arrival)
	assert.Equal(t, int64(len("early bytes")), rec.BytesUp)
	assert.Equal(t, int64(len("early bytes")), rec.BytesDown)
}

// An upgrade (here a WebSocket handshake) is passed through, and the
// connection relayed both ways with half-close.
func TestUpgrade(t *testing.T) {
	o := sockstest.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if !hasToken(req.Header["Connection"], "upgrade") || req.Header.Get("Upgrade") != "websocket" {
			fmt.Fprintf(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nX-Got: %q\r\n\r\n", req.Header)
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: x\r\n\r\nserver-first ")
		b, _ := io.ReadAll(br)
		c.Write(b)
	})
	w := newWorld(t, nil, nil)
	c, br := w.raw("GET http://" + o.String() + "/ws HTTP/1.1\r\nHost: " + o.String() + "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	require.Equal(t, 101, resp.StatusCode, resp.Header.Get("X-Got"))
	assert.Equal(t, "websocket", resp.Header.Get("Upgrade"))
	assert.Equal(t, "x", resp.Header.Get("Sec-WebSocket-Accept"))
	io.WriteString(c, "client bytes")
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	got, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, "server-first client bytes", string(got))
}

func TestProxyAuth(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "auth=%q", r.Header.Get("Proxy-Authorization"))
	})
	creds := socks5.NewCredentials(map[string]string{"alice": "s3cret"})
	w := newWorld(t, &Gateway{ProxyAuth: creds.Check}, nil)
	for _, tc := range []struct {
		name, header string
		want         int
	}{
		{"none", "", 407},
		{"wrong", "Proxy-Authorization: Basic YWxpY2U6d3Jvbmc=\r\n", 407},
		{"not basic", "Proxy-Authorization: Bearer abc\r\n", 407},
		{"right", "Proxy-Authorization: Basic YWxpY2U6czNjcmV0\r\n", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, br := w.raw("GET " + o.URL + "/ HTTP/1.1\r\nHost: " + o.host() + "\r\n" + tc.header + "\r\n")
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			b, _ := io.ReadAll(resp.Body)
			assert.Equal(t, tc.want, resp.StatusCode)
			if tc.want == 407 {
				assert.Contains(t, resp.Header.Get("Proxy-Authenticate"), `Basic realm="sockstap"`)
			} else {
				assert.Equal(t, `auth=""`, string(b), "Proxy-Authorization is never sent upstream")
				assert.Equal(t, "alice", w.record().User)
			}
		})
	}
	t.Run("socks5 with the same store", func(t *testing.T) {
		resp, err := socksClient(t, "socks5h://alice:s3cret@"+w.addr).Get(o.URL + "/")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, 200, resp.StatusCode)
		d, err := dialer.Parse("socks5h://alice:wrong@" + w.addr)
		require.NoError(t, err)
		_, err = d.DialContext(context.Background(), "tcp", o.host())
		assert.ErrorIs(t, err, socks5.ErrAuthFailed)
	})
}

func TestLimits(t *testing.T) {
	t.Run("header too large", func(t *testing.T) {
		w := newWorld(t, nil, func(s *Server) { s.MaxHeaderBytes = 1024 })
		_, br := w.raw("GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\nX-Big: " + strings.Repeat("a", 8000) + "\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	})
	t.Run("read header timeout", func(t *testing.T) {
		w := newWorld(t, nil, func(s *Server) { s.ReadHeaderTimeout = 200 * time.Millisecond })
		c, br := w.raw("GET http://127.0.0.1:1/ HTTP/1.1\r\n")
		start := time.Now()
		c.SetReadDeadline(time.Now().Add(sockstest.Timeout))
		_, err := br.ReadByte()
		assert.Error(t, err, "the stalled client's connection is closed")
		assert.Less(t, time.Since(start), sockstest.Timeout)
	})
	t.Run("502 with the reason", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		closed := ln.Addr().String()
		ln.Close()
		w := newWorld(t, nil, nil)
		resp, err := w.client().Get("http://" + closed + "/")
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
		assert.Contains(t, string(b), "connection refused")
		assert.Contains(t, resp.Header.Get("Proxy-Status"), "error=connection_refused")
		assert.Contains(t, w.record().Reason, "connection refused")
	})
	t.Run("504 on timeout", func(t *testing.T) {
		stall := make(chan struct{})
		defer close(stall)
		o := sockstest.Serve(t, func(c net.Conn) {
			select {
			case <-stall:
			case <-time.After(sockstest.Timeout):
			}
		})
		w := newWorld(t, &Gateway{ResponseHeaderTimeout: 200 * time.Millisecond}, nil)
		resp, err := w.client().Get("http://" + o.String() + "/")
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusGatewayTimeout, resp.StatusCode)
	})
}

func TestForwardedOption(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s|%s", r.Header.Get("Forwarded"), r.Header.Get("X-Forwarded-For"))
	})
	get := func(g *Gateway) string {
		w := newWorld(t, g, nil)
		resp, err := w.client().Get(o.URL)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return string(b)
	}
	assert.Equal(t, "|", get(&Gateway{}), "off by default")
	assert.Equal(t, "for=127.0.0.1;proto=http|127.0.0.1", get(&Gateway{Forwarded: true}))
}

func TestHooksAndPolicy(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "origin")
	})
	g := &Gateway{
		Filter: func(r *http.Request) error {
			if strings.HasPrefix(r.URL.Path, "/private") {
				return errors.New("private pages are off limits")
			}
			return nil
		},
		ModifyResponse: func(r *http.Response) error {
			r.Header.Set("X-Modified", "1")
			return nil
		},
		Policy: func(_ context.Context, r *listener.Request) error {
			if r.Target.Port == 1 {
				return listener.Deny("port 1 is closed to you")
			}
			return nil
		},
	}
	w := newWorld(t, g, nil)
	c := w.client()
	resp, err := c.Get(o.URL + "/private/x")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 403, resp.StatusCode)
	assert.Contains(t, string(b), "private pages are off limits")
	assert.Zero(t, o.requests.Load())

	resp, err = c.Get(o.URL + "/public")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, "1", resp.Header.Get("X-Modified"))

	resp, err = c.Get("http://127.0.0.1:1/")
	require.NoError(t, err)
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 403, resp.StatusCode)
	assert.Contains(t, string(b), "port 1 is closed to you")
}

func TestFallback(t *testing.T) {
	g := &Gateway{Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "my own site")
	})}
	w := newWorld(t, g, nil)
	resp, err := http.Get("http://" + w.addr + "/")
	require.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "my own site", string(b))

	w = newWorld(t, nil, nil)
	resp, err = http.Get("http://" + w.addr + "/")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, 404, resp.StatusCode)
}

// On the mixed port, a SOCKS stream that does not speak HTTP is relayed
// to its target as it is.
func TestMixedPortRelaysOtherStreams(t *testing.T) {
	echo := sockstest.Echo(t)
	w := newWorld(t, nil, nil)
	d, err := dialer.Parse("socks5://" + w.addr)
	require.NoError(t, err)
	c, err := d.DialContext(context.Background(), "tcp", echo.String())
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(sockstest.Timeout))
	_, err = c.Write([]byte("\x16\x03\x01 not http"))
	require.NoError(t, err)
	require.NoError(t, c.(interface{ CloseWrite() error }).CloseWrite())
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, "\x16\x03\x01 not http", string(got))
	w.logs.Wait(t, func(m map[string]string) bool { return m["msg"] == "socks" && m["decision"] == "relay" })
}
