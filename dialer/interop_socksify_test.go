package dialer_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/listener"
)

// startOriginOn starts an HTTP server on ip, a loopback address, that
// answers every request with body.
func startOriginOn(t *testing.T, ip, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return ln.Addr().String()
}

// TestInteropSocksify has socksify (Dante's client) and a Router read by
// ReadSOCKSConf take their routes from the same socks.conf, and checks,
// for each destination, that both went the same way: through which proxy,
// or directly.
func TestInteropSocksify(t *testing.T) {
	t.Parallel()
	viaV5 := startProxy(t, listener.Config{})
	viaV4 := startProxy(t, listener.Config{})
	// The names under sockstap.test resolve nowhere, but at this proxy.
	viaName := startProxy(t, listener.Config{Dialer: &mapDialer{names: map[string]string{"origin.sockstap.test": "127.0.0.1"}}})
	_, portV5, _ := net.SplitHostPort(viaV5.addr)
	_, portV4, _ := net.SplitHostPort(viaV4.addr)
	_, portName, _ := net.SplitHostPort(viaName.addr)
	// Destinations on loopback: one direct (which the SOCKS5 route
	// covers too, but a direct route comes first), one through the
	// SOCKS4 route (which the SOCKS5 route covers too: Dante, and the
	// Router, take the first), one through the SOCKS5 route, and one by
	// name, in a domain that a route names, which goes to its proxy as a
	// name (resolveprotocol fake): socksify hands curl a made-up address
	// for it, and sends the name.
	direct := startOriginOn(t, "127.0.0.3", "direct")
	v4 := startOriginOn(t, "127.0.0.2", "through socks4")
	v5 := startOriginOn(t, "127.0.0.1", "through socks5")
	_, namePort, _ := net.SplitHostPort(startOriginOn(t, "127.0.0.1", "by name"))
	byName := net.JoinHostPort("origin.sockstap.test", namePort)
	conf := fmt.Sprintf(`# routes that socksify and dialer.ReadSOCKSConf both read
resolveprotocol: fake
route {
	from: 0.0.0.0/0 to: .sockstap.test port = %s via: 127.0.0.1 port = %s
	proxyprotocol: socks_v5
}
route {
	from: 0.0.0.0/0 to: 127.0.0.2/32 via: 127.0.0.1 port = %s
	proxyprotocol: socks_v4
	method: none
}
route {
	from: 0.0.0.0/0 to: 127.0.0.0/8 port 1 - 65535 via: 127.0.0.1 port = %s
	proxyprotocol: socks_v5
	method: none
}
route { from: 0.0.0.0/0 to: 127.0.0.3/32 via: direct }
`, namePort, portName, portV4, portV5)
	path := filepath.Join(t.TempDir(), "socks.conf")
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o644))
	router, err := dialer.ReadSOCKSConf(path)
	require.NoError(t, err)

	for _, c := range []struct {
		target, body string
		via          *proxyServer // nil: direct
	}{
		{direct, "direct", nil},
		{v4, "through socks4", viaV4},
		{v5, "through socks5", viaV5},
		{byName, "by name", viaName},
	} {
		t.Run(c.body, func(t *testing.T) {
			url := "http://" + c.target + "/"
			clients := []struct {
				name  string
				fetch func() string
			}{
				{"socksify", func() string {
					ctx, cancel := context.WithTimeout(context.Background(), wait)
					defer cancel()
					return string(interop.Socksify(t, ctx, path, "curl", "--silent", "--show-error", "--fail", "--noproxy", "*", url))
				}},
				{"Router", func() string {
					got, err := fetch(t, router, url)
					require.NoError(t, err)
					return string(got)
				}},
			}
			for _, client := range clients {
				proxies := []*proxyServer{viaV4, viaV5, viaName}
				before := make([]int64, len(proxies))
				for i, p := range proxies {
					before[i] = p.accepts.Load()
				}
				assert.Equal(t, c.body, client.fetch(), client.name)
				// A proxied connection was accepted before the fetch
				// could end.
				for i, p := range proxies {
					want := before[i]
					if p == c.via {
						want++
					}
					assert.Equal(t, want, p.accepts.Load(), "%s: connections to proxy %d", client.name, i)
				}
			}
			if c.via != nil {
				recs := c.via.logs.WaitN(t, 2, func(r map[string]string) bool { return r["target"] == c.target })
				assert.Equal(t, recs[0]["cmd"], recs[1]["cmd"], "both clients asked the same")
			}
		})
	}
}
