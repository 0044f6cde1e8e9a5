package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// A pageOrigin is an HTTP server on loopback whose pages may be cached
// for a minute; it counts its requests and its connections.
type pageOrigin struct {
	*httptest.Server
	requests, conns atomic.Int64
}

func newPageOrigin(t *testing.T) *pageOrigin {
	t.Helper()
	o := &pageOrigin{}
	o.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.requests.Add(1)
		// No connection kept to the origin: a relay to it ends, and is
		// logged, with its response.
		w.Header().Set("Connection", "close")
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "page %s, via %q", r.URL.Path, r.Header.Get("Via"))
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

// host is the origin's address, host:port.
func (o *pageOrigin) host() string { return o.Listener.Addr().String() }

// port is the origin's port.
func (o *pageOrigin) port() string {
	_, p, _ := net.SplitHostPort(o.host())
	return p
}

// logLine waits for a line of logs that holds every one of parts, and
// returns it.
func logLine(t *testing.T, logs *syncBuffer, parts ...string) string {
	t.Helper()
	var found string
	waitUntil(t, fmt.Sprintf("a log line with %q", parts), func() bool {
		for line := range strings.Lines(logs.String()) {
			if containsAll(line, parts) {
				found = line
				return true
			}
		}
		return false
	})
	return found
}

// countLines counts the lines of logs that hold every one of parts.
func countLines(logs *syncBuffer, parts ...string) int {
	n := 0
	for line := range strings.Lines(logs.String()) {
		if containsAll(line, parts) {
			n++
		}
	}
	return n
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// proxyClient is an HTTP client that uses the gateway at addr as its
// HTTP proxy, with user's credentials when user is not nil.
func proxyClient(t *testing.T, addr string, user *url.Userinfo) *http.Client {
	u := &url.URL{Scheme: "http", Host: addr, User: user}
	tr := &http.Transport{Proxy: http.ProxyURL(u), DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: sockstest.Timeout}
}

// socksClient is an HTTP client that reaches origins through the SOCKS
// proxy proxyURL, on a new connection for each request.
func socksClient(t *testing.T, proxyURL string) *http.Client {
	d, err := dialer.Parse(proxyURL)
	require.NoError(t, err)
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}, Timeout: sockstest.Timeout}
}

// fetch gets url with client and returns the response and its body.
func fetch(t *testing.T, client *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}

// The port is an HTTP proxy: a forward-proxy request is served, with Via
// and an access log line; a request that is not for a proxy is answered
// 404 by the gateway (no more 501, which stays listener.Serve's).
func TestGatewayHTTPProxy(t *testing.T) {
	o := newPageOrigin(t)
	addr, logs := start(t)
	resp, body := fetch(t, proxyClient(t, addr, nil), o.URL+"/p")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, body, `page /p, via "1.1 sockstap-`)
	assert.Contains(t, resp.Header.Get("Via"), "1.1 sockstap-")
	logLine(t, logs, "msg=http ", "arrival=http-proxy", "url="+o.URL+"/p", "status=200", "cache=miss")

	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(sockstest.Timeout))
	_, err = io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+addr+"\r\n\r\n")
	require.NoError(t, err)
	resp, err = http.ReadResponse(bufio.NewReader(c), nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

// HTTP sent through SOCKS is tapped: the gateway serves it, with an
// access log line and Via, and a second fetch of a cacheable page is a
// hit that reaches no origin. -tap=false relays it as it is.
func TestGatewayTap(t *testing.T) {
	o := newPageOrigin(t)
	url := "http://localhost:" + o.port() + "/tapped"

	t.Run("on", func(t *testing.T) {
		addr, logs := start(t)
		client := socksClient(t, "socks5h://"+addr)
		resp, body := fetch(t, client, url)
		assert.Contains(t, body, `via "1.1 sockstap-`)
		assert.Contains(t, resp.Header.Get("Via"), "1.1 sockstap-")
		logLine(t, logs, "msg=http ", "arrival=socks5", "url="+url, "target=localhost:"+o.port(), "cache=miss")
		logLine(t, logs, "msg=socks ", "decision=tap", "target=localhost:"+o.port())
		requests, conns := o.requests.Load(), o.conns.Load()

		resp, body2 := fetch(t, client, url)
		assert.Equal(t, body, body2)
		assert.Equal(t, "0", resp.Header.Get("Age"))
		logLine(t, logs, "msg=http ", "arrival=socks5", "url="+url, "cache=hit")
		assert.Equal(t, requests, o.requests.Load(), "the hit reached the origin")
		assert.Equal(t, conns, o.conns.Load(), "the hit opened a connection to the origin")
	})

	t.Run("off", func(t *testing.T) {
		addr, logs := start(t, "-tap=false")
		resp, body := fetch(t, socksClient(t, "socks5h://"+addr), url)
		assert.Equal(t, `page /tapped, via ""`, body)
		assert.Empty(t, resp.Header.Get("Via"))
		logLine(t, logs, "msg=socks ", "decision=relay", "target=localhost:"+o.port())
		assert.Zero(t, countLines(logs, "msg=http "))
	})
}

// -cache 0 turns the cache off; a size sets its bound.
func TestGatewayCacheFlag(t *testing.T) {
	o := newPageOrigin(t)
	addr, logs := start(t, "-cache", "0")
	client := proxyClient(t, addr, nil)
	for range 2 {
		fetch(t, client, o.URL+"/uncached")
	}
	assert.Equal(t, int64(2), o.requests.Load(), "both requests reached the origin")
	waitUntil(t, "two requests logged, the cache off", func() bool { return countLines(logs, "msg=http ", "cache=none") == 2 })
	logLine(t, logs, "gateway listening", "cache=0")

	_, logs = start(t, "-cache", "1GiB")
	logLine(t, logs, "gateway listening", "cache=1GiB")
}

// -user and -pass are asked of HTTP proxy clients too.
func TestGatewayHTTPAuth(t *testing.T) {
	o := newPageOrigin(t)
	addr, logs := start(t, "-user", "alice", "-pass", "s3cret")
	for _, tc := range []struct {
		name string
		user *url.Userinfo
		want int
	}{
		{"none", nil, http.StatusProxyAuthRequired},
		{"wrong", url.UserPassword("alice", "guess"), http.StatusProxyAuthRequired},
		{"right", url.UserPassword("alice", "s3cret"), http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, _ := fetch(t, proxyClient(t, addr, tc.user), o.URL+"/"+tc.name)
			assert.Equal(t, tc.want, resp.StatusCode)
		})
	}
	logLine(t, logs, "msg=http ", "user=alice", "url="+o.URL+"/right", "status=200")
	assert.NotContains(t, logs.String(), "s3cret")
}

