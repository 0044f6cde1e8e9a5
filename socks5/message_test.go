package socks5_test

import (
	"bytes"
	"encoding"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// trailer is what a peer sends right behind a message: it must stay unread.
var trailer = []byte("GET / HTTP/1.1\r\n")

// prefix is what a caller's buffer holds before a message is appended.
var prefix = []byte{0xde, 0xad}

func ipv4(s string) socks5.Addr {
	ap := netip.MustParseAddrPort(s)
	return socks5.Addr{IP: ap.Addr(), Port: ap.Port()}
}

func name(host string, port uint16) socks5.Addr { return socks5.Addr{Name: host, Port: port} }

// checkWire checks one message against its encoding written out by hand:
// AppendBinary appends exactly wire to a caller's buffer, and read decodes
// wire to want, consuming exactly wire's bytes, however the reader splits
// them.
func checkWire[M encoding.BinaryAppender](t *testing.T, read func(io.Reader) (M, error), want M, wire []byte) {
	t.Helper()

	buf := append(make([]byte, 0, 64), prefix...)
	b, err := want.AppendBinary(buf)
	require.NoError(t, err)
	assert.Equal(t, sockstest.Join(prefix, wire), b, "AppendBinary appends the message to what the buffer held")

	r := bytes.NewReader(sockstest.Join(wire, trailer))
	got, err := read(r)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	rest, _ := io.ReadAll(r)
	assert.Equal(t, trailer, rest, "the bytes after the message stay in the reader")

	// A reader that hands out one byte at a time: still the same message,
	// still nothing more consumed.
	r = bytes.NewReader(sockstest.Join(wire, trailer))
	got, err = read(iotest.OneByteReader(r))
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, len(trailer), r.Len())

	// A reader that returns its last bytes with io.EOF.
	got, err = read(iotest.DataErrReader(bytes.NewReader(wire)))
	require.NoError(t, err)
	assert.Equal(t, want, got)
}

func hexBytes(s string) []byte {
	var b []byte
	for _, f := range strings.Fields(s) {
		var v byte
		_, err := fmt.Sscanf(f, "%02x", &v)
		if err != nil {
			panic(err)
		}
		b = append(b, v)
	}
	return b
}

func TestGreetingWire(t *testing.T) {
	tests := []struct {
		name string
		msg  socks5.Greeting
		wire []byte
	}{
		{"no authentication", socks5.Greeting{Methods: []socks5.AuthMethod{socks5.AuthNone}}, hexBytes("05 01 00")},
		{"none or username/password", socks5.Greeting{Methods: []socks5.AuthMethod{socks5.AuthNone, socks5.AuthUserPass}}, hexBytes("05 02 00 02")},
		{"GSS-API, username/password, private", socks5.Greeting{Methods: []socks5.AuthMethod{socks5.AuthGSSAPI, socks5.AuthUserPass, 0x80}}, hexBytes("05 03 01 02 80")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkWire(t, socks5.ReadGreeting, tt.msg, tt.wire)
		})
	}

	t.Run("255 methods", func(t *testing.T) {
		g := socks5.Greeting{Methods: make([]socks5.AuthMethod, 255)}
		wire := []byte{5, 255}
		for i := range g.Methods {
			g.Methods[i] = socks5.AuthMethod(i)
			wire = append(wire, byte(i))
		}
		checkWire(t, socks5.ReadGreeting, g, wire)
	})
}

// The methods a greeting is read with are its own: appending to them
// changes nothing else.
func TestGreetingMethodsAreItsOwn(t *testing.T) {
	g, err := socks5.ReadGreeting(bytes.NewReader(hexBytes("05 02 00 02")))
	require.NoError(t, err)
	assert.Equal(t, len(g.Methods), cap(g.Methods))
	more := append(g.Methods, socks5.AuthGSSAPI)
	more[0] = 0x80
	assert.Equal(t, []socks5.AuthMethod{socks5.AuthNone, socks5.AuthUserPass}, g.Methods)
}

