package socks4_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/socks4"
)

// plainReader hides every method of its reader but Read, as a net.Conn
// would: the Read functions then take their path for readers that are not
// io.ByteReaders.
type plainReader struct{ r io.Reader }

func (p plainReader) Read(b []byte) (int, error) { return p.r.Read(b) }

// readers returns the kinds of reader the Read functions meet, each over
// its own copy of b, with a count of the bytes each has left unread.
func readers(b []byte) map[string]struct {
	r    io.Reader
	left func() int
} {
	type reader = struct {
		r    io.Reader
		left func() int
	}
	byteR := bytes.NewReader(b)
	plainR := bytes.NewReader(b)
	oneR := bytes.NewReader(b)
	return map[string]reader{
		"ByteReader": {byteR, byteR.Len},
		"plain":      {plainReader{plainR}, plainR.Len},
		"one byte":   {iotest.OneByteReader(oneR), oneR.Len},
	}
}

func mustIP(s string) netip.Addr { return netip.MustParseAddr(s) }

func repeat(c string, n int) string { return strings.Repeat(c, n) }

// vectors are requests and replies written out byte for byte from the
// SOCKS4 and SOCKS4a documents' layouts: VN, CD, DSTPORT, DSTIP, USERID,
// NUL (and, for 4a, the host name and NUL); a reply is VN 0, CD, DSTPORT,
// DSTIP.
var requestVectors = []struct {
	name string
	req  socks4.Request
	wire []byte
}{
	{
		name: "CONNECT 66.102.7.99:80 as fred",
		req:  socks4.Request{Command: socks4.CmdConnect, Port: 80, IP: mustIP("66.102.7.99"), User: "fred"},
		wire: []byte{0x04, 0x01, 0x00, 0x50, 0x42, 0x66, 0x07, 0x63, 0x66, 0x72, 0x65, 0x64, 0x00},
	},
	{
		name: "CONNECT 127.0.0.1:443 with an empty user id",
		req:  socks4.Request{Command: socks4.CmdConnect, Port: 443, IP: mustIP("127.0.0.1")},
		wire: []byte{0x04, 0x01, 0x01, 0xbb, 0x7f, 0x00, 0x00, 0x01, 0x00},
	},
	{
		name: "BIND 192.0.2.7:2121 as ftp",
		req:  socks4.Request{Command: socks4.CmdBind, Port: 2121, IP: mustIP("192.0.2.7"), User: "ftp"},
		wire: []byte{0x04, 0x02, 0x08, 0x49, 0xc0, 0x00, 0x02, 0x07, 'f', 't', 'p', 0x00},
	},
	{
		name: "4a CONNECT example.com:80 as fred",
		req:  socks4.Request{Command: socks4.CmdConnect, Port: 80, Host: "example.com", User: "fred"},
		wire: []byte{
			0x04, 0x01, 0x00, 0x50, 0x00, 0x00, 0x00, 0x01, 0x66, 0x72, 0x65, 0x64, 0x00,
			0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e, 0x63, 0x6f, 0x6d, 0x00,
		},
	},
	{
		name: "4a BIND x:65535 with an empty user id",
		req:  socks4.Request{Command: socks4.CmdBind, Port: 65535, Host: "x"},
		wire: []byte{0x04, 0x02, 0xff, 0xff, 0x00, 0x00, 0x00, 0x01, 0x00, 'x', 0x00},
	},
	{
		name: "an unknown command to 0.0.0.0:0",
		req:  socks4.Request{Command: 9, IP: mustIP("0.0.0.0")},
		wire: []byte{0x04, 0x09, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
	},
}

var responseVectors = []struct {
	name string
	resp socks4.Response
	wire []byte
}{
	{
		name: "CONNECT granted",
		resp: socks4.Response{Reply: socks4.Granted, IP: mustIP("0.0.0.0")},
		wire: []byte{0x00, 0x5a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
	},
	{
		name: "BIND granted on 192.168.1.2:1234",
		resp: socks4.Response{Reply: socks4.Granted, Port: 1234, IP: mustIP("192.168.1.2")},
		wire: []byte{0x00, 0x5a, 0x04, 0xd2, 0xc0, 0xa8, 0x01, 0x02},
	},
	{
		name: "rejected",
		resp: socks4.Response{Reply: socks4.Rejected, IP: mustIP("0.0.0.0")},
		wire: []byte{0x00, 0x5b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00},
	},
	{
		name: "identd unreachable",
		resp: socks4.Response{Reply: socks4.IdentdUnreachable, Port: 1, IP: mustIP("10.0.0.1")},
		wire: []byte{0x00, 0x5c, 0x00, 0x01, 0x0a, 0x00, 0x00, 0x01},
	},
	{
		name: "identd mismatch",
		resp: socks4.Response{Reply: socks4.IdentdMismatch, IP: mustIP("255.255.255.255"), Port: 65535},
		wire: []byte{0x00, 0x5d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	},
}

func TestRequestVectors(t *testing.T) {
	for _, v := range requestVectors {
		t.Run(v.name, func(t *testing.T) {
			got, err := v.req.AppendBinary(nil)
			require.NoError(t, err)
			assert.Equal(t, v.wire, got, "encoding")

			for kind, rd := range readers(v.wire) {
				req, err := socks4.ReadRequest(rd.r)
				require.NoError(t, err, kind)
				assert.Equal(t, v.req, req, kind)
				assert.Zero(t, rd.left(), "%s: bytes left", kind)
			}
		})
	}
}

func TestResponseVectors(t *testing.T) {
	for _, v := range responseVectors {
		t.Run(v.name, func(t *testing.T) {
			got, err := v.resp.AppendBinary(nil)
			require.NoError(t, err)
			assert.Equal(t, v.wire, got, "encoding")

			for kind, rd := range readers(v.wire) {
				resp, err := socks4.ReadResponse(rd.r)
				require.NoError(t, err, kind)
				assert.Equal(t, v.resp, resp, kind)
				assert.Zero(t, rd.left(), "%s: bytes left", kind)
			}
		})
	}
}

func TestRequestRoundTrip(t *testing.T) {
	reqs := []socks4.Request{
		{Command: socks4.CmdConnect, Port: 80, IP: mustIP("66.102.7.99"), User: "fred"},
		{Command: socks4.CmdBind, Port: 0, IP: mustIP("0.0.0.0")},
		{Command: socks4.CmdConnect, Port: 1, IP: mustIP("0.0.1.0")},
		{Command: socks4.CmdConnect, Port: 8080, IP: mustIP("255.255.255.255"), User: repeat("u", socks4.MaxUserLen)},
		{Command: socks4.CmdConnect, Port: 443, Host: "example.org", User: "a user id with spaces"},
		{Command: socks4.CmdBind, Port: 21, Host: repeat("h", socks4.MaxNameLen), User: repeat("u", socks4.MaxUserLen)},
		{Command: socks4.CmdConnect, Port: 80, Host: "ünïcødé.example", User: "\xff\x01"},
		{Command: 0, Port: 7, IP: mustIP("10.1.2.3")},
		{Command: 255, Port: 7, Host: "1.2.3.4"},
	}
	for _, req := range reqs {
		t.Run(req.Target(), func(t *testing.T) {
			prefix := []byte("kept")
			b, err := req.AppendBinary(prefix)
			require.NoError(t, err)
			require.Equal(t, prefix, b[:len(prefix)], "AppendBinary keeps what b held")
			wire := b[len(prefix):]

			for kind, rd := range readers(wire) {
				got, err := socks4.ReadRequest(rd.r)
				require.NoError(t, err, kind)
				assert.Equal(t, req, got, kind)
				assert.Zero(t, rd.left(), kind)
			}
		})
	}
}

func TestResponseRoundTrip(t *testing.T) {
	for _, resp := range []socks4.Response{
		{Reply: socks4.Granted, Port: 80, IP: mustIP("66.102.7.99")},
		{Reply: socks4.Rejected, Port: 0, IP: mustIP("0.0.0.0")},
		{Reply: socks4.IdentdUnreachable, Port: 65535, IP: mustIP("127.0.0.1")},
		{Reply: socks4.IdentdMismatch, Port: 113, IP: mustIP("203.0.113.9")},
		{Reply: 0, Port: 1, IP: mustIP("1.1.1.1")},
		{Reply: 255, Port: 2, IP: mustIP("2.2.2.2")},
	} {
		t.Run(resp.Reply.String(), func(t *testing.T) {
			b, err := resp.AppendBinary(nil)
			require.NoError(t, err)
			require.Len(t, b, 8)
			for kind, rd := range readers(b) {
				got, err := socks4.ReadResponse(rd.r)
				require.NoError(t, err, kind)
				assert.Equal(t, resp, got, kind)
			}
		})
	}
}

func TestResponseZeroAddr(t *testing.T) {
	b, err := socks4.Response{Reply: socks4.Granted}.AppendBinary(nil)
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 90, 0, 0, 0, 0, 0, 0}, b)

	b, err = socks4.Response{Reply: socks4.Granted, IP: mustIP("::ffff:10.0.0.1"), Port: 1}.AppendBinary(nil)
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 90, 0, 1, 10, 0, 0, 1}, b, "IPv4-mapped IPv6 travels as IPv4")
}

