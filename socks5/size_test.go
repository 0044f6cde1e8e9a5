package socks5

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMessageSize checks that each message's size is its encoding's
// length, so that writeMessage's buffer is allocated once and no larger.
func TestMessageSize(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.1")
	v6 := netip.MustParseAddr("2001:db8::1")
	mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	for _, tc := range []struct {
		name string
		m    message
	}{
		{"greeting one method", Greeting{Methods: []AuthMethod{AuthNone}}},
		{"greeting three methods", Greeting{Methods: []AuthMethod{AuthNone, AuthGSSAPI, AuthUserPass}}},
		{"method selection", MethodSelection{Method: AuthUserPass}},
		{"username/password", UserPassRequest{Username: "alice", Password: "secret"}},
		{"username/password longest", UserPassRequest{Username: strings.Repeat("u", 255), Password: strings.Repeat("p", 255)}},
		{"username/password response", UserPassResponse{Status: 1}},
		{"reply zero address", Response{Reply: GeneralFailure}},
		{"reply IPv4", Response{Addr: Addr{IP: v4, Port: 1080}}},
		{"reply IPv4-mapped", Response{Addr: Addr{IP: mapped, Port: 1080}}},
		{"reply IPv6", Response{Addr: Addr{IP: v6, Port: 1080}}},
		{"reply name", Response{Addr: Addr{Name: "proxy.example.net", Port: 1080}}},
		{"reply longest name", Response{Addr: Addr{Name: strings.Repeat("a", MaxNameLen), Port: 1080}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := tc.m.AppendBinary(nil)
			require.NoError(t, err)
			assert.Equal(t, len(b), tc.m.size())
		})
	}
}
