package dialer_test

import (
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
)

func TestParse(t *testing.T) {
	tests := []struct {
		url  string
		want dialer.Dialer
	}{
		{"socks4://proxy.example", dialer.Dialer{Proxy: "proxy.example:1080", Scheme: dialer.SOCKS4}},
		{"socks4a://bob@proxy.example:1081", dialer.Dialer{Proxy: "proxy.example:1081", Scheme: dialer.SOCKS4A, Username: "bob"}},
		{"socks4://bob:unused@192.0.2.1", dialer.Dialer{Proxy: "192.0.2.1:1080", Scheme: dialer.SOCKS4, Username: "bob", Password: "unused"}},
		{"socks5://127.0.0.1:9050", dialer.Dialer{Proxy: "127.0.0.1:9050", Scheme: dialer.SOCKS5}},
		{"socks5h://alice:s%40cret@[::1]:9050", dialer.Dialer{Proxy: "[::1]:9050", Scheme: dialer.SOCKS5H, Username: "alice", Password: "s@cret"}},
		{"socks5h://[::1]", dialer.Dialer{Proxy: "[::1]:1080", Scheme: dialer.SOCKS5H}},
		{"SOCKS5H://Proxy.Example/", dialer.Dialer{Proxy: "Proxy.Example:1080", Scheme: dialer.SOCKS5H}},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			d, err := dialer.Parse(tt.url)
			require.NoError(t, err)
			assert.Equal(t, tt.want, *d)
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		url  string
		want string
	}{
		{"http://proxy.example:3128", `unsupported scheme "http"`},
		{"localhost:1080", `no scheme: write socks5h://localhost:1080`},
		{"127.0.0.1:1080", "no scheme"},
		{"proxy.example", "no scheme"},
		{"socks5://", "no proxy host"},
		{"socks5://:1080", "no proxy host"},
		{"socks5:proxy.example", "no proxy host"},
		{"socks5://alice@proxy.example", "1 to 255 bytes"},
		{"socks5://:topsecret@proxy.example", "password without a username"},
		{"socks5h://alice:topsecret@proxy.example/path", "no path"},
		{"socks5h://proxy.example?x=1", "no path, query"},
		{"socks5h://alice:topsecret@proxy.example:99999999999", "invalid port"},
		{"socks5h://proxy.example:0", "invalid port"},
		{"socks5h://alice:top%ZZsecret@proxy.example", "proxy URL"},
		{"socks4://bob%00@proxy.example", "NUL"},
		{"socks4://]", "invalid proxy host"},
		{"socks5://::", "invalid proxy host"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			d, err := dialer.Parse(tt.url)
			require.Error(t, err)
			assert.Nil(t, d)
			assert.ErrorContains(t, err, tt.want)
			assert.NotContains(t, err.Error(), "topsecret", "no password in errors")
		})
	}
}

// directOnly is a proxy.Dialer that is not a proxy.ContextDialer.
type directOnly struct{ n int }

func (d *directOnly) Dial(network, address string) (net.Conn, error) {
	d.n++
	return net.Dial(network, address)
}

func TestFromURL(t *testing.T) {
	echo := sockstest.Echo(t)
	p := startProxy(t, listener.Config{Dialer: &mapDialer{names: map[string]string{"echo.sockstap.test": "127.0.0.1"}}})
	resolver := fakeResolver(t, map[string][]netip.Addr{"echo.sockstap.test": {loopback4}})
	byName := net.JoinHostPort("echo.sockstap.test", strconv.Itoa(echo.Port))

	t.Run("registered with x/net/proxy", func(t *testing.T) {
		for _, tt := range []struct{ scheme, target string }{
			{"socks4", echo.String()},
			{"socks4a", byName},
		} {
			u := &url.URL{Scheme: tt.scheme, Host: p.addr}
			pd, err := proxy.FromURL(u, proxy.Direct)
			require.NoError(t, err)
			d, ok := pd.(*dialer.Dialer)
			require.True(t, ok, "%T", pd)
			assert.Equal(t, dialer.Scheme(tt.scheme), d.Scheme)
			d.Resolver = resolver
			c, err := d.Dial("tcp", byName)
			require.NoError(t, err)
			echoCheck(t, c)
			c.Close()
			rec := p.record(t, c)
			assert.Equal(t, tt.scheme, rec["version"])
			assert.Equal(t, tt.target, rec["target"])
		}
	})

	t.Run("x/net builds socks5 itself", func(t *testing.T) {
		pd, err := proxy.FromURL(&url.URL{Scheme: "socks5", Host: p.addr}, proxy.Direct)
		require.NoError(t, err)
		_, ours := pd.(*dialer.Dialer)
		assert.False(t, ours)
	})

	t.Run("all four schemes", func(t *testing.T) {
		for _, s := range []dialer.Scheme{dialer.SOCKS4, dialer.SOCKS4A, dialer.SOCKS5, dialer.SOCKS5H} {
			d, err := dialer.FromURL(&url.URL{Scheme: string(s), Host: p.addr}, nil)
			require.NoError(t, err)
			assert.Equal(t, s, d.Scheme)
			assert.Nil(t, d.Forward)
		}
		_, err := dialer.FromURL(&url.URL{Scheme: "https", Host: p.addr}, nil)
		assert.ErrorContains(t, err, "unsupported scheme")
	})

	t.Run("a forward dialer without a context", func(t *testing.T) {
		fwd := &directOnly{}
		d, err := dialer.FromURL(&url.URL{Scheme: "socks5", Host: p.addr}, fwd)
		require.NoError(t, err)
		c, err := d.Dial("tcp", echo.String())
		require.NoError(t, err)
		defer c.Close()
		echoCheck(t, c)
		assert.Equal(t, 1, fwd.n)
	})

	t.Run("a forward dialer with a context is used as it is", func(t *testing.T) {
		d, err := dialer.FromURL(&url.URL{Scheme: "socks5", Host: p.addr}, proxy.Direct)
		require.NoError(t, err)
		assert.Equal(t, proxy.Direct, d.Forward)
	})
}

func TestParseNoScheme(t *testing.T) {
	for _, c := range []struct{ in, suggest string }{
		{"127.0.0.1:1080", "socks5h://127.0.0.1:1080"},
		{"proxy.example", "socks5h://proxy.example:1080"},
		{"alice:secret@proxy.example:9050", "socks5h://proxy.example:9050"},
		{"[::1]:1080", "socks5h://[::1]:1080"},
	} {
		d, err := dialer.Parse(c.in)
		require.Error(t, err, c.in)
		assert.Nil(t, d)
		assert.Contains(t, err.Error(), "no scheme")
		assert.Contains(t, err.Error(), c.suggest)
		assert.NotContains(t, err.Error(), "secret")
	}
}

func TestChainString(t *testing.T) {
	d := dialer.Chain(
		&dialer.Dialer{Proxy: "127.0.0.1:1080"},
		&dialer.Dialer{Proxy: "10.0.0.1:1080", Scheme: dialer.SOCKS4, Username: "bob"},
		&dialer.Dialer{Proxy: "[::1]:9050", Scheme: dialer.SOCKS5, Username: "alice", Password: "secret"},
	)
	assert.Equal(t, "socks5h://127.0.0.1:1080 -> socks4://bob@10.0.0.1:1080 -> socks5://alice@[::1]:9050", d.String())
	assert.Equal(t, "socks5h://127.0.0.1:1080", (&dialer.Dialer{Proxy: "127.0.0.1:1080"}).String())
}