// Test4aAnyMarker: every DSTIP 0.0.0.x with x other than 0 marks a 4a
// request, not only the 0.0.0.1 this package sends.
func Test4aAnyMarker(t *testing.T) {
	for _, x := range []byte{1, 2, 0x7f, 0xff} {
		wire := []byte{4, 1, 0, 80, 0, 0, 0, x, 'u', 0, 'h', '.', 'e', 'x', 0}
		for kind, rd := range readers(wire) {
			req, err := socks4.ReadRequest(rd.r)
			require.NoError(t, err, "x=%d %s", x, kind)
			assert.Equal(t, socks4.Request{Command: socks4.CmdConnect, Port: 80, Host: "h.ex", User: "u"}, req, "x=%d %s", x, kind)
			assert.False(t, req.IP.IsValid())
			assert.Zero(t, rd.left())
		}
	}
}

func TestReadRequestMalformed(t *testing.T) {
	long := func(n int) []byte { return bytes.Repeat([]byte{'a'}, n) }
	header := []byte{4, 1, 0, 80, 10, 0, 0, 1}
	header4a := []byte{4, 1, 0, 80, 0, 0, 0, 1}
	cases := []struct {
		name     string
		in       []byte
		is       error  // the error matches this
		msg      string // and says this
		consumed int    // bytes read before giving up
	}{
		{"empty", nil, io.EOF, "reading request: EOF", 0},
		{"SOCKS5 greeting", []byte{5, 1, 0}, socks4.ErrMalformed, "request version 5, want 4", 1},
		{"version 0", []byte{0, 1, 0, 80, 10, 0, 0, 1, 0}, socks4.ErrMalformed, "request version 0", 1},
		{"HTTP", []byte("GET / HTTP/1.1\r\n\r\n"), socks4.ErrMalformed, "request version 71", 1},
		{"version only", []byte{4}, io.ErrUnexpectedEOF, "reading request: unexpected EOF", 1},
		{"truncated header", []byte{4, 1, 0}, io.ErrUnexpectedEOF, "reading request: unexpected EOF", 3},
		{"header only", header, io.ErrUnexpectedEOF, "unexpected EOF", 8},
		{"user id without NUL", Join(header, []byte("fred")), io.ErrUnexpectedEOF, "unexpected EOF", 12},
		{"user id too long", Join(header, long(socks4.MaxUserLen+1), []byte{0}), socks4.ErrMalformed, "user id longer than 4096 bytes", 8 + 4097},
		{"user id far too long", Join(header, long(10000)), socks4.ErrMalformed, "user id longer than 4096 bytes", 8 + 4097},
		{"4a without host name", Join(header4a, []byte("fred\x00")), io.ErrUnexpectedEOF, "unexpected EOF", 13},
		{"4a empty host name", Join(header4a, []byte("fred\x00\x00more")), socks4.ErrMalformed, "empty host name", 14},
		{"4a host name without NUL", Join(header4a, []byte("\x00example")), io.ErrUnexpectedEOF, "unexpected EOF", 16},
		{"4a host name too long", Join(header4a, []byte{0}, long(socks4.MaxNameLen+1), []byte{0}), socks4.ErrMalformed, "host name longer than 255 bytes", 9 + 256},
		{"4a user id too long", Join(header4a, long(socks4.MaxUserLen+1), []byte{0}, []byte("h\x00")), socks4.ErrMalformed, "user id longer than 4096 bytes", 8 + 4097},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for kind, rd := range readers(c.in) {
				req, err := socks4.ReadRequest(rd.r)
				require.Error(t, err, kind)
				assert.ErrorIs(t, err, c.is, kind)
				assert.ErrorContains(t, err, c.msg, kind)
				assert.True(t, strings.HasPrefix(err.Error(), "socks4: "), "%s: %q", kind, err)
				assert.Zero(t, req, kind)
				assert.Equal(t, c.consumed, len(c.in)-rd.left(), "%s: bytes consumed", kind)
				if c.is != socks4.ErrMalformed {
					assert.NotErrorIs(t, err, socks4.ErrMalformed, kind)
				}
			}
		})
	}
}

