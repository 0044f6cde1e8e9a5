package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

var metricsAddr = regexp.MustCompile(`msg="gateway metrics" addr=(\S+)`)

// scrape fetches the metrics at addr and returns their lines.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	client := &http.Client{Timeout: sockstest.Timeout}
	resp, err := client.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestGatewayMetrics runs the gateway with -metrics, relays one session
// and refuses another, and reads the metrics back: the gauges while the
// relay runs, then the sessions by decision and reply, the bytes, the
// handshake and dial durations and the counts.
func TestGatewayMetrics(t *testing.T) {
	echo := sockstest.Echo(t)
	g := launch(t, "-metrics", "127.0.0.1:0", "-user", "alice", "-pass", "s3cret")
	var addr string
	waitUntil(t, "the metrics address logged", func() bool {
		m := metricsAddr.FindStringSubmatch(g.logs.String())
		if m != nil {
			addr = m[1]
		}
		return m != nil
	})

	c, err := net.Dial("tcp", g.addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(sockstest.Timeout))
	_, _, err = socks5.ClientHandshake(context.Background(), c,
		socks5.Request{Command: socks5.CmdConnect, Addr: socks5.AddrFromAddrPort(echo.AddrPort())},
		socks5.UserPassClient{Username: "alice", Password: "s3cret"})
	require.NoError(t, err)
	sockstest.Echoes(t, c, "hello")
	assert.Contains(t, scrape(t, addr), "sockstap_connections{state=\"relay\"} 1\n")

	bad, err := net.Dial("tcp", g.addr)
	require.NoError(t, err)
	defer bad.Close()
	bad.SetDeadline(time.Now().Add(sockstest.Timeout))
	_, _, err = socks5.ClientHandshake(context.Background(), bad,
		socks5.Request{Command: socks5.CmdConnect, Addr: socks5.AddrFromAddrPort(echo.AddrPort())},
		socks5.UserPassClient{Username: "alice", Password: "guess"})
	require.ErrorIs(t, err, socks5.ErrAuthFailed)

	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	io.Copy(io.Discard, c)

	// Two HTTP requests: one the proxy's authentication refuses, one it
	// serves, through the cache.
	o := newPageOrigin(t)
	resp, _ := fetch(t, proxyClient(t, g.addr, nil), o.URL+"/refused")
	require.Equal(t, http.StatusProxyAuthRequired, resp.StatusCode)
	resp, body := fetch(t, proxyClient(t, g.addr, url.UserPassword("alice", "s3cret")), o.URL+"/served")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	var m string
	waitUntil(t, "both sessions and both requests counted", func() bool {
		m = scrape(t, addr)
		return strings.Contains(m, `sockstap_sessions_total{decision="relay",reply="succeeded"} 1`) &&
			strings.Contains(m, `sockstap_sessions_total{decision="deny",reply="none"} 1`) &&
			strings.Contains(m, `sockstap_http_requests_total{arrival="http-proxy",cache="miss",code="2xx",method="GET"} 1`)
	})
	for _, line := range []string{
		`sockstap_http_requests_total{arrival="http-proxy",cache="none",code="4xx",method="GET"} 1`,
		fmt.Sprintf(`sockstap_http_bytes_total{direction="down"} %d`, len(body)+len("407 Proxy Authentication Required: proxy authentication required\n")),
		`sockstap_http_bytes_total{direction="up"} 0`,
		`sockstap_http_request_duration_seconds_count{arrival="http-proxy"} 2`,
		`sockstap_bytes_total{direction="up"} 5`,
		`sockstap_bytes_total{direction="down"} 5`,
		`sockstap_handshake_duration_seconds_count 2`,
		`sockstap_dial_duration_seconds_count 1`,
		`sockstap_session_duration_seconds_count{decision="relay"} 1`,
		`sockstap_connections{state="relay"} 0`,
		`sockstap_connections{state="handshake"} 0`,
		`sockstap_accepted_connections_total 4`,
		`sockstap_refused_connections_total 0`,
	} {
		assert.Contains(t, m, line+"\n")
	}
}

func TestGatewayProxyProtoFlag(t *testing.T) {
	for _, c := range []struct {
		in, want string // want: the trusted prefixes, or "error"
	}{
		{"", ""},
		{"127.0.0.1/32", "[127.0.0.1/32]"},
		{"10.0.0.0/8, 192.0.2.1", "[10.0.0.0/8 192.0.2.1/32]"},
		{"10.1.2.3/8", "[10.0.0.0/8]"},
		{"::1,2001:db8::/32", "[::1/128 2001:db8::/32]"},
		{"::ffff:127.0.0.1", "[127.0.0.1/32]"},
		{"nonsense", "error"},
		{"10.0.0.0/8,", "error"},
	} {
		p, err := proxyProtocol(c.in)
		switch {
		case c.want == "error":
			assert.Error(t, err, "%q", c.in)
		case c.want == "":
			assert.NoError(t, err)
			assert.Nil(t, p, "%q", c.in)
		default:
			require.NoError(t, err, "%q", c.in)
			assert.True(t, p.Required, "%q", c.in)
			assert.Equal(t, c.want, fmt.Sprint(p.Trusted), "%q", c.in)
		}
	}
	assert.Error(t, run(context.Background(), []string{"-proxyproto", "x"}, io.Discard, nil))
}

// TestCoreWithoutPrometheus checks that the library's packages do not
// depend on the metrics library the gateway uses.
func TestCoreWithoutPrometheus(t *testing.T) {
	goTool, err := exec.LookPath("go")
	require.NoError(t, err)
	out, err := exec.Command(goTool, "list", "-deps",
		"github.com/sockstap/sockstap/listener", "github.com/sockstap/sockstap/dialer",
		"github.com/sockstap/sockstap/socks4", "github.com/sockstap/sockstap/socks5",
		"github.com/sockstap/sockstap/httpgate").CombinedOutput()
	require.NoError(t, err, "%s", out)
	require.Contains(t, string(out), "github.com/sockstap/sockstap/listener")
	assert.NotContains(t, string(out), "prometheus")
}

// The labels of the HTTP metrics take few values, whatever clients send.
func TestHTTPMetricLabels(t *testing.T) {
	for in, want := range map[string]string{
		"GET": "GET", "CONNECT": "CONNECT", "PATCH": "PATCH",
		"get": "other", "BREW": "other", "": "other", strings.Repeat("X", 1000): "other",
	} {
		assert.Equal(t, want, methodLabel(in), "%q", in)
	}
	for in, want := range map[int]string{0: "none", 99: "none", 100: "1xx", 204: "2xx", 407: "4xx", 599: "5xx", 600: "none", -1: "none"} {
		assert.Equal(t, want, statusClass(in), "%d", in)
	}
}
