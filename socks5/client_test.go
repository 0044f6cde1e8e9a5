package socks5_test

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

func TestClientHandshake(t *testing.T) {
	okReply := encode(t, socks5.Response{Reply: socks5.Succeeded, Addr: boundLocal})

	t.Run("no authentication", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Expect(0x05, 0x01, 0x00),
			sockstest.Send(0x05, 0x00),
			sockstest.Expect(hexBytes("05 01 00 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50")...),
			sockstest.Send(okReply...),
		)
		bound, stream, err := socks5.ClientHandshake(testContext(t), conn, connectExample)
		require.NoError(t, err)
		assert.Equal(t, boundLocal, bound)
		assert.Equal(t, conn, stream)
		require.NoError(t, wait())
	})

	t.Run("username/password", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Expect(0x05, 0x01, 0x02),
			sockstest.Send(0x05, 0x02),
			sockstest.Expect(userPassWire("alice", "secret")...),
			sockstest.Send(0x01, 0x00),
			sockstest.Expect(encode(t, connectExample)...),
			sockstest.Send(okReply...),
		)
		bound, _, err := socks5.ClientHandshake(testContext(t), conn, connectExample,
			socks5.UserPassClient{Username: "alice", Password: "secret"})
		require.NoError(t, err)
		assert.Equal(t, boundLocal, bound)
		require.NoError(t, wait())
	})

	t.Run("offers in the order given, follows the server's choice", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Expect(0x05, 0x03, 0x80, 0x02, 0x00),
			sockstest.Send(0x05, 0x02),
			sockstest.Expect(userPassWire("u", "p")...),
			sockstest.Send(0x01, 0x00),
			sockstest.Expect(encode(t, connectExample)...),
			sockstest.Send(okReply...),
		)
		_, _, err := socks5.ClientHandshake(testContext(t), conn, connectExample,
			tokenClient{token: "t"}, socks5.UserPassClient{Username: "u", Password: "p"}, socks5.NoAuth{})
		require.NoError(t, err)
		require.NoError(t, wait())
	})

	t.Run("private method wrapping the stream", func(t *testing.T) {
		const key = 0x33
		conn, wait := sockstest.Play(t,
			sockstest.Expect(0x05, 0x01, 0x81),
			sockstest.Send(0x05, 0x81),
			sockstest.Expect(key),
			sockstest.Expect(xorBytes(encode(t, connectExample), key)...),
			sockstest.Send(xorBytes(okReply, key)...),
		)
		bound, stream, err := socks5.ClientHandshake(testContext(t), conn, connectExample, xorClient{key: key})
		require.NoError(t, err)
		assert.Equal(t, boundLocal, bound, "the reply is read through the wrapper")
		assert.IsType(t, &xorStream{}, stream)
		require.NoError(t, wait())
	})

	t.Run("BIND and its second reply", func(t *testing.T) {
		bind := socks5.Request{Command: socks5.CmdBind, Addr: ipv4("192.0.2.1:0")}
		listening, peer := ipv4("127.0.0.1:40000"), ipv4("192.0.2.1:20")
		conn, wait := sockstest.Play(t,
			sockstest.Expect(0x05, 0x01, 0x00),
			sockstest.Send(0x05, 0x00),
			sockstest.Expect(encode(t, bind)...),
			sockstest.Send(encode(t, socks5.Response{Addr: listening})...),
			sockstest.Send(encode(t, socks5.Response{Addr: peer})...),
			sockstest.Send('h', 'i'),
		)
		bound, stream, err := socks5.ClientHandshake(testContext(t), conn, bind)
		require.NoError(t, err)
		assert.Equal(t, listening, bound)
		got, err := socks5.AwaitBind(testContext(t), stream)
		require.NoError(t, err)
		assert.Equal(t, peer, got)
		data := make([]byte, 2)
		_, err = io.ReadFull(conn, data)
		require.NoError(t, err)
		assert.Equal(t, "hi", string(data), "nothing read past the second reply")
		require.NoError(t, wait())
	})

	t.Run("BIND refused on the second reply", func(t *testing.T) {
		d := newDuplex(hexBytes("05 02 00 01 c0 00 02 07 00 14"))
		_, err := socks5.AwaitBind(testContext(t), d)
		var re *socks5.ReplyError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, socks5.NotAllowed, re.Reply)
	})

	t.Run("a request that cannot travel sends nothing", func(t *testing.T) {
		for _, addr := range []socks5.Addr{
			{Port: 80},
			{Name: strings.Repeat("a", 256), Port: 80},
		} {
			d := newDuplex(hexBytes("05 00"), okReply)
			_, _, err := socks5.ClientHandshake(testContext(t), d, socks5.Request{Command: socks5.CmdConnect, Addr: addr})
			assert.Error(t, err)
			assert.Zero(t, d.out.Len(), "no greeting for a request that fails to encode")
		}
	})

	t.Run("too many methods", func(t *testing.T) {
		methods := make([]socks5.ClientMethod, 256)
		for i := range methods {
			methods[i] = socks5.NoAuth{}
		}
		d := newDuplex(hexBytes("05 00"), okReply)
		_, _, err := socks5.ClientHandshake(testContext(t), d, connectExample, methods...)
		assert.Error(t, err)
		assert.Zero(t, d.out.Len())
	})
}