func TestReadResponseMalformed(t *testing.T) {
	cases := []struct {
		name string
		in   []byte
		is   error
		msg  string
	}{
		{"empty", nil, io.EOF, "reading reply: EOF"},
		{"short", []byte{0, 90, 0, 80, 1}, io.ErrUnexpectedEOF, "reading reply: unexpected EOF"},
		{"version 4", []byte{4, 90, 0, 80, 1, 2, 3, 4}, socks4.ErrMalformed, "reply version 4, want 0"},
		{"version 5", []byte{5, 0, 0, 1, 1, 2, 3, 4, 0, 80}, socks4.ErrMalformed, "reply version 5, want 0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for kind, rd := range readers(c.in) {
				resp, err := socks4.ReadResponse(rd.r)
				assert.ErrorIs(t, err, c.is, kind)
				assert.ErrorContains(t, err, c.msg, kind)
				assert.Zero(t, resp, kind)
				assert.LessOrEqual(t, len(c.in)-rd.left(), 8, kind)
			}
		})
	}
}

func TestRequestEncodeErrors(t *testing.T) {
	cases := []struct {
		name string
		req  socks4.Request
		msg  string
	}{
		{"no address", socks4.Request{Command: socks4.CmdConnect, Port: 80}, "no destination"},
		{"IPv6", socks4.Request{Command: socks4.CmdConnect, Port: 80, IP: mustIP("2001:db8::1")}, "IPv6"},
		{"IPv6 with zone", socks4.Request{Command: socks4.CmdConnect, Port: 80, IP: mustIP("fe80::1%eth0")}, "IPv6"},
		{"4a marker as IP", socks4.Request{Command: socks4.CmdConnect, Port: 80, IP: mustIP("0.0.0.1")}, "SOCKS4a"},
		{"4a marker 0.0.0.255", socks4.Request{Command: socks4.CmdConnect, Port: 80, IP: mustIP("0.0.0.255")}, "SOCKS4a"},
		{"user id too long", socks4.Request{IP: mustIP("10.0.0.1"), User: repeat("u", socks4.MaxUserLen+1)}, "user id longer than 4096 bytes"},
		{"user id with NUL", socks4.Request{IP: mustIP("10.0.0.1"), User: "fr\x00ed"}, "user id contains a NUL"},
		{"host name too long", socks4.Request{Host: repeat("h", socks4.MaxNameLen+1), Port: 80}, "host name longer than 255 bytes"},
		{"host name too long, IP set", socks4.Request{Host: repeat("h", 1000), IP: mustIP("10.0.0.1"), Port: 80}, "host name longer than 255 bytes"},
		{"host name with NUL", socks4.Request{Host: "a\x00b", Port: 80}, "host name contains a NUL"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := []byte("prefix")
			got, err := c.req.AppendBinary(b)
			assert.ErrorContains(t, err, "socks4: request: ")
			assert.ErrorContains(t, err, c.msg)
			assert.Equal(t, []byte("prefix"), got, "b is returned unchanged")
		})
	}
}