func TestGreetingEncodeErrors(t *testing.T) {
	for _, n := range []int{0, 256} {
		g := socks5.Greeting{Methods: make([]socks5.AuthMethod, n)}
		b, err := g.AppendBinary(prefix)
		assert.Error(t, err, "%d methods", n)
		assert.Equal(t, prefix, b)
	}
}

func TestMethodSelectionWire(t *testing.T) {
	checkWire(t, socks5.ReadMethodSelection, socks5.MethodSelection{Method: socks5.AuthNone}, hexBytes("05 00"))
	checkWire(t, socks5.ReadMethodSelection, socks5.MethodSelection{Method: socks5.AuthUserPass}, hexBytes("05 02"))
	checkWire(t, socks5.ReadMethodSelection, socks5.MethodSelection{Method: socks5.AuthNoAcceptable}, hexBytes("05 ff"))
}

func TestUserPassWire(t *testing.T) {
	// RFC 1929: VER (0x01), ULEN, UNAME, PLEN, PASSWD.
	checkWire(t, socks5.ReadUserPassRequest,
		socks5.UserPassRequest{Username: "alice", Password: "secret"},
		sockstest.Join([]byte{0x01, 0x05}, []byte("alice"), []byte{0x06}, []byte("secret")))
	checkWire(t, socks5.ReadUserPassRequest,
		socks5.UserPassRequest{Username: "u", Password: "p"},
		hexBytes("01 01 75 01 70"))

	long := strings.Repeat("x", 255)
	checkWire(t, socks5.ReadUserPassRequest,
		socks5.UserPassRequest{Username: long, Password: long},
		sockstest.Join([]byte{1, 255}, []byte(long), []byte{255}, []byte(long)))

	checkWire(t, socks5.ReadUserPassResponse, socks5.UserPassResponse{Status: 0}, hexBytes("01 00"))
	checkWire(t, socks5.ReadUserPassResponse, socks5.UserPassResponse{Status: 1}, hexBytes("01 01"))
	checkWire(t, socks5.ReadUserPassResponse, socks5.UserPassResponse{Status: 0xff}, hexBytes("01 ff"))
}

func TestUserPassEncodeErrors(t *testing.T) {
	long := strings.Repeat("x", 256)
	for _, u := range []socks5.UserPassRequest{
		{Username: "", Password: "p"},
		{Username: "u", Password: ""},
		{Username: long, Password: "p"},
		{Username: "u", Password: long},
	} {
		b, err := u.AppendBinary(prefix)
		assert.Error(t, err, "%d-byte username, %d-byte password", len(u.Username), len(u.Password))
		assert.Equal(t, prefix, b)
	}
}

func TestUserPassRequestHidesPassword(t *testing.T) {
	u := socks5.UserPassRequest{Username: "alice", Password: "hunter2"}
	wrapped := struct{ Req socks5.UserPassRequest }{u}
	for _, s := range []string{
		u.String(),
		fmt.Sprint(u),
		fmt.Sprintf("%v %+v %#v %s", u, u, u, u),
		fmt.Sprintf("%v %+v", wrapped, wrapped),
	} {
		assert.NotContains(t, s, "hunter2")
		assert.Contains(t, s, "alice")
	}
}

