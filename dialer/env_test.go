package dialer_test

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
)

// setenv sets the four proxy variables for the test, unset ones empty.
func setenv(t *testing.T, vars map[string]string) {
	for _, name := range []string{"ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"} {
		t.Setenv(name, vars[name])
	}
}

func TestFromEnvironment(t *testing.T) {
	echo := sockstest.Echo(t)
	p := startProxy(t, listener.Config{})

	t.Run("no proxy: direct", func(t *testing.T) {
		setenv(t, nil)
		d, err := dialer.FromEnvironment()
		require.NoError(t, err)
		assert.IsType(t, &net.Dialer{}, d)
	})

	for _, tt := range []struct {
		name string
		vars map[string]string
		want dialer.Dialer
	}{
		{"ALL_PROXY", map[string]string{"ALL_PROXY": "socks5h://alice:secret@" + p.addr},
			dialer.Dialer{Proxy: p.addr, Scheme: dialer.SOCKS5H, Username: "alice", Password: "secret"}},
		{"all_proxy", map[string]string{"all_proxy": "socks4a://" + p.addr},
			dialer.Dialer{Proxy: p.addr, Scheme: dialer.SOCKS4A}},
		{"ALL_PROXY before all_proxy", map[string]string{"ALL_PROXY": "socks4://" + p.addr, "all_proxy": "socks5://127.0.0.1:1"},
			dialer.Dialer{Proxy: p.addr, Scheme: dialer.SOCKS4}},
		{"default port", map[string]string{"ALL_PROXY": "socks5://127.0.0.1"},
			dialer.Dialer{Proxy: "127.0.0.1:1080", Scheme: dialer.SOCKS5}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			setenv(t, tt.vars)
			cd, err := dialer.FromEnvironment()
			require.NoError(t, err)
			d, ok := cd.(*dialer.Dialer)
			require.True(t, ok, "%T", cd)
			assert.Equal(t, tt.want, *d)
		})
	}

	t.Run("not a SOCKS URL", func(t *testing.T) {
		setenv(t, map[string]string{"ALL_PROXY": "http://127.0.0.1:3128"})
		d, err := dialer.FromEnvironment()
		assert.Nil(t, d)
		assert.ErrorContains(t, err, "ALL_PROXY")
		assert.ErrorContains(t, err, `unsupported scheme "http"`)
	})

	for _, name := range []string{"NO_PROXY", "no_proxy"} {
		t.Run(name, func(t *testing.T) {
			other := sockstest.Echo(t)
			setenv(t, map[string]string{"ALL_PROXY": "socks5://" + p.addr, name: "localhost, " + echo.String()})
			d, err := dialer.FromEnvironment()
			require.NoError(t, err)

			before := p.accepts.Load()
			c, err := d.DialContext(t.Context(), "tcp", echo.String())
			require.NoError(t, err)
			echoCheck(t, c)
			assert.Equal(t, echo.String(), c.RemoteAddr().String(), "dialed directly")
			c.Close()
			assert.Equal(t, before, p.accepts.Load(), "the proxy was not asked")

			c, err = d.DialContext(t.Context(), "tcp", other.String())
			require.NoError(t, err)
			echoCheck(t, c)
			assert.Equal(t, p.addr, c.RemoteAddr().String(), "through the proxy")
			c.Close()
			assert.Equal(t, other.String(), p.record(t, c)["target"])
		})
	}
}