func TestResponseEncodeErrors(t *testing.T) {
	got, err := socks4.Response{Reply: socks4.Granted, IP: mustIP("::1"), Port: 1}.AppendBinary([]byte{1})
	assert.ErrorContains(t, err, "socks4: reply: IPv6 addresses cannot travel in SOCKS4")
	assert.Equal(t, []byte{1}, got)
}

// TestReadStopsAtMessageEnd: whatever follows a message is left for the
// next reader, whichever kind of reader the message is read from.
func TestReadStopsAtMessageEnd(t *testing.T) {
	after := []byte("GET / HTTP/1.0\r\n\r\n")
	for _, v := range requestVectors {
		for kind, rd := range readers(Join(v.wire, after)) {
			_, err := socks4.ReadRequest(rd.r)
			require.NoError(t, err)
			assert.Equal(t, len(after), rd.left(), "%s %s", v.name, kind)
			rest, err := io.ReadAll(rd.r)
			require.NoError(t, err)
			assert.Equal(t, after, rest, "%s %s", v.name, kind)
		}
	}
	for _, v := range responseVectors {
		for kind, rd := range readers(Join(v.wire, after)) {
			_, err := socks4.ReadResponse(rd.r)
			require.NoError(t, err)
			assert.Equal(t, len(after), rd.left(), "%s %s", v.name, kind)
		}
	}

	// A bufio.Reader keeps what it read ahead: it is read through ReadByte,
	// and what follows the message is still in it.
	br := bufio.NewReader(bytes.NewReader(Join(requestVectors[3].wire, after)))
	req, err := socks4.ReadRequest(br)
	require.NoError(t, err)
	assert.Equal(t, requestVectors[3].req, req)
	rest, err := io.ReadAll(br)
	require.NoError(t, err)
	assert.Equal(t, after, rest)
}

