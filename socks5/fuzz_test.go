package socks5_test

import (
	"bytes"
	"context"
	"encoding"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// Each parser's fuzz target checks, beyond "no panic":
//   - a parsed message re-encodes to exactly the bytes it was read from, and
//     those parse equal again;
//   - the parser consumed exactly the message, never more, and never more
//     than the longest message there is;
//   - the result does not depend on how the reader splits the input;
//   - a failure is ErrMalformed or an I/O error (io.EOF, io.ErrUnexpectedEOF).

// readErrOK reports whether err is one a parser may return for bad input.
func readErrOK(err error) bool {
	return errors.Is(err, socks5.ErrMalformed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

func fuzzRead[M encoding.BinaryAppender](t *testing.T, data []byte, read func(io.Reader) (M, error), maxLen int) {
	r := bytes.NewReader(data)
	m, err := read(r)
	consumed := len(data) - r.Len()
	require.LessOrEqual(t, consumed, maxLen, "read past the longest message")

	// The same input, one byte per Read: the same outcome.
	r1 := bytes.NewReader(data)
	m1, err1 := read(iotest.OneByteReader(r1))
	require.Equal(t, err == nil, err1 == nil, "outcome depends on the reader: %v / %v", err, err1)
	require.Equal(t, consumed, len(data)-r1.Len(), "consumption depends on the reader")

	if err != nil {
		require.True(t, readErrOK(err), "unexpected kind of error: %v", err)
		if errors.Is(err, socks5.ErrAddrType) {
			require.ErrorIs(t, err, socks5.ErrMalformed)
		}
		return
	}
	require.Equal(t, m, m1)

	enc, err := m.AppendBinary(nil)
	require.NoError(t, err, "a parsed message must encode: %#v", m)
	require.Equal(t, data[:consumed], enc, "re-encoding gives back the bytes read, and only those")
	m2, err := read(bytes.NewReader(enc))
	require.NoError(t, err)
	require.Equal(t, m, m2)
}

func readerOf[M any](read func(io.Reader) (M, error)) func(io.Reader) (M, error) { return read }

func FuzzReadGreeting(f *testing.F) {
	f.Add([]byte{0x05, 0x01, 0x00})
	f.Add([]byte{0x05, 0x02, 0x00, 0x02, 'G', 'E', 'T'})
	f.Add([]byte{0x05, 0x00})
	f.Add([]byte{0x04, 0x01, 0x00, 0x50})
	f.Add([]byte{0x05, 0xff, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, data, readerOf(socks5.ReadGreeting), 2+255)
	})
}

func FuzzReadMethodSelection(f *testing.F) {
	f.Add([]byte{0x05, 0x00})
	f.Add([]byte{0x05, 0xff, 0x05})
	f.Add([]byte{0x01, 0x00})
	f.Add([]byte{0x05})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, data, readerOf(socks5.ReadMethodSelection), 2)
	})
}

func FuzzReadUserPassRequest(f *testing.F) {
	f.Add(userPassWire("alice", "secret"))
	f.Add(sockstest.Join(userPassWire("u", "p"), []byte{0x05, 0x01}))
	f.Add([]byte{0x01, 0x00, 0x01, 'p'})
	f.Add([]byte{0x01, 0x01, 'u', 0x00})
	f.Add([]byte{0x05, 0x01, 'u', 0x01, 'p'})
	f.Add([]byte{0x01, 0xff, 'u'})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, data, readerOf(socks5.ReadUserPassRequest), 3+255+255)
	})
}

func FuzzReadUserPassResponse(f *testing.F) {
	f.Add([]byte{0x01, 0x00})
	f.Add([]byte{0x01, 0x01, 0xff})
	f.Add([]byte{0x05, 0x00})
	f.Add([]byte{0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, data, readerOf(socks5.ReadUserPassResponse), 2)
	})
}

// requestSeeds are requests and replies, well and badly formed.
var requestSeeds = [][]byte{
	hexBytes("05 01 00 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50"),
	hexBytes("05 01 00 01 c0 00 02 01 01 bb 47 45 54"),
	hexBytes("05 02 00 04 20 01 0d b8 00 00 00 00 00 00 00 00 00 00 00 01 00 15"),
	hexBytes("05 00 00 04 00 00 00 00 00 00 00 00 00 00 ff ff c0 00 02 01 00 15"),
	hexBytes("05 f0 00 03 01 61 00 00"),
	hexBytes("05 05 00 01 00 00 00 00 00 00"),
	hexBytes("05 01 01 01 7f 00 00 01 00 50"),
	hexBytes("05 01 00 02 7f 00 00 01 00 50"),
	hexBytes("05 01 00 03 00 00 50"),
	hexBytes("05 01 00 03 ff 61"),
	hexBytes("04 01 00 50 7f 00 00 01 00"),
}

func FuzzReadRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, data, readerOf(socks5.ReadRequest), 4+1+255+2)
	})
}

