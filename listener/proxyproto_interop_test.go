package listener

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// TestInteropHAProxy puts the listener behind HAProxy with send-proxy-v2,
// and a policy that serves 127.0.0.2 alone: curl bound to 127.0.0.2 is
// served, and seen as 127.0.0.2 by the policy and the log, while curl
// bound to 127.0.0.1, the balancer's own address, is refused. Were the
// listener to see the balancer, the first would be refused too.
func TestInteropHAProxy(t *testing.T) {
	interop.Need(t, "haproxy", "haproxy")
	interop.Need(t, "curl", "curl")
	body := payload(11, 64<<10)
	origin := httpOrigin(t, body)
	only := netip.MustParseAddr("127.0.0.2")
	var mu sync.Mutex
	var asked []netip.Addr // the clients the policy saw
	policy := func(_ context.Context, r *Request) error {
		mu.Lock()
		asked = append(asked, r.ClientIP())
		mu.Unlock()
		if r.ClientIP() != only {
			return Deny("only 127.0.0.2")
		}
		return nil
	}
	w := newWorld(t, &Config{
		Dialer:        &net.Dialer{},
		Policy:        policy,
		ProxyProtocol: &ProxyProtocol{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Required: true},
	})
	lb := interop.HAProxy(t, w.l.Addr().(*net.TCPAddr))
	url := "http://127.0.0.1:" + origin.port() + "/"

	got := interop.Run(t, runCtx(t), "curl", curlArgs("--interface", "127.0.0.2", "--socks5", lb.String(), url)...)
	assertSameBytes(t, body, got)
	rec := w.logs.Wait(t, sockstest.Key("decision", "relay"))
	assert.True(t, strings.HasPrefix(rec["client"], "127.0.0.2:"), "logged client %q", rec["client"])
	mu.Lock()
	require.NotEmpty(t, asked)
	for _, ip := range asked {
		assert.Equal(t, only, ip, "the policy saw another client")
	}
	asked = nil
	mu.Unlock()

	_, err := interop.Try(t, runCtx(t), nil, "curl", curlArgs("--interface", "127.0.0.1", "--socks5", lb.String(), url)...)
	require.Error(t, err, "a client on the balancer's own address")
	rec = w.logs.Wait(t, sockstest.Key("decision", "deny"))
	assert.True(t, strings.HasPrefix(rec["client"], "127.0.0.1:"), "logged client %q", rec["client"])
	mu.Lock()
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("127.0.0.1")}, asked)
	mu.Unlock()
}

// TestInteropCurlHAProxyProtocol sends curl's own PROXY protocol v1
// header (--haproxy-protocol) straight to a wrapped HTTP server, from
// 127.0.0.1 and from 127.0.0.2, with one of them trusted: the trusted
// sender's header is read, and the server sees the client it declares;
// the other's is refused. A trusted sender must send one; the other may
// not, and is served as itself without.
func TestInteropCurlHAProxyProtocol(t *testing.T) {
	interop.Need(t, "curl", "curl")
	for _, trusted := range []string{"127.0.0.1", "127.0.0.2"} {
		untrusted := map[string]string{"127.0.0.1": "127.0.0.2", "127.0.0.2": "127.0.0.1"}[trusted]
		t.Run("Trusting"+trusted, func(t *testing.T) {
			w := bareWorld(t, listen(t), &Config{ProxyProtocol: &ProxyProtocol{
				Trusted:  []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr(trusted), 32)},
				Required: true,
			}})
			w.serveHTTP(&http.Server{Handler: http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				fmt.Fprint(rw, r.RemoteAddr)
			})})
			url := "http://" + w.l.Addr().String() + "/"
			for _, c := range []struct {
				from   string
				header bool
				served bool
			}{
				{trusted, true, true},
				{untrusted, true, false},
				{trusted, false, false},
				{untrusted, false, true},
			} {
				args := []string{"--interface", c.from}
				if c.header {
					args = append(args, "--haproxy-protocol")
				}
				out, err := interop.Try(t, runCtx(t), nil, "curl", curlArgs(append(args, url)...)...)
				if !c.served {
					assert.Error(t, err, "from %s, header %v: served %q", c.from, c.header, out)
					continue
				}
				if assert.NoError(t, err, "from %s, header %v", c.from, c.header) {
					assert.True(t, strings.HasPrefix(string(out), c.from+":"), "from %s, header %v: the server saw %q", c.from, c.header, out)
				}
			}
		})
	}
}

// listen listens on an ephemeral port of 127.0.0.1.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	return ln
}