func TestRequestWire(t *testing.T) {
	tests := []struct {
		name string
		msg  socks5.Request
		wire string
	}{
		{
			"CONNECT to a domain name",
			socks5.Request{Command: socks5.CmdConnect, Addr: name("example.com", 80)},
			"05 01 00 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50",
		},
		{
			"CONNECT to IPv4",
			socks5.Request{Command: socks5.CmdConnect, Addr: ipv4("192.0.2.1:443")},
			"05 01 00 01 c0 00 02 01 01 bb",
		},
		{
			"BIND on IPv6",
			socks5.Request{Command: socks5.CmdBind, Addr: socks5.Addr{IP: netip.MustParseAddr("2001:db8::1"), Port: 21}},
			"05 02 00 04 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 00 15",
		},
		{
			"UDP ASSOCIATE from any address",
			socks5.Request{Command: socks5.CmdUDPAssociate, Addr: ipv4("0.0.0.0:0")},
			"05 03 00 01 00 00 00 00 00 00",
		},
		{
			"Tor RESOLVE",
			socks5.Request{Command: socks5.CmdResolve, Addr: name("torproject.org", 0)},
			"05 f0 00 03 0e 74 6f 72 70 72 6f 6a 65 63 74 2e 6f 72 67 00 00",
		},
		{
			"Tor RESOLVE_PTR",
			socks5.Request{Command: socks5.CmdResolvePTR, Addr: ipv4("192.0.2.9:0")},
			"05 f1 00 01 c0 00 02 09 00 00",
		},
		{
			"unknown command, carried as it is",
			socks5.Request{Command: 0x09, Addr: ipv4("127.0.0.1:65535")},
			"05 09 00 01 7f 00 00 01 ff ff",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkWire(t, socks5.ReadRequest, tt.msg, hexBytes(tt.wire))
		})
	}
}

func TestResponseWire(t *testing.T) {
	tests := []struct {
		name string
		msg  socks5.Response
		wire string
	}{
		{
			"succeeded, bound to IPv4",
			socks5.Response{Reply: socks5.Succeeded, Addr: ipv4("127.0.0.1:1080")},
			"05 00 00 01 7f 00 00 01 04 38",
		},
		{
			"succeeded, bound to IPv6",
			socks5.Response{Reply: socks5.Succeeded, Addr: socks5.Addr{IP: netip.IPv6Loopback(), Port: 8080}},
			"05 00 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 1f 90",
		},
		{
			"Tor RESOLVE_PTR answer, a name",
			socks5.Response{Reply: socks5.Succeeded, Addr: name("a.example", 0)},
			"05 00 00 03 09 61 2e 65 78 61 6d 70 6c 65 00 00",
		},
		{
			"connection refused",
			socks5.Response{Reply: socks5.ConnectionRefused, Addr: ipv4("0.0.0.0:0")},
			"05 05 00 01 00 00 00 00 00 00",
		},
		{
			"address type not supported",
			socks5.Response{Reply: socks5.AddrTypeNotSupported, Addr: ipv4("0.0.0.0:0")},
			"05 08 00 01 00 00 00 00 00 00",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkWire(t, socks5.ReadResponse, tt.msg, hexBytes(tt.wire))
		})
	}

	t.Run("the zero Addr is 0.0.0.0:0", func(t *testing.T) {
		b, err := socks5.Response{Reply: socks5.GeneralFailure}.AppendBinary(nil)
		require.NoError(t, err)
		assert.Equal(t, hexBytes("05 01 00 01 00 00 00 00 00 00"), b)
	})
}

func TestDatagramWire(t *testing.T) {
	tests := []struct {
		name string
		msg  socks5.Datagram
		wire string
	}{
		{
			"DNS query to IPv4",
			socks5.Datagram{Addr: ipv4("192.0.2.53:53"), Payload: []byte{0xab, 0xcd}},
			"00 00 00 01 c0 00 02 35 00 35 ab cd",
		},
		{
			"fragment 1 to a name",
			socks5.Datagram{Frag: 1, Addr: name("ex.org", 9), Payload: []byte("hi")},
			"00 00 01 03 06 65 78 2e 6f 72 67 00 09 68 69",
		},
		{
			"empty payload to IPv6",
			socks5.Datagram{Addr: socks5.Addr{IP: netip.IPv6Loopback(), Port: 7}, Payload: []byte{}},
			"00 00 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 07",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wire := hexBytes(tt.wire)
			b, err := tt.msg.AppendBinary(append([]byte(nil), prefix...))
			require.NoError(t, err)
			assert.Equal(t, sockstest.Join(prefix, wire), b)

			d, err := socks5.ParseDatagram(wire)
			require.NoError(t, err)
			assert.Equal(t, tt.msg, d)
		})
	}

	t.Run("the payload is a slice of the datagram", func(t *testing.T) {
		wire := hexBytes("00 00 00 01 c0 00 02 35 00 35 01 02 03")
		d, err := socks5.ParseDatagram(wire)
		require.NoError(t, err)
		require.Len(t, d.Payload, 3)
		assert.Same(t, &wire[10], &d.Payload[0])
		assert.Equal(t, 3, cap(d.Payload), "appending to the payload cannot write past the datagram")
	})
}

