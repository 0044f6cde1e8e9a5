package match

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIP(t *testing.T) {
	nets := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("fd00::/8"),
		netip.MustParsePrefix("::ffff:192.168.0.0/112"),
	}
	for _, c := range []struct {
		ip   string
		want bool
	}{
		{"10.1.2.3", true},
		{"::ffff:10.1.2.3", true},
		{"11.0.0.1", false},
		{"fd12::1", true},
		{"fd12::1%eth0", true},
		{"fe80::1", false},
		{"192.168.7.7", true},
		{"192.169.0.1", false},
	} {
		assert.Equal(t, c.want, IP(nets, netip.MustParseAddr(c.ip)), c.ip)
	}
	assert.False(t, IP(nets, netip.Addr{}), "the invalid address")
	assert.False(t, IP(nil, netip.MustParseAddr("10.0.0.1")), "no networks")
}

func TestDomain(t *testing.T) {
	for _, c := range []struct {
		domain, name string
		want         bool
	}{
		{"example.com", "example.com", true},
		{"example.com", "WWW.Example.COM", true},
		{"example.com.", "www.example.com", true},
		{"example.com", "www.example.com.", true},
		{"example.com", "badexample.com", false},
		{"example.com", "example.com.evil", false},
		{"www.example.com", "example.com", false},
		{"example.com", "", false},
		{"", "example.com", false},
		{".", "example.com", false},
		{"com", "example.com", true},
	} {
		assert.Equal(t, c.want, Domain(c.domain, c.name), "%q in %q", c.name, c.domain)
	}
	assert.True(t, Domains([]string{"a.test", "example.com"}, "x.example.com"))
	assert.False(t, Domains(nil, "x.example.com"))
}

func TestParsePrefix(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"10.0.0.0/8", "10.0.0.0/8"},
		{"10.1.2.3/8", "10.0.0.0/8"},
		{"10.0.0.0/255.0.0.0", "10.0.0.0/8"},
		{"192.168.1.0/255.255.255.128", "192.168.1.0/25"},
		{"0.0.0.0/0.0.0.0", "0.0.0.0/0"},
		{"192.0.2.1", "192.0.2.1/32"},
		{"::1", "::1/128"},
		{"fd00::/8", "fd00::/8"},
		{"::ffff:10.0.0.0/104", "10.0.0.0/8"},
		{"::ffff:10.0.0.1", "10.0.0.1/32"},
	} {
		p, err := ParsePrefix(c.in)
		if assert.NoError(t, err, c.in) {
			assert.Equal(t, c.want, p.String(), c.in)
		}
	}
	for _, in := range []string{
		"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/08",
		"10.0.0.0/255.0.255.0", "fd00::/255.0.0.0", "300.1.1.1", "fe80::1%eth0/64",
		"example.com", "", "/8", "10.0.0.0/8/8",
	} {
		_, err := ParsePrefix(in)
		assert.ErrorIs(t, err, ErrSyntax, "%q", in)
	}
}

func TestParseDomain(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"example.com", "example.com"},
		{".example.com", "example.com"},
		{"*.example.com", "example.com"},
		{"example.com.", "example.com"},
		{"Local_Host-1", "Local_Host-1"},
		{"1.example", "1.example"},
		{"123abc", "123abc"},
	} {
		got, err := ParseDomain(c.in)
		if assert.NoError(t, err, c.in) {
			assert.Equal(t, c.want, got)
		}
	}
	for _, in := range []string{
		"", ".", "*.", "a..b", "exa mple.com", "300.1.1.1", "1.2.3", "*example.com",
		"example.com:80", "[::1]", "ex/ample", "..example.com",
		string(make([]byte, 64)) + ".com",
	} {
		_, err := ParseDomain(in)
		require.Error(t, err, "%q", in)
		assert.ErrorIs(t, err, ErrSyntax)
	}
	label := strings.Repeat("a", 63)
	_, err := ParseDomain(strings.Repeat(label+".", 3) + label[:61]) // 253 bytes
	assert.NoError(t, err)
	_, err = ParseDomain(strings.Repeat(label+".", 3) + label[:62]) // 254 bytes
	assert.ErrorIs(t, err, ErrSyntax)
}

func TestErrorMessage(t *testing.T) {
	_, err := ParsePrefix("10.0.0.0/33")
	assert.EqualError(t, err, `invalid network "10.0.0.0/33": a prefix longer than the address`)
}