// -upstream sends what the gateway serves through a SOCKS peer, names
// and all; -route picks a peer, or none, by destination.
func TestGatewayUpstream(t *testing.T) {
	o := newPageOrigin(t)
	peer, peerLogs := start(t, "-tap=false")
	dead := deadAddr(t)

	t.Run("upstream", func(t *testing.T) {
		addr, _ := start(t, "-upstream", "socks5h://"+peer)
		url := "http://localhost:" + o.port() + "/up"
		_, body := fetch(t, proxyClient(t, addr, nil), url)
		assert.Contains(t, body, "page /up")
		logLine(t, peerLogs, "msg=socks ", "decision=relay", "target=localhost:"+o.port())

		// A SOCKS stream that is not tapped is relayed through the peer too.
		_, body = fetch(t, socksClient(t, "socks5h://"+addr), "http://localhost:"+o.port()+"/relayed")
		assert.Contains(t, body, "page /relayed")
	})

	t.Run("failover", func(t *testing.T) {
		addr, logs := start(t, "-upstream", "socks5h://"+dead, "-upstream", "socks5h://"+peer)
		_, body := fetch(t, proxyClient(t, addr, nil), "http://localhost:"+o.port()+"/second")
		assert.Contains(t, body, "page /second")
		logLine(t, logs, `msg="peer unreachable`, dead)
	})

	t.Run("route", func(t *testing.T) {
		addr, _ := start(t,
			"-route", "localhost=socks5h://"+peer,
			"-route", "127.0.0.1=direct",
			"-upstream", "socks5h://"+dead)
		client := proxyClient(t, addr, nil)
		// Only the routes reach the origin: the peers for the rest are
		// dead.
		_, body := fetch(t, client, "http://localhost:"+o.port()+"/routed")
		assert.Contains(t, body, "page /routed")
		logLine(t, peerLogs, "decision=relay", "target=localhost:"+o.port())
		_, body = fetch(t, client, o.URL+"/direct")
		assert.Contains(t, body, "page /direct")
		resp, _ := fetch(t, client, "http://elsewhere.sockstap.test:"+o.port()+"/")
		assert.Equal(t, http.StatusBadGateway, resp.StatusCode, "no route: the dead peer")
	})
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// A SOCKS stream that is not HTTP is relayed, whatever -tap says.
func TestGatewayRelaysOtherStreams(t *testing.T) {
	echo := sockstest.Echo(t)
	addr, logs := start(t)
	d, err := dialer.Parse("socks5://" + addr)
	require.NoError(t, err)
	c, err := d.DialContext(context.Background(), "tcp", echo.String())
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(sockstest.Timeout))
	sockstest.Echoes(t, c, "\x16\x03\x01 a TLS hello, say")
	c.Close()
	logLine(t, logs, "msg=socks ", "decision=relay", "target="+echo.String())
}
