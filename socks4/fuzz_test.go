package socks4_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/socks4"
)

// maxRequest is the longest request the package reads: the header, a user
// id and a host name, each at its limit, with their NULs.
const maxRequest = 8 + socks4.MaxUserLen + 1 + socks4.MaxNameLen + 1

// requestSeeds are requests, whole, cut short, broken or followed by data.
func requestSeeds() [][]byte {
	seeds := [][]byte{
		nil,
		{4},
		{5, 1, 0},
		{4, 1, 0, 80, 0, 0, 0, 1, 0, 0},
		{4, 1, 0, 80, 0, 0, 0, 0, 0},
		Join([]byte{4, 1, 0, 80, 10, 0, 0, 1}, bytes.Repeat([]byte{'u'}, 300), []byte{0}),
		Join([]byte{4, 1, 0, 80, 10, 0, 0, 1}, bytes.Repeat([]byte{'u'}, socks4.MaxUserLen), []byte{0}),
		Join([]byte{4, 1, 0, 80, 10, 0, 0, 1}, bytes.Repeat([]byte{'u'}, socks4.MaxUserLen+1), []byte{0}),
		Join([]byte{4, 2, 0, 80, 0, 0, 0, 7, 0}, bytes.Repeat([]byte{'h'}, 255), []byte{0, 'x'}),
		Join([]byte{4, 2, 0, 80, 0, 0, 0, 7, 0}, bytes.Repeat([]byte{'h'}, 256), []byte{0}),
	}
	for _, v := range requestVectors {
		seeds = append(seeds, v.wire, v.wire[:len(v.wire)-1], Join(v.wire, []byte("GET / HTTP/1.0\r\n\r\n")))
	}
	return seeds
}

func responseSeeds() [][]byte {
	seeds := [][]byte{nil, {0, 90, 0}, {4, 90, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0}, {0, 94, 1, 1, 1, 1, 1, 1}}
	for _, v := range responseVectors {
		seeds = append(seeds, v.wire, Join(v.wire, v.wire), Join(v.wire, []byte("data")))
	}
	return seeds
}

// readOutcome is what a Read function made of some bytes.
type readOutcome[T any] struct {
	msg      T
	err      error
	consumed int
}

// readAll reads one message from data through every kind of reader, and
// checks that they agree.
func readAll[T comparable](t *testing.T, data []byte, read func(io.Reader) (T, error)) readOutcome[T] {
	t.Helper()
	var first *readOutcome[T]
	for kind, rd := range readers(data) {
		m, err := read(rd.r)
		o := readOutcome[T]{msg: m, err: err, consumed: len(data) - rd.left()}
		if first == nil {
			first = &o
			continue
		}
		require.Equal(t, first.msg, o.msg, kind)
		require.Equal(t, first.consumed, o.consumed, kind)
		require.Equal(t, first.err == nil, o.err == nil, kind)
		if o.err != nil {
			require.Equal(t, first.err.Error(), o.err.Error(), kind)
		}
	}
	return *first
}

// checkReadError checks a Read function's failure: a broken message, or
// input that ended too soon, in which case all of it was read.
func checkReadError(t *testing.T, err error, consumed, inputLen int) {
	t.Helper()
	require.True(t, strings.HasPrefix(err.Error(), "socks4: "), "%q", err)
	switch {
	case errors.Is(err, socks4.ErrMalformed):
	case errors.Is(err, io.EOF):
		require.Zero(t, inputLen, "EOF before any byte")
	case errors.Is(err, io.ErrUnexpectedEOF):
		require.Equal(t, inputLen, consumed, "the message ran to the end of input")
		require.NotZero(t, consumed)
	default:
		t.Fatalf("unexpected error %v", err)
	}
}