// TestReadErrorPassesThrough: a reader's own error reaches the caller.
func TestReadErrorPassesThrough(t *testing.T) {
	boom := errors.New("boom")
	for _, r := range []io.Reader{
		iotest.ErrReader(boom),
		io.MultiReader(bytes.NewReader([]byte{4, 1, 0, 80, 1, 2, 3, 4, 'a'}), iotest.ErrReader(boom)),
	} {
		_, err := socks4.ReadRequest(r)
		assert.ErrorIs(t, err, boom)
		assert.NotErrorIs(t, err, socks4.ErrMalformed)
	}
	_, err := socks4.ReadResponse(iotest.ErrReader(boom))
	assert.ErrorIs(t, err, boom)
}

func TestStringsRead(t *testing.T) {
	// The strings a plain reader's request carries share one buffer; make
	// sure they are not overwritten by what is read later.
	wire := Join(requestVectors[3].wire, requestVectors[0].wire)
	r := plainReader{bytes.NewReader(wire)}
	first, err := socks4.ReadRequest(r)
	require.NoError(t, err)
	second, err := socks4.ReadRequest(r)
	require.NoError(t, err)
	assert.Equal(t, "example.com", first.Host)
	assert.Equal(t, "fred", first.User)
	assert.Equal(t, requestVectors[0].req, second)
}

func TestTargetAndAddrPort(t *testing.T) {
	cases := []struct {
		req    socks4.Request
		target string
		ap     netip.AddrPort
		ok     bool
	}{
		{socks4.Request{Port: 80, IP: mustIP("66.102.7.99")}, "66.102.7.99:80", netip.MustParseAddrPort("66.102.7.99:80"), true},
		{socks4.Request{Port: 443, Host: "example.com"}, "example.com:443", netip.AddrPort{}, false},
		{socks4.Request{Port: 443, Host: "example.com", IP: mustIP("10.0.0.1")}, "example.com:443", netip.AddrPort{}, false},
		{socks4.Request{Port: 1}, ":1", netip.AddrPort{}, false},
	}
	for _, c := range cases {
		assert.Equal(t, c.target, c.req.Target())
		ap, ok := c.req.AddrPort()
		assert.Equal(t, c.ok, ok, c.target)
		assert.Equal(t, c.ap, ap, c.target)
	}
}

func TestAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	req := requestVectors[3].req // 4a, with a user id: both strings
	wire, err := req.AppendBinary(nil)
	require.NoError(t, err)
	resp := responseVectors[1].resp
	respWire, err := resp.AppendBinary(nil)
	require.NoError(t, err)
	buf := make([]byte, 0, 600)
	br := bytes.NewReader(nil)
	var plain io.Reader = plainReader{br} // converted once, not in each run

	cases := []struct {
		name string
		max  float64
		f    func()
	}{
		{"Request.AppendBinary", 0, func() { buf, _ = req.AppendBinary(buf[:0]) }},
		{"Response.AppendBinary", 0, func() { buf, _ = resp.AppendBinary(buf[:0]) }},
		{"ReadRequest ByteReader", 1, func() { br.Reset(wire); socks4.ReadRequest(br) }},
		{"ReadRequest plain", 1, func() { br.Reset(wire); socks4.ReadRequest(plain) }},
		{"ReadResponse ByteReader", 1, func() { br.Reset(respWire); socks4.ReadResponse(br) }},
		{"ReadResponse plain", 1, func() { br.Reset(respWire); socks4.ReadResponse(plain) }},
	}
	for _, c := range cases {
		assert.LessOrEqual(t, testing.AllocsPerRun(100, c.f), c.max, c.name)
	}
}

// Join concatenates byte slices.
func Join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