// The server is not trusted: whatever it sends that breaks the protocol
// ends the handshake with an error that says so.
func TestClientHandshakeRogueServer(t *testing.T) {
	req := encode(t, connectExample)
	noAuth := []sockstest.Step{sockstest.Expect(0x05, 0x01, 0x00), sockstest.Send(0x05, 0x00), sockstest.Expect(req...)}
	userPass := []sockstest.Step{sockstest.Expect(0x05, 0x01, 0x02), sockstest.Send(0x05, 0x02), sockstest.Expect(userPassWire("u", "p")...)}
	then := func(first []sockstest.Step, more ...sockstest.Step) []sockstest.Step {
		return append(append([]sockstest.Step(nil), first...), more...)
	}
	tests := []struct {
		name     string
		userPass bool
		script   []sockstest.Step
		want     error
	}{
		{"hangs up at once", false, []sockstest.Step{sockstest.Expect(0x05, 0x01, 0x00), sockstest.Close()}, io.EOF},
		{"wrong version", false, []sockstest.Step{sockstest.Expect(0x05, 0x01, 0x00), sockstest.Send(0x04, 0x00)}, socks5.ErrMalformed},
		{"SOCKS4 reply", false, []sockstest.Step{sockstest.Expect(0x05, 0x01, 0x00), sockstest.Send(0x00, 0x5a)}, socks5.ErrMalformed},
		{"method not offered", false, []sockstest.Step{sockstest.Expect(0x05, 0x01, 0x00), sockstest.Send(0x05, 0x02)}, socks5.ErrMalformed},
		{"GSS-API not offered", false, []sockstest.Step{sockstest.Expect(0x05, 0x01, 0x00), sockstest.Send(0x05, 0x01)}, socks5.ErrMalformed},
		{"no authentication not offered", true, []sockstest.Step{sockstest.Expect(0x05, 0x01, 0x02), sockstest.Send(0x05, 0x00)}, socks5.ErrMalformed},
		{"no acceptable method", false, []sockstest.Step{sockstest.Expect(0x05, 0x01, 0x00), sockstest.Send(0x05, 0xff)}, socks5.ErrNoAcceptableMethod},
		{"selection cut short", false, []sockstest.Step{sockstest.Expect(0x05, 0x01, 0x00), sockstest.Send(0x05), sockstest.Close()}, io.ErrUnexpectedEOF},

		{"auth status failure", true, then(userPass, sockstest.Send(0x01, 0x01)), socks5.ErrAuthFailed},
		{"auth status 0xff", true, then(userPass, sockstest.Send(0x01, 0xff)), socks5.ErrAuthFailed},
		{"auth wrong version", true, then(userPass, sockstest.Send(0x05, 0x00)), socks5.ErrMalformed},
		{"auth cut short", true, then(userPass, sockstest.Send(0x01), sockstest.Close()), io.ErrUnexpectedEOF},

		{"reply wrong version", false, then(noAuth, sockstest.Send(hexBytes("04 00 00 01 7f 00 00 01 00 50")...)), socks5.ErrMalformed},
		{"reply bad RSV", false, then(noAuth, sockstest.Send(hexBytes("05 00 01 01 7f 00 00 01 00 50")...)), socks5.ErrMalformed},
		{"reply unknown ATYP", false, then(noAuth, sockstest.Send(hexBytes("05 00 00 02 7f 00 00 01 00 50")...)), socks5.ErrAddrType},
		{"reply zero-length name", false, then(noAuth, sockstest.Send(hexBytes("05 00 00 03 00 00 50")...)), socks5.ErrMalformed},
		{"reply cut short", false, then(noAuth, sockstest.Send(hexBytes("05 00 00 01 7f")...), sockstest.Close()), io.ErrUnexpectedEOF},
		{"reply name cut short", false, then(noAuth, sockstest.Send(hexBytes("05 00 00 03 0a 61 62")...), sockstest.Close()), io.ErrUnexpectedEOF},
		{"hangs up before the reply", false, then(noAuth, sockstest.Close()), io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var methods []socks5.ClientMethod
			if tt.userPass {
				methods = append(methods, socks5.UserPassClient{Username: "u", Password: "p"})
			}
			conn, wait := sockstest.Play(t, tt.script...)
			bound, stream, err := socks5.ClientHandshake(testContext(t), conn, connectExample, methods...)
			require.Error(t, err)
			assert.ErrorIs(t, err, tt.want)
			assert.True(t, bound.IsZero())
			assert.Nil(t, stream)
			// The client stops reading at the first wrong byte: take the
			// rest, so that the script ends and tells whether the client
			// sent what it expected.
			io.Copy(io.Discard, conn)
			require.NoError(t, wait(), "the client sent what the script expected")
		})
	}

	for code := socks5.GeneralFailure; code <= 0x09; code++ {
		t.Run("reply "+code.String(), func(t *testing.T) {
			conn, wait := sockstest.Play(t, then(noAuth,
				sockstest.Send(encode(t, socks5.Response{Reply: code, Addr: ipv4("0.0.0.0:0")})...))...)
			_, stream, err := socks5.ClientHandshake(testContext(t), conn, connectExample)
			var re *socks5.ReplyError
			require.ErrorAs(t, err, &re)
			assert.Equal(t, code, re.Reply)
			assert.Nil(t, re.Err)
			assert.Contains(t, err.Error(), code.String())
			assert.Equal(t, code, socks5.ReplyFor(err), "a proxy that relays the failure answers the same code")
			assert.Nil(t, stream)
			require.NoError(t, wait())
		})
	}
}