func FuzzReadRequest(f *testing.F) {
	for _, s := range requestSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := readAll(t, data, socks4.ReadRequest)
		require.LessOrEqual(t, o.consumed, maxRequest)
		require.LessOrEqual(t, o.consumed, len(data))
		if o.err != nil {
			require.Zero(t, o.msg)
			checkReadError(t, o.err, o.consumed, len(data))
			return
		}
		req := o.msg
		msg := data[:o.consumed]

		// The fields are what the protocol allows.
		require.LessOrEqual(t, len(req.User), socks4.MaxUserLen)
		require.LessOrEqual(t, len(req.Host), socks4.MaxNameLen)
		require.NotContains(t, req.User, "\x00")
		require.NotContains(t, req.Host, "\x00")
		if req.Host == "" {
			require.True(t, req.IP.Is4(), "IP %v", req.IP)
		} else {
			require.False(t, req.IP.IsValid())
		}

		// It re-encodes to the bytes read, but for a 4a request's DSTIP,
		// which is always sent as 0.0.0.1.
		wire, err := req.AppendBinary(nil)
		require.NoError(t, err)
		require.Len(t, wire, len(msg))
		if req.Host != "" {
			require.Equal(t, []byte{0, 0, 0}, msg[4:7])
			require.NotZero(t, msg[7])
			require.Equal(t, byte(1), wire[7])
			wire[7] = msg[7]
		}
		require.Equal(t, msg, wire)

		// The message alone parses to the same request: nothing past its
		// end was needed; and the re-encoding parses to it too.
		again := readAll(t, msg, socks4.ReadRequest)
		require.NoError(t, again.err)
		require.Equal(t, req, again.msg)
		require.Equal(t, len(msg), again.consumed)
	})
}

func FuzzReadResponse(f *testing.F) {
	for _, s := range responseSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		o := readAll(t, data, socks4.ReadResponse)
		require.LessOrEqual(t, o.consumed, 8)
		if o.err != nil {
			require.Zero(t, o.msg)
			checkReadError(t, o.err, o.consumed, len(data))
			if errors.Is(o.err, socks4.ErrMalformed) {
				require.NotZero(t, data[0], "only the version can be wrong")
			}
			return
		}
		require.Equal(t, 8, o.consumed)
		require.True(t, o.msg.IP.Is4())
		wire, err := o.msg.AppendBinary(nil)
		require.NoError(t, err)
		require.Equal(t, data[:8], wire)
	})
}

// checkReply checks what a client made of the reply bytes b, which it may
// have read in part: the reply's fields, every one of them, decide the
// outcome.
func checkReply(t *testing.T, b []byte, got netip.AddrPort, err error, consumed int) {
	t.Helper()
	if len(b) < 8 {
		require.Error(t, err)
		require.Zero(t, got)
		require.Equal(t, len(b), consumed, "a short reply is read to its end")
		if len(b) == 0 {
			require.ErrorIs(t, err, io.EOF)
		} else {
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
		}
		return
	}
	require.Equal(t, 8, consumed, "the reply and nothing more")
	code := socks4.Reply(b[1])
	switch {
	case b[0] != 0:
		require.ErrorIs(t, err, socks4.ErrMalformed)
		require.ErrorContains(t, err, "reply version")
		require.Zero(t, got)
	case code == socks4.Granted:
		require.NoError(t, err)
		want := netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4]))
		require.Equal(t, want, got)
	case code >= socks4.Rejected && code <= socks4.IdentdMismatch:
		re, ok := errors.AsType[*socks4.ReplyError](err)
		require.True(t, ok, "%v", err)
		require.Equal(t, code, re.Reply)
		require.Zero(t, got)
	default:
		require.ErrorIs(t, err, socks4.ErrMalformed)
		require.ErrorContains(t, err, "reply code")
		require.Zero(t, got)
	}
}

// conns returns the in-memory connections the handshakes are fuzzed on:
// one that is an io.ByteReader and one that is not.
func conns(peer []byte) map[string]struct {
	mc *memConn
	rw io.ReadWriter
} {
	type conn = struct {
		mc *memConn
		rw io.ReadWriter
	}
	plain, byteR := newMemConn(peer), newMemConn(peer)
	return map[string]conn{
		"plain":      {plain, plain},
		"ByteReader": {byteR, byteConn{byteR}},
	}
}

