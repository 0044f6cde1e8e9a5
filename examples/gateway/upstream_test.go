package main

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/dialer"
)

func TestParseRoute(t *testing.T) {
	for _, tc := range []struct {
		in, hosts, via string // hosts "": an error
	}{
		{"example.com=socks5h://127.0.0.1:9050", "example.com", "socks5h://127.0.0.1:9050"},
		{"10.0.0.0/8,.corp.example=socks5://u:p@127.0.0.1:1080", "10.0.0.0/8, corp.example", "socks5://u:p@127.0.0.1:1080"},
		{"=exact.example=socks4a://127.0.0.1", "=exact.example", "socks4a://127.0.0.1"},
		{"[::1]:8080=direct", "[::1]:8080", "direct"},
		{"*:443=socks5h://[::1]:1080", "*:443", "socks5h://[::1]:1080"},
		{"a.example=b=socks5h://127.0.0.1:1", "", ""}, // "a.example=b" is no list
		{"socks5h://127.0.0.1:1080", "", ""},
		{"=socks5h://127.0.0.1:1080", "", ""},
		{"example.com=", "", ""},
		{"example.com=directly", "", ""},
		{"example.com=http://127.0.0.1:3128", "", ""},
		{"300.1.1.1=direct", "", ""},
		{"", "", ""},
	} {
		hosts, via, err := parseRoute(tc.in)
		if tc.hosts == "" {
			assert.Error(t, err, "%q", tc.in)
			continue
		}
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.hosts, hosts.String(), "%q", tc.in)
		assert.Equal(t, tc.via, via, "%q", tc.in)
	}
}

func TestUpstreamRouter(t *testing.T) {
	d, err := upstream(nil, nil, nil)
	require.NoError(t, err)
	assert.Nil(t, d, "no peers, no routes: the gateway dials, and guards, itself")

	d, err = upstream([]string{"socks5h://127.0.0.1:1", "socks5h://127.0.0.1:2"}, []string{
		"a.example=socks5h://127.0.0.1:3",
		"10.0.0.0/8=direct",
		"a.example=socks5h://127.0.0.1:4",
	}, nil)
	require.NoError(t, err)
	r, ok := d.(*dialer.Router)
	require.True(t, ok, "%T", d)
	names := func(ds []proxy.ContextDialer) string {
		var s []string
		for _, p := range ds {
			s = append(s, p.(*dialer.Dialer).String())
		}
		return strings.Join(s, " ")
	}
	assert.Equal(t, "socks5h://127.0.0.1:1 socks5h://127.0.0.1:2", names(r.Peers))
	require.Len(t, r.Routes, 2, "the two a.example routes are one, its peers in turn")
	assert.Equal(t, "a.example", r.Routes[0].Dests.String())
	assert.Equal(t, "socks5h://127.0.0.1:3 socks5h://127.0.0.1:4", names(r.Routes[0].Peers))
	assert.Equal(t, "10.0.0.0/8", r.Routes[1].Dests.String())
	assert.Empty(t, r.Routes[1].Peers, "direct")
	assert.Nil(t, r.Direct, "the gateway's guard checks the direct dials")
}

func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"example.com=socks5h://127.0.0.1:9050", "=a.example=direct", "[::1]:8080=direct",
		"10.0.0.0/8,.corp=socks5://u:p@h:1", "a=b=c://d", "=://", "x=direct=direct",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hosts, via, err := parseRoute(s)
		if err != nil {
			return
		}
		if via != direct {
			if _, err := dialer.Parse(via); err != nil {
				t.Fatalf("%q: the URL %q does not parse: %v", s, via, err)
			}
		}
		if _, err := dialer.ParseHosts(hosts.String()); err != nil {
			t.Fatalf("%q: hosts %q do not read back: %v", s, hosts.String(), err)
		}
	})
}