// Every message survives its own encoding.
func TestRoundTrip(t *testing.T) {
	addrs := []socks5.Addr{
		ipv4("0.0.0.0:0"),
		ipv4("255.255.255.255:65535"),
		{IP: netip.MustParseAddr("2001:db8::ff00:42:8329"), Port: 1},
		{IP: netip.MustParseAddr("::ffff:192.0.2.1"), Port: 2},
		name("a", 3),
		name(strings.Repeat("n", 255), 4),
		name("\x00\xff odd bytes", 5),
	}
	for _, a := range addrs {
		t.Run(a.String()[:min(len(a.String()), 30)], func(t *testing.T) {
			for _, cmd := range []socks5.Command{socks5.CmdConnect, socks5.CmdBind, socks5.CmdUDPAssociate, socks5.CmdResolve, socks5.CmdResolvePTR} {
				roundTrip(t, socks5.ReadRequest, socks5.Request{Command: cmd, Addr: a})
			}
			for code := socks5.Reply(0); code <= 0x09; code++ {
				roundTrip(t, socks5.ReadResponse, socks5.Response{Reply: code, Addr: a})
			}
			for _, frag := range []uint8{0, 1, 127, 255} {
				d := socks5.Datagram{Frag: frag, Addr: a, Payload: []byte("payload")}
				b, err := d.AppendBinary(nil)
				require.NoError(t, err)
				got, err := socks5.ParseDatagram(b)
				require.NoError(t, err)
				assert.Equal(t, d, got)
			}
		})
	}

	for m := range 256 {
		roundTrip(t, socks5.ReadMethodSelection, socks5.MethodSelection{Method: socks5.AuthMethod(m)})
		roundTrip(t, socks5.ReadUserPassResponse, socks5.UserPassResponse{Status: uint8(m)})
		roundTrip(t, socks5.ReadGreeting, socks5.Greeting{Methods: []socks5.AuthMethod{socks5.AuthMethod(m)}})
	}
	roundTrip(t, socks5.ReadUserPassRequest, socks5.UserPassRequest{Username: "user:with@odd\x00bytes", Password: "p\xff"})
}

func roundTrip[M encoding.BinaryAppender](t *testing.T, read func(io.Reader) (M, error), m M) {
	t.Helper()
	b, err := m.AppendBinary(nil)
	require.NoError(t, err)
	r := bytes.NewReader(b)
	got, err := read(r)
	require.NoError(t, err)
	assert.Equal(t, m, got)
	assert.Zero(t, r.Len(), "the whole encoding is read")
}

