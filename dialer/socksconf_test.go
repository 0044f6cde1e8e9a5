package dialer_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
)

// routeOf returns what r does with address: "direct", "none" (no route),
// or the peer's String.
func routeOf(t *testing.T, r *dialer.Router, address string) string {
	t.Helper()
	for _, rt := range r.Routes {
		if rt.Dests.Contains(address) {
			if len(rt.Peers) == 0 {
				return "direct"
			}
			require.Len(t, rt.Peers, 1)
			return rt.Peers[0].(*dialer.Dialer).String()
		}
	}
	_, err := r.Dial("tcp", address)
	require.ErrorIs(t, err, dialer.ErrNoRoute)
	return "none"
}

func TestParseSOCKSConf(t *testing.T) {
	const conf = `# A client configuration, as socksify reads it.
debug: 0
logoutput: stderr
resolveprotocol: fake
route.badexpire: 60
timeout.connect: 3

route {
	from: 0.0.0.0/0   to: 10.0.0.0/255.0.0.0   via: 127.0.0.1 port = 1080
	proxyprotocol: socks_v5
	method: none
}
route { from: 0.0.0.0/0 to: .corp.example via: 127.0.0.2 port=1081
	proxyprotocol: socks_v4 }
route { from: 0.0.0.0/0 to: 10.1.0.0/16 via: direct }   # direct wins, though later
route {
	from: 0.0.0.0/0 to: exact.example port 1 - 1024 via: 127.0.0.3 port = 1082
	proxyprotocol: socks_v4 socks_v5
	protocol: tcp udp
	command: connect bind udpassociate bindreply udpreply
}
route { from: 0.0.0.0/0 to: fd00::/8 port != 22 via: ::1 port = 1083 }
route { from: 0.0.0.0/0 to: 192.168.0.0/16 port >= 1024 via: direct }
`
	r, err := dialer.ParseSOCKSConf("socks.conf", strings.NewReader(conf))
	require.NoError(t, err)
	assert.Equal(t, 60_000_000_000, int(r.RetryAfter))
	assert.Equal(t, 3_000_000_000, int(r.PeerTimeout))
	for _, c := range []struct{ address, want string }{
		{"10.2.3.4:80", "socks5h://127.0.0.1:1080"},
		{"10.1.2.3:80", "direct"},
		{"www.corp.example:443", "socks4://127.0.0.2:1081"},
		{"corp.example:443", "socks4://127.0.0.2:1081"},
		{"exact.example:80", "socks5h://127.0.0.3:1082"},
		{"exact.example:8080", "none"},
		{"www.exact.example:80", "none"},
		{"[fd00::1]:80", "socks5h://[::1]:1083"},
		{"[fd00::1]:22", "none"},
		{"192.168.1.1:1024", "direct"},
		{"192.168.1.1:80", "none"},
		{"192.168.1.1:0", "none"},
		{"example.org:80", "none"},
	} {
		assert.Equal(t, c.want, routeOf(t, r, c.address), c.address)
	}
	_, err = r.Resolve(context.Background(), "example.org")
	assert.ErrorIs(t, err, dialer.ErrNoRoute)
}

func TestParseSOCKSConfResolveAndCredentials(t *testing.T) {
	conf := "route { from: 0.0.0.0/0 to: 0.0.0.0/0 via: 127.0.0.1 port = 1080 proxyprotocol: socks_v5 method: username }\n"
	_, err := dialer.ParseSOCKSConf("a.conf", strings.NewReader(conf))
	assert.ErrorContains(t, err, "a.conf:1: route: method username needs SOCKS_USERNAME and SOCKS_PASSWORD")

	t.Setenv("SOCKS_USERNAME", "alice")
	t.Setenv("SOCKS_PASSWORD", "secret")
	r, err := dialer.ParseSOCKSConf("a.conf", strings.NewReader(conf))
	require.NoError(t, err)
	d := r.Routes[0].Peers[0].(*dialer.Dialer)
	assert.Equal(t, dialer.SOCKS5, d.Scheme, "names resolved by the client, resolveprotocol's default")
	assert.Equal(t, "alice", d.Username)
	assert.Equal(t, "secret", d.Password)
	assert.Equal(t, "*", r.Routes[0].Dests.String())

	r, err = dialer.ParseSOCKSConf("b.conf", strings.NewReader(strings.Replace(conf, "username", "none", 1)))
	require.NoError(t, err)
	assert.Empty(t, r.Routes[0].Peers[0].(*dialer.Dialer).Username, "method none sends no credentials")
}