func FuzzServerHandshake(f *testing.F) {
	for _, s := range requestSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		want := readAll(t, data, socks4.ReadRequest)
		for kind, c := range conns(data) {
			s, err := socks4.ServerHandshake(t.Context(), c.rw)
			consumed := len(data) - c.mc.r.Len()
			require.Equal(t, want.consumed, consumed, kind)
			if err != nil {
				require.Nil(t, s, kind)
				require.Error(t, want.err, kind)
				require.Equal(t, want.err.Error(), err.Error(), kind)
				if errors.Is(err, socks4.ErrMalformed) {
					require.Equal(t, []byte{0, 91, 0, 0, 0, 0, 0, 0}, c.mc.w.Bytes(), "%s: a malformed request is answered 91", kind)
				} else {
					require.Zero(t, c.mc.w.Len(), "%s: nothing is sent to a client that went away", kind)
				}
				continue
			}
			require.NoError(t, want.err, kind)
			require.Equal(t, want.msg, s.Request, kind)
			require.Equal(t, s.Request.User, s.User, kind)
			require.Equal(t, c.rw, s.Stream, kind)
			require.Zero(t, c.mc.w.Len(), "%s: nothing is sent before Reply", kind)

			// What followed the request is left, whole, on the connection.
			rest, err := io.ReadAll(c.mc.r)
			require.NoError(t, err)
			require.Equal(t, data[consumed:], rest, kind)

			// The reply goes out as 8 bytes a client reads back.
			bound := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(len(data))}), uint16(len(data)))
			require.NoError(t, s.Reply(socks4.Granted, bound), kind)
			got, err := socks4.ReadResponse(&c.mc.w)
			require.NoError(t, err, kind)
			require.Equal(t, socks4.Response{Reply: socks4.Granted, Port: bound.Port(), IP: bound.Addr()}, got, kind)
			require.Zero(t, c.mc.w.Len(), kind)
		}
	})
}

func FuzzClientHandshake(f *testing.F) {
	type seed struct {
		req    socks4.Request
		server []byte
	}
	seeds := []seed{
		{fredConnect, replyOK},
		{fredConnect, reply91},
		{fredConnect, []byte{0, 92, 0, 0, 0, 0, 0, 0}},
		{fredConnect, []byte{0, 93, 0, 0, 0, 0, 0, 0}},
		{fredConnect, []byte{4, 90, 0, 0, 0, 0, 0, 0}},
		{fredConnect, []byte{0, 94, 0, 0, 0, 0, 0, 0}},
		{fredConnect, []byte{0, 90, 0}},
		{fredConnect, nil},
		{nameConnect, Join([]byte{0, 90, 1, 0xbb, 93, 184, 216, 34}, []byte("data"))},
		{fredBind, Join([]byte{0, 90, 0xc0, 1, 192, 0, 2, 1}, []byte{0, 90, 8, 0x48, 66, 102, 7, 99})},
		{fredBind, Join([]byte{0, 90, 0xc0, 1, 192, 0, 2, 1}, reply91)},
		{fredBind, Join([]byte{0, 90, 0xc0, 1, 192, 0, 2, 1}, []byte{0, 90})},
		{socks4.Request{Command: socks4.CmdConnect, Port: 80, IP: mustIP("0.0.0.1")}, replyOK},
		{socks4.Request{Command: socks4.CmdConnect, Port: 80, Host: repeat("h", 256)}, replyOK},
	}
	for _, s := range seeds {
		var ip uint32
		if s.req.IP.Is4() {
			a := s.req.IP.As4()
			ip = binary.BigEndian.Uint32(a[:])
		}
		f.Add(uint8(s.req.Command), s.req.Port, ip, s.req.Host, s.req.User, s.server)
	}
	f.Fuzz(func(t *testing.T, cmd uint8, port uint16, ip uint32, host, user string, server []byte) {
		req := socks4.Request{
			Command: socks4.Command(cmd),
			Port:    port,
			IP:      netip.AddrFrom4([4]byte(binary.BigEndian.AppendUint32(nil, ip))),
			Host:    host,
			User:    user,
		}
		wire, encErr := req.AppendBinary(nil)
		for kind, c := range conns(server) {
			bound, err := socks4.ClientHandshake(t.Context(), c.rw, req)
			if encErr != nil {
				require.Error(t, err, kind)
				require.Equal(t, encErr.Error(), err.Error(), kind)
				require.Zero(t, bound, kind)
				require.Zero(t, c.mc.w.Len(), "%s: nothing is sent", kind)
				require.Equal(t, len(server), c.mc.r.Len(), "%s: nothing is read", kind)
				continue
			}
			require.Equal(t, wire, c.mc.w.Bytes(), "%s: the request is sent as encoded", kind)
			consumed := len(server) - c.mc.r.Len()
			checkReply(t, server, bound, err, consumed)
			if err != nil {
				continue
			}
			// A second reply, as to a BIND, from what follows.
			rest := server[consumed:]
			peer, err := socks4.AwaitBind(t.Context(), c.rw)
			checkReply(t, rest, peer, err, len(rest)-c.mc.r.Len())
		}
	})
}
