package socks5_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sockstap/sockstap/socks5"
)

func TestWireValues(t *testing.T) {
	// The values RFC 1928 (and Tor, for RESOLVE) put on the wire.
	tests := []struct {
		got  uint8
		want uint8
	}{
		{uint8(socks5.Version), 0x05},
		{uint8(socks5.UserPassVersion), 0x01},
		{uint8(socks5.AuthNone), 0x00},
		{uint8(socks5.AuthGSSAPI), 0x01},
		{uint8(socks5.AuthUserPass), 0x02},
		{uint8(socks5.AuthNoAcceptable), 0xff},
		{uint8(socks5.CmdConnect), 0x01},
		{uint8(socks5.CmdBind), 0x02},
		{uint8(socks5.CmdUDPAssociate), 0x03},
		{uint8(socks5.CmdResolve), 0xf0},
		{uint8(socks5.CmdResolvePTR), 0xf1},
		{uint8(socks5.AddrIPv4), 0x01},
		{uint8(socks5.AddrDomain), 0x03},
		{uint8(socks5.AddrIPv6), 0x04},
		{uint8(socks5.Succeeded), 0x00},
		{uint8(socks5.GeneralFailure), 0x01},
		{uint8(socks5.NotAllowed), 0x02},
		{uint8(socks5.NetworkUnreachable), 0x03},
		{uint8(socks5.HostUnreachable), 0x04},
		{uint8(socks5.ConnectionRefused), 0x05},
		{uint8(socks5.TTLExpired), 0x06},
		{uint8(socks5.CommandNotSupported), 0x07},
		{uint8(socks5.AddrTypeNotSupported), 0x08},
	}
	for i, tt := range tests {
		assert.Equal(t, tt.want, tt.got, "value %d", i)
	}
}

func TestAuthMethodString(t *testing.T) {
	tests := []struct {
		m    socks5.AuthMethod
		want string
	}{
		{socks5.AuthNone, "no authentication"},
		{socks5.AuthGSSAPI, "GSS-API"},
		{socks5.AuthUserPass, "username/password"},
		{socks5.AuthNoAcceptable, "no acceptable methods"},
		{0x03, "IANA method 0x03"},
		{0x7f, "IANA method 0x7f"},
		{0x80, "private method 0x80"},
		{0xfe, "private method 0xfe"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.m.String())
			assert.Equal(t, tt.want, fmt.Sprint(tt.m), "fmt uses String")
		})
	}
}

func TestCommandString(t *testing.T) {
	tests := []struct {
		c    socks5.Command
		want string
	}{
		{socks5.CmdConnect, "CONNECT"},
		{socks5.CmdBind, "BIND"},
		{socks5.CmdUDPAssociate, "UDP ASSOCIATE"},
		{socks5.CmdResolve, "RESOLVE"},
		{socks5.CmdResolvePTR, "RESOLVE_PTR"},
		{0x00, "command 0x00"},
		{0x04, "command 0x04"},
		{0xff, "command 0xff"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.c.String())
		})
	}
}

func TestAddrTypeString(t *testing.T) {
	tests := []struct {
		a    socks5.AddrType
		want string
	}{
		{socks5.AddrIPv4, "IPv4"},
		{socks5.AddrDomain, "domain name"},
		{socks5.AddrIPv6, "IPv6"},
		{0x00, "address type 0x00"},
		{0x02, "address type 0x02"},
		{0xab, "address type 0xab"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.a.String())
		})
	}
}

func TestReplyString(t *testing.T) {
	tests := []struct {
		r    socks5.Reply
		want string
	}{
		{0x00, "succeeded"},
		{0x01, "general SOCKS server failure"},
		{0x02, "connection not allowed by ruleset"},
		{0x03, "network unreachable"},
		{0x04, "host unreachable"},
		{0x05, "connection refused"},
		{0x06, "TTL expired"},
		{0x07, "command not supported"},
		{0x08, "address type not supported"},
		{0x09, "reply 0x09"},
		{0xff, "reply 0xff"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.r.String())
		})
	}
}
