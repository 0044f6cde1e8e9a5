package dialer_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
)

func TestHosts(t *testing.T) {
	tests := []struct {
		list    string
		address string
		want    bool
	}{
		// Domains: the name and its subdomains, with or without the dot.
		{"example.com", "example.com:80", true},
		{"example.com", "www.example.com:443", true},
		{"example.com", "a.b.example.com:443", true},
		{".example.com", "example.com:80", true},
		{".example.com", "www.example.com:80", true},
		{"*.example.com", "www.example.com:80", true},
		{"example.com", "badexample.com:80", false},
		{"example.com", "example.com.evil:80", false},
		{"example.com", "com:80", false},
		{"Example.COM", "WWW.example.com:80", true},
		{"example.com.", "www.example.com:80", true},
		{"example.com", "www.example.com.:80", true},
		{"example.com", "example.com", true},
		{"localhost", "127.0.0.1:80", false}, // names are not resolved
		// Everything.
		{"*", "anything.example:1", true},
		{"*", "[2001:db8::1]:1", true},
		// IP addresses and networks.
		{"192.0.2.1", "192.0.2.1:80", true},
		{"192.0.2.1", "192.0.2.2:80", false},
		{"10.0.0.0/8", "10.1.2.3:80", true},
		{"10.0.0.0/8", "11.1.2.3:80", false},
		{"10.1.2.3/8", "10.200.0.1:80", true}, // host bits set, as people write it
		{"::1", "[::1]:80", true},
		{"[::1]", "[::1]:80", true},
		{"fd00::/8", "[fd12:3456::1]:80", true},
		{"fd00::/8", "[fe80::1]:80", false},
		{"192.0.2.1", "[::ffff:192.0.2.1]:80", true},
		{"::ffff:10.0.0.0/104", "10.9.9.9:80", true},
		{"192.0.2.1", "192.0.2.1.example:80", false},
		{"10.0.0.0/8", "ten.example:80", false},
		// Ports.
		{"example.com:443", "www.example.com:443", true},
		{"example.com:443", "www.example.com:80", false},
		{"example.com:443", "example.com", false},
		{"192.0.2.1:80", "192.0.2.1:80", true},
		{"192.0.2.1:80", "192.0.2.1:81", false},
		{"[::1]:8080", "[::1]:8080", true},
		{"[::1]:8080", "[::1]:8081", false},
		{"example.com:8000-8099", "example.com:8050", true},
		{"example.com:8000-8099", "example.com:8100", false},
		{"*:443", "anything.example:443", true},
		{"*:443", "[::1]:80", false},
		{"[fd00::/8]:80", "[fd00::1]:80", true},
		{"10.0.0.0/8:80", "10.0.0.1:80", true},
		{"10.0.0.0/255.0.0.0", "10.0.0.1:80", true},
		{"=example.com", "example.com:80", true},
		{"=example.com", "EXAMPLE.com.:80", true},
		{"=example.com", "www.example.com:80", false},
		{"=example.com:443", "example.com:80", false},
		// Lists.
		{"a.example, b.example ,c.example", "b.example:80", true},
		{"a.example b.example\tc.example", "c.example:80", true},
		{"a.example,,", "a.example:80", true},
		{"", "example.com:80", false},
		{" , ", "example.com:80", false},
	}
	for _, tt := range tests {
		t.Run(tt.list+" "+tt.address, func(t *testing.T) {
			h, err := dialer.ParseHosts(tt.list)
			require.NoError(t, err)
			assert.Equal(t, tt.want, h.Contains(tt.address))
		})
	}

	var zero dialer.Hosts
	assert.False(t, zero.Contains("example.com:80"), "the zero Hosts contains nothing")
}

func TestParseHostsErrors(t *testing.T) {
	for _, list := range []string{
		"10.0.0.0/33", "10.0.0.0/99", "host:99999", "host:0", "example.com:http", "300.1.1.1",
		"1.2.3", "a..b", "*.", "..", "exa_mple.com/x", "[::1", "fe80::1%eth0", "example.com:80-79",
		"example.com:", ":80", "=", "=.example.com", "=10.0.0.1", "good.example, 10.0.0.0/33",
	} {
		t.Run(list, func(t *testing.T) {
			h, err := dialer.ParseHosts(list)
			require.Error(t, err)
			assert.Equal(t, "", h.String(), "no hosts beside an error")
			var he *dialer.HostsError
			require.ErrorAs(t, err, &he)
			assert.Len(t, he.Errs, 1)
		})
	}
	assert.Panics(t, func() { dialer.MustParseHosts("10.0.0.0/33") })
}

func TestHostsString(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"example.com", "example.com"},
		{".Example.COM.", "Example.COM"},
		{"*.example.com:443", "example.com:443"},
		{"*", "*"},
		{"*:443", "*:443"},
		{"10.1.2.3/8 192.0.2.1", "10.0.0.0/8, 192.0.2.1"},
		{"[::1]:8080, [fd00::/8]:8000-8099", "[::1]:8080, [fd00::/8]:8000-8099"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"=Example.COM:80", "=Example.COM:80"},
		{"", ""},
	} {
		h := dialer.MustParseHosts(c.in)
		assert.Equal(t, c.want, h.String(), c.in)
		again := dialer.MustParseHosts(h.String())
		assert.Equal(t, h.String(), again.String(), "String reads back")
	}
}
