package listener

import (
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sockstap/sockstap/socks5"
)

func TestSensitive(t *testing.T) {
	for _, tc := range []struct {
		ip   string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.200.0.9", true},
		{"::1", true},
		{"0.0.0.0", true},
		{"::", true},
		{"169.254.169.254", true},
		{"169.254.170.2", true},
		{"fe80::1", true},
		{"fd00:ec2::254", true},
		{"100.100.100.200", true},
		{"192.0.0.192", true},
		{"::ffff:127.0.0.1", true},       // IPv4-mapped
		{"::ffff:169.254.169.254", true}, // IPv4-mapped
		{"::127.0.0.1", true},            // IPv4-compatible
		{"64:ff9b::7f00:1", true},        // NAT64
		{"64:ff9b:1::a9fe:a9fe", true},   // local-use NAT64, 169.254.169.254
		{"2002:7f00:1::1", true},         // 6to4 of 127.0.0.1
		{"2002:a9fe:a9fe::1", true},      // 6to4 of 169.254.169.254
		{"fe80::1%eth0", true},
		{"192.0.2.1", false},
		{"10.0.0.1", false},
		{"100.100.100.201", false},
		{"2001:db8::1", false},
		{"::ffff:192.0.2.1", false},
		{"64:ff9b::c000:201", false},
		{"2002:c000:201::1", false},
	} {
		assert.Equal(t, tc.want, Sensitive(netip.MustParseAddr(tc.ip)), tc.ip)
	}
}

func request(client, target string) *Request {
	r := &Request{Version: 5, Command: socks5.CmdConnect}
	ap := netip.MustParseAddrPort(client)
	r.Client = net.TCPAddrFromAddrPort(ap)
	a, err := socks5.ParseAddr(target)
	if err != nil {
		panic(err)
	}
	r.Target = a
	return r
}

func TestDefaultPolicy(t *testing.T) {
	authed := func(r *Request) *Request {
		r.User, r.Authenticated, r.Method = "alice", true, socks5.AuthUserPass
		return r
	}
	dialed := func(r *Request, ip string) *Request {
		r.DialedIP = netip.MustParseAddr(ip)
		return r
	}
	for _, tc := range []struct {
		name  string
		r     *Request
		allow bool
	}{
		{"loopback client", request("127.0.0.1:5000", "192.0.2.1:80"), true},
		{"loopback client to loopback", request("[::1]:5000", "127.0.0.1:80"), true},
		{"remote unauthenticated", request("192.0.2.9:5000", "192.0.2.1:80"), false},
		{"remote authenticated", authed(request("192.0.2.9:5000", "192.0.2.1:80")), true},
		{"remote authenticated to loopback", authed(request("192.0.2.9:5000", "127.0.0.1:80")), false},
		{"remote authenticated to mapped loopback", authed(request("192.0.2.9:5000", "[::ffff:127.0.0.1]:80")), false},
		{"remote authenticated to metadata", authed(request("192.0.2.9:5000", "169.254.169.254:80")), false},
		{"remote authenticated, name", authed(request("192.0.2.9:5000", "example.com:80")), true},
		{"remote authenticated, name dialed to loopback", dialed(authed(request("192.0.2.9:5000", "example.com:80")), "127.0.0.1"), false},
		{"remote authenticated, name dialed elsewhere", dialed(authed(request("192.0.2.9:5000", "example.com:80")), "192.0.2.5"), true},
		{"mapped loopback client", request("[::ffff:127.0.0.1]:5000", "192.0.2.1:80"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := DefaultPolicy(context.Background(), tc.r)
			if tc.allow {
				assert.NoError(t, err)
			} else {
				assert.IsType(t, &Denial{}, err)
			}
		})
	}
}

