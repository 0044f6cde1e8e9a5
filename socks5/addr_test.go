package socks5_test

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/socks5"
)

var _ net.Addr = socks5.Addr{}

func TestParseAddr(t *testing.T) {
	long := strings.Repeat("a", 255)
	tests := []struct {
		in   string
		want socks5.Addr
		typ  socks5.AddrType
		str  string // String, when not in
	}{
		{in: "192.0.2.1:80", want: socks5.Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 80}, typ: socks5.AddrIPv4},
		{in: "0.0.0.0:0", want: socks5.Addr{IP: netip.IPv4Unspecified()}, typ: socks5.AddrIPv4},
		{in: "[2001:db8::1]:443", want: socks5.Addr{IP: netip.MustParseAddr("2001:db8::1"), Port: 443}, typ: socks5.AddrIPv6},
		{in: "[::1]:65535", want: socks5.Addr{IP: netip.IPv6Loopback(), Port: 65535}, typ: socks5.AddrIPv6},
		{in: "[::ffff:192.0.2.1]:80", want: socks5.Addr{IP: netip.MustParseAddr("::ffff:192.0.2.1"), Port: 80}, typ: socks5.AddrIPv6},
		{in: "example.com:80", want: socks5.Addr{Name: "example.com", Port: 80}, typ: socks5.AddrDomain},
		{in: "x:1", want: socks5.Addr{Name: "x", Port: 1}, typ: socks5.AddrDomain},
		{in: "localhost:1080", want: socks5.Addr{Name: "localhost", Port: 1080}, typ: socks5.AddrDomain},
		{in: long + ":8080", want: socks5.Addr{Name: long, Port: 8080}, typ: socks5.AddrDomain},
		{in: "example.com:0080", want: socks5.Addr{Name: "example.com", Port: 80}, typ: socks5.AddrDomain, str: "example.com:80"},
	}
	for _, tt := range tests {
		t.Run(tt.in[:min(len(tt.in), 40)], func(t *testing.T) {
			a, err := socks5.ParseAddr(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, a)
			assert.Equal(t, tt.typ, a.Type())
			assert.Equal(t, "socks", a.Network())
			want := tt.in
			if tt.str != "" {
				want = tt.str
			}
			assert.Equal(t, want, a.String())
			assert.False(t, a.IsZero())

			again, err := socks5.ParseAddr(a.String())
			require.NoError(t, err)
			assert.Equal(t, a, again, "String parses back to the same Addr")
		})
	}
}

func TestParseAddrErrors(t *testing.T) {
	tests := []struct {
		name, in string
	}{
		{"empty", ""},
		{"no port", "example.com"},
		{"empty port", "example.com:"},
		{"empty name", ":80"},
		{"empty brackets", "[]:80"},
		{"name too long", strings.Repeat("a", 256) + ":80"},
		{"IPv6 zone", "[fe80::1%eth0]:80"},
		{"IPv6 numeric zone", "[fe80::1%1]:80"},
		{"IPv6 empty zone", "[fe80::1%]:80"},
		{"IPv4 zone", "192.0.2.1%eth0:80"},
		{"IPv4 in brackets with zone", "[192.0.2.1%1]:80"},
		{"port too big", "192.0.2.1:65536"},
		{"negative port", "192.0.2.1:-1"},
		{"signed port", "192.0.2.1:+80"},
		{"named port", "example.com:http"},
		{"IPv6 without brackets", "2001:db8::1:80"},
		{"missing bracket", "[::1:80"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := socks5.ParseAddr(tt.in)
			require.Error(t, err, "parsed as %#v", a)
			var ae *net.AddrError
			assert.ErrorAs(t, err, &ae, "a parse error is a *net.AddrError")
			assert.True(t, a.IsZero(), "no partial result")
		})
	}
}

// stringAddr is a net.Addr of no known type.
type stringAddr string

func (s stringAddr) Network() string { return "test" }
func (s stringAddr) String() string  { return string(s) }

func TestAddrFromNet(t *testing.T) {
	tests := []struct {
		name string
		in   net.Addr
		want socks5.Addr
	}{
		{
			"TCP IPv4, 16-byte form",
			&net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 80},
			socks5.Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 80},
		},
		{
			"TCP IPv4-mapped",
			&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 443},
			socks5.Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 443},
		},
		{
			"TCP IPv4, 4-byte form",
			&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1).To4(), Port: 1080},
			socks5.Addr{IP: netip.MustParseAddr("127.0.0.1"), Port: 1080},
		},
		{
			"TCP IPv6",
			&net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 22},
			socks5.Addr{IP: netip.MustParseAddr("2001:db8::1"), Port: 22},
		},
		{
			"TCP IPv6 zone dropped",
			&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 22, Zone: "eth0"},
			socks5.Addr{IP: netip.MustParseAddr("fe80::1"), Port: 22},
		},
		{
			"UDP IPv4-mapped",
			&net.UDPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 53},
			socks5.Addr{IP: netip.MustParseAddr("10.0.0.1"), Port: 53},
		},
		{
			"Addr",
			socks5.Addr{Name: "example.com", Port: 80},
			socks5.Addr{Name: "example.com", Port: 80},
		},
		{
			"*Addr",
			&socks5.Addr{Name: "example.com", Port: 80},
			socks5.Addr{Name: "example.com", Port: 80},
		},
		{
			"other, by its String",
			stringAddr("example.org:8080"),
			socks5.Addr{Name: "example.org", Port: 8080},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := socks5.AddrFromNet(tt.in)
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
			assert.Equal(t, tt.want.Type(), got.Type())
		})
	}

	_, err := socks5.AddrFromNet(stringAddr("no port here"))
	assert.Error(t, err)

	// A wrapper may return nil for an address it does not know.
	for _, na := range []net.Addr{nil, (*net.TCPAddr)(nil), (*net.UDPAddr)(nil), (*socks5.Addr)(nil)} {
		a, err := socks5.AddrFromNet(na)
		assert.Error(t, err, "%#v", na)
		assert.True(t, a.IsZero(), "%#v", na)
	}
}

