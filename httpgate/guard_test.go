package httpgate

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
)

// Tests of the dial-time policy check (the DNS rebinding guard) on the
// gateway's own dials: a name whose lookups give an allowed address, and
// then a denied one.

const rebindName = "rebind.sockstap.test"

var (
	allowedIP = netip.MustParseAddr("127.0.0.1")
	deniedIP  = netip.MustParseAddr("127.0.0.2")
)

// noRebound denies deniedIP, which only a resolved name can reach when
// the request arrives, since the rule names addresses, not names.
var noRebound = listener.Rules{
	{Allow: false, Dests: []netip.Prefix{netip.PrefixFrom(deniedIP, 32)}, Reason: "rebound"},
	{Allow: true},
}.Policy

// rebinder is a DNS zone in which rebindName resolves to one address,
// which the test changes: allowedIP first, then deniedIP.
type rebinder struct {
	answer atomic.Pointer[netip.Addr]
	*net.Resolver
}

func newRebinder(t *testing.T) *rebinder {
	r := &rebinder{}
	r.answer.Store(&allowedIP)
	r.Resolver = sockstest.Resolver(t, func(name string) ([]netip.Addr, bool) {
		if name != rebindName {
			return nil, false
		}
		return []netip.Addr{*r.answer.Load()}, true
	})
	return r
}

// rebind makes the next lookups give deniedIP.
func (r *rebinder) rebind() { r.answer.Store(&deniedIP) }

// refusedAtDial checks that resp is the gateway's refusal of the address
// it was about to connect to.
func refusedAtDial(t *testing.T, resp *http.Response) {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "%s", b)
	assert.Contains(t, string(b), "denied: rebound")
	assert.Contains(t, resp.Header.Get("Proxy-Status"), "error=destination_ip_prohibited")
}

// Each way a client comes: the first request reaches the name's first
// address; after the name rebinds to a denied address, the next one is
// refused with 403 when the gateway dials, though the policy allowed the
// request (a name) when it arrived.
func TestRebindingRefusedAtDial(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		// No connection kept upstream: each request dials.
		w.Header().Set("Connection", "close")
		io.WriteString(w, "origin")
	})
	port := strconv.Itoa(o.Listener.Addr().(*net.TCPAddr).Port)
	echo := sockstest.Echo(t)
	echoTarget := net.JoinHostPort(rebindName, strconv.Itoa(echo.Port))
	url := "http://" + net.JoinHostPort(rebindName, port) + "/page"

	newGuarded := func(t *testing.T) (*world, *rebinder) {
		dns := newRebinder(t)
		return newWorld(t, &Gateway{Dialer: &net.Dialer{Resolver: dns.Resolver}, Policy: noRebound}, nil), dns
	}
	checkRecord := func(t *testing.T, w *world, arrival Arrival) {
		t.Helper()
		rec := w.recordWhere(func(r *Record) bool { return r.Status == http.StatusForbidden })
		assert.Equal(t, arrival, rec.Arrival)
		assert.Equal(t, "denied: rebound", rec.Reason)
		assert.True(t, refusedByPolicy(rec.Err), "%v", rec.Err)
	}

	t.Run("forward proxy", func(t *testing.T) {
		w, dns := newGuarded(t)
		before := o.requests.Load()
		_, body := w.get(url)
		assert.Equal(t, "origin", body)
		dns.rebind()
		resp, err := w.client().Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		refusedAtDial(t, resp)
		assert.Equal(t, before+1, o.requests.Load(), "the refused request never reached the origin")
		checkRecord(t, w, ArrivalProxy)
	})

	t.Run("CONNECT", func(t *testing.T) {
		w, dns := newGuarded(t)
		connect := "CONNECT " + echoTarget + " HTTP/1.1\r\nHost: " + echoTarget + "\r\n\r\n"
		c, br := w.raw(connect)
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)
		sockstest.Echoes(t, &bufferedConn{c, br}, "tunnel")
		c.Close()
		dns.rebind()
		_, br = w.raw(connect)
		resp, err = http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		require.NoError(t, err)
		refusedAtDial(t, resp)
		checkRecord(t, w, ArrivalConnect)
	})

	t.Run("tapped SOCKS", func(t *testing.T) {
		w, dns := newGuarded(t)
		before := o.requests.Load()
		client := socksClient(t, "socks5h://"+w.addr)
		resp, err := client.Get(url)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		assert.Equal(t, "origin", string(b))
		dns.rebind()
		resp, err = client.Get(url)
		require.NoError(t, err)
		defer resp.Body.Close()
		refusedAtDial(t, resp)
		assert.Equal(t, before+1, o.requests.Load())
		checkRecord(t, w, ArrivalSOCKS5)
		tap := w.logs.Wait(t, func(m map[string]string) bool { return m["msg"] == "socks" && m["decision"] == "tap" })
		assert.Equal(t, rebindName+":"+port, tap["target"], "the listener allowed the name, and tapped it")
	})
}

// bufferedConn reads through a bufio.Reader that may hold bytes read
// ahead of the connection.
type bufferedConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.br.Read(p) }

// A stale stored response is served when the origin cannot be reached,
// but not when the policy refuses the address the name now resolves to:
// that is a refusal, not an origin out of reach.
func TestRebindingNotServedStale(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "stored")
	})
	port := strconv.Itoa(o.Listener.Addr().(*net.TCPAddr).Port)
	dns := newRebinder(t)
	var now atomic.Int64
	now.Store(time.Now().Unix())
	cache := NewCache(1 << 20)
	cache.now = func() time.Time { return time.Unix(now.Load(), 0) }
	w := newWorld(t, &Gateway{Dialer: &net.Dialer{Resolver: dns.Resolver}, Policy: noRebound, Cache: cache}, nil)
	url := "http://" + net.JoinHostPort(rebindName, port) + "/"
	_, body := w.get(url)
	require.Equal(t, "stored", body)
	now.Add(3600) // stale

	o.Close() // the origin out of reach: the stale response is served
	resp, body := w.get(url)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "stored", body)
	assert.Equal(t, CacheStale, w.recordWhere(func(r *Record) bool { return r.Cache == CacheStale }).Cache)

	dns.rebind()
	resp, err := w.client().Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	refusedAtDial(t, resp)
}