func TestRules(t *testing.T) {
	rules := Rules{
		{Allow: false, Domains: []string{"blocked.example"}, Reason: "blocked domain"},
		{Allow: false, Dests: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Reason: "internal network"},
		{Allow: true, Users: []string{"admin"}},
		{Allow: true, Commands: []socks5.Command{socks5.CmdConnect},
			Clients: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
			Ports:   []PortRange{Port(80), {First: 8000, Last: 8999}}},
		{Allow: true, Domains: []string{"Open.Example."}},
		{Allow: true, Dests: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			Clients: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}},
		{Allow: true, Clients: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")}},
	}
	admin := func(r *Request) *Request {
		r.User, r.Authenticated = "admin", true
		return r
	}
	claims := func(r *Request) *Request { // SOCKS4: a user id nothing verified
		r.User, r.Version = "admin", 4
		return r
	}
	dialed := func(r *Request, ip string) *Request {
		r.DialedIP = netip.MustParseAddr(ip)
		return r
	}
	bind := func(r *Request) *Request {
		r.Command = socks5.CmdBind
		return r
	}
	for _, tc := range []struct {
		name   string
		r      *Request
		reason string // empty: allowed
	}{
		{"blocked domain", request("192.0.2.1:1", "blocked.example:80"), "blocked domain"},
		{"blocked subdomain", admin(request("192.0.2.1:1", "www.BLOCKED.example:80")), "blocked domain"},
		{"not a subdomain", request("192.0.2.1:1", "notblocked.example:80"), ""},
		{"internal network by address", admin(request("192.0.2.1:1", "10.1.2.3:80")), "internal network"},
		{"internal network at dial time", dialed(admin(request("192.0.2.1:1", "intranet.example:80")), "10.9.9.9"), "internal network"},
		{"admin anywhere", admin(request("198.51.100.1:1", "192.0.2.200:22")), ""},
		{"claimed admin", claims(request("198.51.100.1:1", "192.0.2.200:22")), "no rule matched"},
		{"office web", request("192.0.2.1:1", "example.com:8080"), ""},
		{"office ssh", request("192.0.2.1:1", "example.com:22"), "no rule matched"},
		{"office bind", bind(request("192.0.2.1:1", "example.com:80")), "no rule matched"},
		{"open domain", request("198.51.100.1:1", "www.open.example:22"), ""},
		{"loopback opened by a rule naming it", request("198.51.100.1:1", "127.0.0.1:80"), ""},
		{"loopback not opened by a rule allowing all", request("203.0.113.1:1", "127.0.0.1:80"),
			"destination 127.0.0.1 is only for clients on loopback unless a rule names it"},
		{"metadata not opened by a rule allowing all", dialed(request("203.0.113.1:1", "meta.example:80"), "169.254.169.254"),
			"destination 169.254.169.254 is only for clients on loopback unless a rule names it"},
		{"everything else", request("203.0.113.1:1", "example.com:80"), ""},
		{"stranger", request("192.0.2.99:1", "example.com:22"), "no rule matched"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rules.Policy(context.Background(), tc.r)
			if tc.reason == "" {
				assert.NoError(t, err)
				return
			}
			if assert.IsType(t, &Denial{}, err) {
				assert.Equal(t, tc.reason, err.(*Denial).Reason)
			}
		})
	}
}

func TestIsHTTP(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want bool
	}{
		{"GET / HTTP/1.1\r\n", true},
		{"POST /x HTTP/1.1\r\n", true},
		{"OPTIONS * HTTP/1.1\r\n", true},
		{"CONNECT host:443 HTTP/1.1\r\n", true},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", true},
		{"DELE", true}, // as far as it goes, DELETE
		{"GET", false}, // too short to tell
		{"get / HTTP/1.1", false},
		{"\x16\x03\x01\x02\x00", false},
		{"SSH-2.0-OpenSSH", false},
		{"", false},
		{"GETX / HTTP/1.1", false},
	} {
		assert.Equal(t, tc.want, IsHTTP([]byte(tc.in)), "%q", tc.in)
	}
}