func FuzzReadResponse(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzRead(t, data, readerOf(socks5.ReadResponse), 4+1+255+2)
	})
}

func FuzzParseDatagram(f *testing.F) {
	f.Add(hexBytes("00 00 00 01 c0 00 02 35 00 35 ab cd"))
	f.Add(hexBytes("00 00 01 03 06 65 78 2e 6f 72 67 00 09 68 69"))
	f.Add(hexBytes("00 00 00 04 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01 00 07"))
	f.Add(hexBytes("00 01 00 01 7f 00 00 01 00 35"))
	f.Add(hexBytes("00 00 00 03 00 00 35"))
	f.Add(hexBytes("00 00 00 05"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		orig := bytes.Clone(data)
		d, err := socks5.ParseDatagram(data)
		require.Equal(t, orig, data, "parsing does not write to the datagram")
		if err != nil {
			require.ErrorIs(t, err, socks5.ErrMalformed, "a bad datagram is malformed, whatever is wrong")
			return
		}
		enc, err := d.AppendBinary(nil)
		require.NoError(t, err)
		require.Equal(t, data, enc, "header and payload re-encode to the datagram")
		require.LessOrEqual(t, len(d.Payload), len(data))
		if len(d.Payload) > 0 {
			require.Same(t, &data[len(data)-len(d.Payload)], &d.Payload[0], "the payload is the datagram's tail")
		}
		d2, err := socks5.ParseDatagram(enc)
		require.NoError(t, err)
		require.Equal(t, d, d2)
	})
}

func FuzzParseAddr(f *testing.F) {
	for _, s := range []string{
		"192.0.2.1:80", "[2001:db8::1]:443", "example.com:80", "[::ffff:192.0.2.1]:80",
		"[fe80::1%eth0]:80", "[fe80::1%]:80", "192.0.2.1%eth0:80", ":80", "example.com:http",
		"[a:b]:1", "a%b:1", "host:0080", strings.Repeat("a", 256) + ":1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := socks5.ParseAddr(s)
		if err != nil {
			var ae *net.AddrError
			require.ErrorAs(t, err, &ae, "a parse error is a *net.AddrError: %v", err)
			require.True(t, a.IsZero())
			return
		}
		require.False(t, a.IsZero())
		switch a.Type() {
		case socks5.AddrDomain:
			require.NotEmpty(t, a.Name)
			require.LessOrEqual(t, len(a.Name), socks5.MaxNameLen)
		case socks5.AddrIPv4, socks5.AddrIPv6:
			require.Empty(t, a.IP.Zone())
		default:
			t.Fatalf("parsed to no address type: %#v", a)
		}

		// String parses back to the same address.
		again, err := socks5.ParseAddr(a.String())
		require.NoError(t, err, "String %q does not parse", a.String())
		require.Equal(t, a, again)

		// And it travels: encoded in a request, read back the same.
		req := socks5.Request{Command: socks5.CmdConnect, Addr: a}
		enc, err := req.AppendBinary(nil)
		require.NoError(t, err)
		got, err := socks5.ReadRequest(bytes.NewReader(enc))
		require.NoError(t, err)
		require.Equal(t, req, got)
	})
}

// FuzzClientHandshake runs the client against a hostile server that sends
// the fuzzer's bytes.
func FuzzClientHandshake(f *testing.F) {
	okReply := encode(f, socks5.Response{Reply: socks5.Succeeded, Addr: boundLocal})
	f.Add(sockstest.Join([]byte{0x05, 0x00}, okReply))
	f.Add(sockstest.Join([]byte{0x05, 0x02, 0x01, 0x00}, okReply, []byte("data")))
	f.Add(sockstest.Join([]byte{0x05, 0x00}, hexBytes("05 00 00 03 04 68 6f 73 74 00 50")))
	f.Add([]byte{0x05, 0x02, 0x01, 0x01})
	f.Add([]byte{0x05, 0xff})
	f.Add([]byte{0x05, 0x01})
	f.Add(sockstest.Join([]byte{0x05, 0x00}, hexBytes("05 04 00 01 00 00 00 00 00 00")))
	f.Add(sockstest.Join([]byte{0x05, 0x00}, hexBytes("05 00 01 01 00 00 00 00 00 00")))
	f.Add(sockstest.Join([]byte{0x05, 0x00}, hexBytes("05 00 00 03 00 00 00")))

	creds := socks5.UserPassClient{Username: "u", Password: "p"}
	greeting := []byte{0x05, 0x02, 0x00, 0x02}
	request := encode(f, connectExample)
	f.Fuzz(func(t *testing.T, data []byte) {
		d := newDuplex(data)
		bound, stream, err := socks5.ClientHandshake(context.Background(), d, connectExample, socks5.NoAuth{}, creds)
		consumed := len(data) - d.in.Len()
		sent := d.out.Bytes()

		// The client only ever sends its greeting, the credentials when
		// the server picked username/password, and the request.
		var wantSent []byte
		if len(data) >= 2 && data[1] == byte(socks5.AuthUserPass) {
			wantSent = sockstest.Join(greeting, userPassWire("u", "p"), request)
		} else {
			wantSent = sockstest.Join(greeting, request)
		}
		require.True(t, bytes.HasPrefix(wantSent, sent), "the client sent % x", sent)

		if err != nil {
			require.Nil(t, stream)
			var re *socks5.ReplyError
			switch {
			case errors.As(err, &re):
				require.NotEqual(t, socks5.Succeeded, re.Reply)
			case readErrOK(err),
				errors.Is(err, socks5.ErrNoAcceptableMethod),
				errors.Is(err, socks5.ErrAuthFailed):
			default:
				t.Fatalf("unexpected kind of error: %v", err)
			}
			return
		}

		// Success: the bytes read are exactly the method selection, the
		// subnegotiation's answer and the reply, nothing past them.
		require.Equal(t, wantSent, sent)
		require.Equal(t, io.ReadWriter(d), stream)
		var want []byte
		if data[1] == byte(socks5.AuthUserPass) {
			want = sockstest.Join([]byte{0x05, 0x02, 0x01, 0x00}, encode(t, socks5.Response{Addr: bound}))
		} else {
			require.Equal(t, byte(socks5.AuthNone), data[1])
			want = sockstest.Join([]byte{0x05, 0x00}, encode(t, socks5.Response{Addr: bound}))
		}
		require.Equal(t, want, data[:consumed])
	})
}