func TestAddrFromAddrPort(t *testing.T) {
	a := socks5.AddrFromAddrPort(netip.MustParseAddrPort("[::ffff:192.0.2.7]:9"))
	assert.Equal(t, socks5.Addr{IP: netip.MustParseAddr("192.0.2.7"), Port: 9}, a)
	assert.Equal(t, socks5.AddrIPv4, a.Type())

	a = socks5.AddrFromAddrPort(netip.MustParseAddrPort("[fe80::1%eth0]:9"))
	assert.Equal(t, "", a.IP.Zone())
	assert.Equal(t, "[fe80::1]:9", a.String())
}

func TestAddrAccessors(t *testing.T) {
	var zero socks5.Addr
	assert.True(t, zero.IsZero())
	assert.Equal(t, "", zero.Host())
	assert.Equal(t, socks5.AddrType(0), zero.Type())
	_, ok := zero.AddrPort()
	assert.False(t, ok)

	ip := socks5.Addr{IP: netip.MustParseAddr("2001:db8::2"), Port: 8443}
	assert.Equal(t, "2001:db8::2", ip.Host())
	assert.Equal(t, "[2001:db8::2]:8443", ip.String())
	ap, ok := ip.AddrPort()
	require.True(t, ok)
	assert.Equal(t, netip.MustParseAddrPort("[2001:db8::2]:8443"), ap)

	// A name wins over an IP set beside it.
	name := socks5.Addr{Name: "example.com", IP: netip.MustParseAddr("192.0.2.1"), Port: 80}
	assert.Equal(t, "example.com", name.Host())
	assert.Equal(t, socks5.AddrDomain, name.Type())
	_, ok = name.AddrPort()
	assert.False(t, ok, "a name has no AddrPort")
}

// An address that cannot travel is an error where it is encoded, never a
// different address (such as 0.0.0.0, which a server may take as its own).
func TestEncodeBadAddr(t *testing.T) {
	bad := []struct {
		name string
		addr socks5.Addr
	}{
		{"zero", socks5.Addr{Port: 80}},
		{"name too long", socks5.Addr{Name: strings.Repeat("a", 256), Port: 80}},
		{"name far too long", socks5.Addr{Name: strings.Repeat("a", 70000), Port: 80}},
		{"IPv6 zone", socks5.Addr{IP: netip.MustParseAddr("fe80::1%eth0"), Port: 80}},
	}
	prefix := []byte("keep")
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			encoders := map[string]func([]byte) ([]byte, error){
				"request":  socks5.Request{Command: socks5.CmdConnect, Addr: tt.addr}.AppendBinary,
				"datagram": socks5.Datagram{Addr: tt.addr, Payload: []byte("x")}.AppendBinary,
			}
			if !tt.addr.IsZero() {
				encoders["response"] = socks5.Response{Addr: tt.addr}.AppendBinary
			}
			for what, enc := range encoders {
				b, err := enc(append([]byte(nil), prefix...))
				assert.Error(t, err, what)
				assert.Equal(t, prefix, b, "%s: the buffer is returned as it was", what)
			}
		})
	}

	// The longest name there is encodes.
	b, err := socks5.Request{Command: socks5.CmdConnect, Addr: socks5.Addr{Name: strings.Repeat("a", 255), Port: 80}}.AppendBinary(nil)
	require.NoError(t, err)
	assert.Len(t, b, 4+1+255+2)
	assert.Equal(t, byte(255), b[4])
}

// TestAddrStringIP checks that an IP address's String is host and port
// joined as net.JoinHostPort joins them, in every form an IP takes.
func TestAddrStringIP(t *testing.T) {
	for _, ip := range []string{"192.0.2.1", "0.0.0.0", "::1", "2001:db8::2", "::ffff:192.0.2.1", "fe80::1%eth0"} {
		for _, port := range []uint16{0, 80, 65535} {
			a := socks5.Addr{IP: netip.MustParseAddr(ip), Port: port}
			assert.Equal(t, net.JoinHostPort(ip, strconv.Itoa(int(port))), a.String())
		}
	}
}