// The strings a Read function returns are the message's own: reading the
// next message into the same connection does not change them.
func TestReadStringsStay(t *testing.T) {
	wire := sockstest.Join(
		hexBytes("05 01 00 03 03 61 61 61 00 50"),
		hexBytes("05 01 00 03 03 62 62 62 00 50"))
	r := bytes.NewReader(wire)
	first, err := socks5.ReadRequest(r)
	require.NoError(t, err)
	second, err := socks5.ReadRequest(r)
	require.NoError(t, err)
	assert.Equal(t, "aaa", first.Addr.Name)
	assert.Equal(t, "bbb", second.Addr.Name)

	up := sockstest.Join(hexBytes("01 02 75 31 02 70 31"), hexBytes("01 02 75 32 02 70 32"))
	r = bytes.NewReader(up)
	u1, err := socks5.ReadUserPassRequest(r)
	require.NoError(t, err)
	u2, err := socks5.ReadUserPassRequest(r)
	require.NoError(t, err)
	assert.Equal(t, socks5.UserPassRequest{Username: "u1", Password: "p1"}, u1)
	assert.Equal(t, socks5.UserPassRequest{Username: "u2", Password: "p2"}, u2)
}

func TestMalformed(t *testing.T) {
	readers := map[string]func(io.Reader) error{
		"greeting":         func(r io.Reader) error { _, err := socks5.ReadGreeting(r); return err },
		"method selection": func(r io.Reader) error { _, err := socks5.ReadMethodSelection(r); return err },
		"userpass request": func(r io.Reader) error { _, err := socks5.ReadUserPassRequest(r); return err },
		"userpass reply":   func(r io.Reader) error { _, err := socks5.ReadUserPassResponse(r); return err },
		"request":          func(r io.Reader) error { _, err := socks5.ReadRequest(r); return err },
		"reply":            func(r io.Reader) error { _, err := socks5.ReadResponse(r); return err },
		"datagram": func(r io.Reader) error {
			b, _ := io.ReadAll(r)
			_, err := socks5.ParseDatagram(b)
			return err
		},
	}
	says := map[string]string{
		"greeting":         "greeting",
		"method selection": "method selection",
		"userpass request": "username|password",
		"userpass reply":   "username/password response",
		"request":          "request",
		"reply":            "reply",
		"datagram":         "UDP header",
	}
	tests := []struct {
		reader string
		name   string
		wire   string
		want   error
	}{
		{"greeting", "nothing", "", io.EOF},
		{"greeting", "SOCKS4 version", "04 01 00 50 7f 00 00 01 00", socks5.ErrMalformed},
		{"greeting", "no methods", "05 00", socks5.ErrMalformed},
		{"greeting", "version only", "05", io.ErrUnexpectedEOF},
		{"greeting", "methods cut short", "05 03 00 02", io.ErrUnexpectedEOF},

		{"method selection", "nothing", "", io.EOF},
		{"method selection", "wrong version", "04 00", socks5.ErrMalformed},
		{"method selection", "RFC 1929 version", "01 00", socks5.ErrMalformed},
		{"method selection", "cut short", "05", io.ErrUnexpectedEOF},

		{"userpass request", "nothing", "", io.EOF},
		{"userpass request", "SOCKS version", "05 01 75 01 70", socks5.ErrMalformed},
		{"userpass request", "empty username", "01 00 01 70", socks5.ErrMalformed},
		{"userpass request", "empty password", "01 01 75 00", socks5.ErrMalformed},
		{"userpass request", "username cut short", "01 05 61 6c", io.ErrUnexpectedEOF},
		{"userpass request", "no password length", "01 01 75", io.ErrUnexpectedEOF},
		{"userpass request", "password cut short", "01 01 75 06 73 65", io.ErrUnexpectedEOF},
		{"userpass request", "version only", "01", io.ErrUnexpectedEOF},

		{"userpass reply", "nothing", "", io.EOF},
		{"userpass reply", "SOCKS version", "05 00", socks5.ErrMalformed},
		{"userpass reply", "cut short", "01", io.ErrUnexpectedEOF},

		{"request", "nothing", "", io.EOF},
		{"request", "SOCKS4 version", "04 01 00 50 7f 00 00 01 00", socks5.ErrMalformed},
		{"request", "reserved byte set", "05 01 01 01 7f 00 00 01 00 50", socks5.ErrMalformed},
		{"request", "address type 0x02", "05 01 00 02 7f 00 00 01 00 50", socks5.ErrAddrType},
		{"request", "address type 0x00", "05 01 00 00", socks5.ErrAddrType},
		{"request", "address type 0xff", "05 01 00 ff 00 00", socks5.ErrAddrType},
		{"request", "empty name", "05 01 00 03 00 00 50", socks5.ErrMalformed},
		{"request", "header cut short", "05 01", io.ErrUnexpectedEOF},
		{"request", "no address type", "05 01 00", io.ErrUnexpectedEOF},
		{"request", "IPv4 cut short", "05 01 00 01 7f 00", io.ErrUnexpectedEOF},
		{"request", "no port", "05 01 00 01 7f 00 00 01", io.ErrUnexpectedEOF},
		{"request", "IPv6 cut short", "05 01 00 04 20 01 0d b8 00 00 00 00", io.ErrUnexpectedEOF},
		{"request", "no name length", "05 01 00 03", io.ErrUnexpectedEOF},
		{"request", "name cut short", "05 01 00 03 0b 65 78 61", io.ErrUnexpectedEOF},
		{"request", "name without port", "05 01 00 03 01 65", io.ErrUnexpectedEOF},

		{"reply", "nothing", "", io.EOF},
		{"reply", "wrong version", "04 5a 00 50 7f 00 00 01", socks5.ErrMalformed},
		{"reply", "reserved byte set", "05 00 ff 01 7f 00 00 01 00 50", socks5.ErrMalformed},
		{"reply", "unknown address type", "05 00 00 05 7f 00 00 01 00 50", socks5.ErrAddrType},
		{"reply", "empty name", "05 00 00 03 00 00 50", socks5.ErrMalformed},
		{"reply", "cut short", "05 00 00 01 7f", io.ErrUnexpectedEOF},
		{"reply", "failure cut short", "05 01 00", io.ErrUnexpectedEOF},

		{"datagram", "nothing", "", socks5.ErrMalformed},
		{"datagram", "first reserved byte", "01 00 00 01 7f 00 00 01 00 35", socks5.ErrMalformed},
		{"datagram", "second reserved byte", "00 01 00 01 7f 00 00 01 00 35", socks5.ErrMalformed},
		{"datagram", "unknown address type", "00 00 00 02 7f 00 00 01 00 35", socks5.ErrAddrType},
		{"datagram", "empty name", "00 00 00 03 00 00 35", socks5.ErrMalformed},
		{"datagram", "header cut short", "00 00", socks5.ErrMalformed},
		{"datagram", "address cut short", "00 00 00 01 7f 00 00", socks5.ErrMalformed},
		{"datagram", "name cut short", "00 00 00 03 05 61 62", socks5.ErrMalformed},
		{"datagram", "IPv6 without port", "00 00 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01", socks5.ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.reader+"/"+tt.name, func(t *testing.T) {
			read := readers[tt.reader]
			require.NotNil(t, read)
			err := read(bytes.NewReader(hexBytes(tt.wire)))
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
			assert.True(t, strings.HasPrefix(err.Error(), "socks5: "), "the error says where it comes from: %q", err)
			assert.Regexp(t, says[tt.reader], err.Error(), "the error names the message")
			if tt.want == socks5.ErrAddrType {
				assert.ErrorIs(t, err, socks5.ErrMalformed, "an unknown address type is malformed too")
			}
		})
	}
}

// A failing reader's error comes back as it is, wrapped.
func TestReadError(t *testing.T) {
	boom := io.ErrClosedPipe
	_, err := socks5.ReadRequest(io.MultiReader(bytes.NewReader([]byte{5, 1}), iotest.ErrReader(boom)))
	assert.ErrorIs(t, err, boom)
	assert.NotErrorIs(t, err, socks5.ErrMalformed)

	_, err = socks5.ReadGreeting(iotest.ErrReader(boom))
	assert.ErrorIs(t, err, boom)
}