// FuzzServerHandshake feeds the fuzzer's bytes to a server that requires a
// username and password.
func FuzzServerHandshake(f *testing.F) {
	f.Add(sockstest.Join([]byte{0x05, 0x01, 0x02}, userPassWire("alice", "secret"), encode(f, connectExample)))
	f.Add(sockstest.Join([]byte{0x05, 0x02, 0x00, 0x02}, userPassWire("alice", "secret"), hexBytes("05 01 00 01 7f 00 00 01 00 50 47 45 54")))
	f.Add(sockstest.Join([]byte{0x05, 0x01, 0x02}, userPassWire("alice", "secret"), hexBytes("05 01 00 09 7f 00 00 01 00 50")))
	f.Add(sockstest.Join([]byte{0x05, 0x01, 0x02}, userPassWire("alice", "wrong"), encode(f, connectExample)))
	f.Add(sockstest.Join([]byte{0x05, 0x01, 0x02}, userPassWire("bob", "secret")))
	f.Add([]byte{0x05, 0x01, 0x00})
	f.Add([]byte{0x05, 0x01, 0x02, 0x01, 0x00})
	f.Add([]byte{0x04, 0x01, 0x00, 0x50, 0x7f, 0x00, 0x00, 0x01, 0x00})

	creds := socks5.NewCredentials(map[string]string{"alice": "secret"})
	methods := []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}}
	granted := []byte{0x05, 0x02, 0x01, 0x00}
	answers := [][]byte{ // every complete output the server may give
		nil,
		{0x05, 0xff},
		{0x05, 0x02},
		{0x05, 0x02, 0x01, 0x01},
		granted,
		sockstest.Join(granted, hexBytes("05 01 00 01 00 00 00 00 00 00")),
		sockstest.Join(granted, hexBytes("05 08 00 01 00 00 00 00 00 00")),
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		d := newDuplex(data)
		s, err := socks5.ServerHandshake(context.Background(), d, methods)
		consumed := len(data) - d.in.Len()
		out := d.out.Bytes()
		assert.Contains(t, answers, bytes.Clone(out), "the server answered % x", out)

		if err != nil {
			require.Nil(t, s)
			switch {
			case errors.Is(err, socks5.ErrNoAcceptableMethod):
				require.Equal(t, []byte{0x05, 0xff}, out)
				require.Equal(t, 2+int(data[1]), consumed, "nothing read past the greeting")
			case errors.Is(err, socks5.ErrAuthFailed):
				require.Equal(t, []byte{0x05, 0x02, 0x01, 0x01}, out)
			case readErrOK(err):
			default:
				t.Fatalf("unexpected kind of error: %v", err)
			}
			return
		}

		// Success only for the one user with the right password, and the
		// bytes read are exactly greeting, credentials and request.
		require.Equal(t, socks5.AuthUserPass, s.Method)
		require.Equal(t, "alice", s.User)
		require.Equal(t, granted, out)
		glen := 2 + int(data[1])
		g, err := socks5.ReadGreeting(bytes.NewReader(data[:glen]))
		require.NoError(t, err)
		require.Contains(t, g.Methods, socks5.AuthUserPass)
		require.Equal(t, sockstest.Join(data[:glen], userPassWire("alice", "secret"), encode(t, s.Request)), data[:consumed])
	})
}