// A server that stalls is cut off when the context ends, at once.
func TestClientHandshakeStalledServer(t *testing.T) {
	req := encode(t, connectExample)
	stalls := []struct {
		name   string
		script []sockstest.Step
		sent   int
	}{
		{"before the method selection", []sockstest.Step{sockstest.Expect(0x05, 0x01, 0x00)}, 0},
		{"in the method selection", []sockstest.Step{sockstest.Expect(0x05, 0x01, 0x00), sockstest.Send(0x05)}, 1},
		{"before the reply", []sockstest.Step{sockstest.Expect(0x05, 0x01, 0x00), sockstest.Send(0x05, 0x00), sockstest.Expect(req...)}, 2},
		{"in the reply", []sockstest.Step{sockstest.Expect(0x05, 0x01, 0x00), sockstest.Send(0x05, 0x00), sockstest.Expect(req...), sockstest.Send(0x05, 0x00, 0x00, 0x03, 0x20)}, 7},
	}
	for _, st := range stalls {
		t.Run(st.name, func(t *testing.T) {
			t.Run("cancel", func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				mine, theirs := net.Pipe()
				conn := &stallConn{Conn: mine, sent: st.sent, stall: cancel}
				sockstest.PlayOn(t, mine, theirs, append(st.script, sockstest.Drain())...)

				started := time.Now()
				_, stream, err := socks5.ClientHandshake(ctx, conn, connectExample)
				assert.Less(t, time.Since(started), sockstest.Timeout/2, "the cancel ends the handshake at once")
				assert.Nil(t, stream)
				assert.ErrorIs(t, err, context.Canceled)
				assert.Equal(t, st.sent, conn.read)
			})

			t.Run("deadline", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				defer cancel()
				conn, _ := sockstest.Play(t, append(st.script, sockstest.Drain())...)
				started := time.Now()
				_, stream, err := socks5.ClientHandshake(ctx, conn, connectExample)
				assert.Less(t, time.Since(started), sockstest.Timeout/2)
				assert.Nil(t, stream)
				assert.ErrorIs(t, err, context.DeadlineExceeded)
			})
		})
	}

	t.Run("AwaitBind", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		mine, theirs := net.Pipe()
		conn := &stallConn{Conn: mine, stall: cancel}
		sockstest.PlayOn(t, mine, theirs, sockstest.Drain())
		started := time.Now()
		_, err := socks5.AwaitBind(ctx, conn)
		assert.Less(t, time.Since(started), sockstest.Timeout/2)
		assert.ErrorIs(t, err, context.Canceled)

		ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		conn2, _ := sockstest.Play(t, sockstest.Drain())
		_, err = socks5.AwaitBind(ctx, conn2)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})

	t.Run("the deadline is cleared after the handshake", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		conn, wait := sockstest.Play(t,
			sockstest.Expect(0x05, 0x01, 0x00),
			sockstest.Send(0x05, 0x00),
			sockstest.Expect(req...),
			sockstest.Send(encode(t, socks5.Response{Addr: boundLocal})...),
			sockstest.Send('x'),
		)
		_, _, err := socks5.ClientHandshake(ctx, conn, connectExample)
		require.NoError(t, err)
		cancel() // the handshake is over: the connection is no longer the context's
		b := make([]byte, 1)
		_, err = io.ReadFull(conn, b)
		require.NoError(t, err)
		assert.Equal(t, byte('x'), b[0])
		require.NoError(t, wait())
	})
}