func TestParseSOCKSConfErrors(t *testing.T) {
	for _, c := range []struct{ conf, want string }{
		{"route {\n from: 0.0.0.0/0 to: 10.0.0.0/33 via: direct\n}", "x.conf:2: to: invalid network"},
		{"route {\n from: 0.0.0.0/0 to: 300.1.1.1 via: direct\n}", `x.conf:2: to: invalid address "300.1.1.1"`},
		{"route {\n from: 10.0.0.0/8 to: 0.0.0.0/0 via: direct\n}", "x.conf:2: from: only every source"},
		{"route {\n from: 0.0.0.0/0 to: 0.0.0.0/0 via: 127.0.0.1 port = 99999\n}", `x.conf:2: via: "99999" is no port`},
		{"route {\n from: 0.0.0.0/0 to: 0.0.0.0/0\n}", "x.conf:1: route: no via"},
		{"route {\n from: 0.0.0.0/0 via: direct\n}", "x.conf:1: route: no to"},
		{"route {\n from: 0.0.0.0/0 to: 0.0.0.0/0 via: 127.0.0.1 port = 1080\n proxyprotocol: http\n}", "x.conf:3: proxyprotocol: http is not supported"},
		{"route {\n to: 0.0.0.0/0 via: 127.0.0.1 port = 1080\n method: gssapi\n}", "x.conf:3: method: gssapi is not supported"},
		{"route {\n to: 0.0.0.0/0 via: direct\n protocol: udp\n}", "x.conf:3: protocol: a route for some protocols only"},
		{"route {\n to: 0.0.0.0/0 via: direct\n command: connect\n}", "x.conf:3: command: a route for some commands only"},
		{"route {\n to: 0.0.0.0/0 port ~ 3 via: direct\n}", "x.conf:2: to: want port OP N"},
		{"route {\n to: 0.0.0.0/0 port 9 - 3 via: direct\n}", "x.conf:2: to: port range 9 - 3 is empty"},
		{"route {\n to: 0.0.0.0/0 port < 1 via: direct\n}", "x.conf:2: to: the port specifier matches no port"},
		{"route {\n to: 0.0.0.0/0 via: direct\n", "x.conf:1: route: no closing }"},
		{"route from: x", "x.conf:1: route: want {"},
		{"\n\nresolveprotocol: dns\n", `x.conf:3: resolveprotocol: "dns" is not udp, tcp or fake`},
		{"timeout.connect: soon", `x.conf:1: timeout.connect: "soon" is no number of seconds`},
		{"gssapi.servicename: rcmd", "x.conf:1: gssapi.servicename: not a global setting"},
		{"hello world", `x.conf:1: "hello": want a setting`},
		{"route {\n to: 0.0.0.0/0 via: direct\n colour: blue\n}", "x.conf:3: colour: unknown keyword"},
		{"route {\n to: 0.0.0.0/0 via: direct 10.0.0.1\n}", `x.conf:2: via: want HOST port = N, or direct`},
		{"route {\n 10.0.0.1 to: 0.0.0.0/0 via: direct\n}", `x.conf:2: route: "10.0.0.1": want a keyword`},
		{"debug: 0 1", "x.conf:1: debug: want one value"},
		{": x", "x.conf:1: a colon after no keyword"},
		{"route {\n to: 0.0.0.0/0 via: 127.0.0.1 port = 1080 proxyprotocol: socks_v4 method: username\n}", "x.conf:1: route: method username needs socks_v5"},
	} {
		_, err := dialer.ParseSOCKSConf("x.conf", strings.NewReader(c.conf))
		require.Error(t, err, c.conf)
		assert.ErrorContains(t, err, c.want, c.conf)
		_, ok := errors.AsType[*dialer.SOCKSConfError](err)
		assert.True(t, ok, "%T", err)
	}
}

func TestReadSOCKSConf(t *testing.T) {
	path := filepath.Join(t.TempDir(), "socks.conf")
	require.NoError(t, os.WriteFile(path, []byte("route { from: 0.0.0.0/0 to: .example via: direct }\n"), 0o644))
	r, err := dialer.ReadSOCKSConf(path)
	require.NoError(t, err)
	assert.Equal(t, "direct", routeOf(t, r, "www.example:80"))
	_, err = dialer.ReadSOCKSConf(filepath.Join(t.TempDir(), "missing"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}
