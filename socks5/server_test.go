package socks5_test

import (
	"context"
	"encoding"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// encode returns m's encoding.
func encode(t testing.TB, m encoding.BinaryAppender) []byte {
	t.Helper()
	b, err := m.AppendBinary(nil)
	require.NoError(t, err)
	return b
}

func greetingWire(methods ...socks5.AuthMethod) []byte {
	b := []byte{socks5.Version, byte(len(methods))}
	for _, m := range methods {
		b = append(b, byte(m))
	}
	return b
}

// testContext is a context that ends a test that goes wrong instead of
// letting it hang.
func testContext(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), sockstest.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// stallConn is the end of a connection whose peer sends sent bytes and
// then stalls: once they are read, it calls stall before the Read that
// would wait for ever, so that a test cancels at the moment the code under
// test blocks.
type stallConn struct {
	net.Conn
	sent, read int
	once       sync.Once
	stall      func()
}

func (c *stallConn) Read(p []byte) (int, error) {
	if c.read >= c.sent {
		c.once.Do(c.stall)
	}
	n, err := c.Conn.Read(p)
	c.read += n
	return n, err
}

var (
	connectExample = socks5.Request{Command: socks5.CmdConnect, Addr: name("example.com", 80)}
	boundLocal     = ipv4("127.0.0.1:4000")
)

func TestServerHandshake(t *testing.T) {
	t.Run("no authentication by default", func(t *testing.T) {
		for _, methods := range [][]socks5.ServerMethod{nil, {}} {
			conn, wait := sockstest.Play(t,
				sockstest.Send(0x05, 0x01, 0x00),
				sockstest.Expect(0x05, 0x00),
				sockstest.Send(encode(t, connectExample)...),
				sockstest.Expect(encode(t, socks5.Response{Reply: socks5.Succeeded, Addr: boundLocal})...),
			)
			s, err := socks5.ServerHandshake(testContext(t), conn, methods)
			require.NoError(t, err, "methods %#v", methods)
			assert.Equal(t, connectExample, s.Request)
			assert.Equal(t, socks5.AuthNone, s.Method)
			assert.Empty(t, s.User)
			assert.Equal(t, conn, s.Stream)
			require.NoError(t, s.Reply(socks5.Succeeded, boundLocal))
			require.NoError(t, wait())
		}
	})

	t.Run("the server's order of preference", func(t *testing.T) {
		userPass := socks5.UserPassServer{Check: func(context.Context, string, string) bool { return true }}
		token := tokenServer{tokens: map[string]string{"t": "tok"}}
		sub := map[socks5.AuthMethod][]byte{
			socks5.AuthNone:     nil,
			socks5.AuthUserPass: userPassWire("u", "p"),
			methodToken:         {1, 't'},
		}
		answer := map[socks5.AuthMethod][]byte{
			socks5.AuthNone:     nil,
			socks5.AuthUserPass: {0x01, 0x00},
			methodToken:         {0x00},
		}
		tests := []struct {
			name    string
			methods []socks5.ServerMethod
			offered []socks5.AuthMethod
			want    socks5.AuthMethod
		}{
			{"username/password first", []socks5.ServerMethod{userPass, socks5.NoAuth{}}, []socks5.AuthMethod{0x00, 0x02}, socks5.AuthUserPass},
			{"none first", []socks5.ServerMethod{socks5.NoAuth{}, userPass}, []socks5.AuthMethod{0x02, 0x00}, socks5.AuthNone},
			{"private first", []socks5.ServerMethod{token, userPass}, []socks5.AuthMethod{0x02, 0x80}, methodToken},
			{"the one the client offers", []socks5.ServerMethod{token, userPass, socks5.NoAuth{}}, []socks5.AuthMethod{0x01, 0x00}, socks5.AuthNone},
			{"offered twice", []socks5.ServerMethod{userPass}, []socks5.AuthMethod{0x02, 0x02}, socks5.AuthUserPass},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				req := encode(t, connectExample)
				d := newDuplex(greetingWire(tt.offered...), sub[tt.want], req, trailer)
				s, err := socks5.ServerHandshake(testContext(t), d, tt.methods)
				require.NoError(t, err)
				assert.Equal(t, tt.want, s.Method)
				assert.Equal(t, connectExample, s.Request)
				assert.Equal(t, sockstest.Join([]byte{0x05, byte(tt.want)}, answer[tt.want]), d.out.Bytes())
				assert.Equal(t, len(trailer), d.in.Len(), "nothing read past the request")
			})
		}
	})

	t.Run("no acceptable method", func(t *testing.T) {
		tests := []struct {
			name    string
			methods []socks5.ServerMethod
			offered []socks5.AuthMethod
		}{
			{"password required", []socks5.ServerMethod{socks5.UserPassServer{}}, []socks5.AuthMethod{0x00}},
			{"no authentication by default", nil, []socks5.AuthMethod{0x01, 0x02, 0x80, 0xfe}},
			{"client offers 0xff", []socks5.ServerMethod{socks5.NoAuth{}}, []socks5.AuthMethod{0xff}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				d := newDuplex(greetingWire(tt.offered...), trailer)
				s, err := socks5.ServerHandshake(testContext(t), d, tt.methods)
				assert.ErrorIs(t, err, socks5.ErrNoAcceptableMethod)
				assert.Nil(t, s)
				assert.Equal(t, []byte{0x05, 0xff}, d.out.Bytes(), "0xFF and nothing more")
				assert.Equal(t, len(trailer), d.in.Len())
			})
		}

		// On a connection: the answer, then the caller closes.
		conn, wait := sockstest.Play(t,
			sockstest.Send(0x05, 0x01, 0x00),
			sockstest.Expect(0x05, 0xff),
			sockstest.Drain(),
		)
		_, err := socks5.ServerHandshake(testContext(t), conn, []socks5.ServerMethod{socks5.UserPassServer{}})
		require.ErrorIs(t, err, socks5.ErrNoAcceptableMethod)
		require.NoError(t, conn.Close())
		require.NoError(t, wait())
	})

	t.Run("username/password by callback", func(t *testing.T) {
		var seen []string
		check := func(_ context.Context, user, pass string) bool {
			seen = append(seen, user, pass)
			return user == "alice" && pass == "secret"
		}
		conn, wait := sockstest.Play(t,
			sockstest.Send(0x05, 0x02, 0x00, 0x02),
			sockstest.Expect(0x05, 0x02),
			sockstest.Send(userPassWire("alice", "secret")...),
			sockstest.Expect(0x01, 0x00),
			sockstest.Send(encode(t, connectExample)...),
		)
		s, err := socks5.ServerHandshake(testContext(t), conn, []socks5.ServerMethod{socks5.UserPassServer{Check: check}})
		require.NoError(t, err)
		assert.Equal(t, socks5.AuthUserPass, s.Method)
		assert.Equal(t, "alice", s.User)
		assert.Equal(t, connectExample, s.Request)
		assert.Equal(t, []string{"alice", "secret"}, seen)
		require.NoError(t, wait())
	})

	t.Run("username/password from NewCredentials", func(t *testing.T) {
		creds := socks5.NewCredentials(map[string]string{"alice": "secret", "bob": "hunter2"})
		methods := []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}}

		conn, wait := sockstest.Play(t,
			sockstest.Send(0x05, 0x01, 0x02),
			sockstest.Expect(0x05, 0x02),
			sockstest.Send(userPassWire("bob", "hunter2")...),
			sockstest.Expect(0x01, 0x00),
			sockstest.Send(encode(t, connectExample)...),
		)
		s, err := socks5.ServerHandshake(testContext(t), conn, methods)
		require.NoError(t, err)
		assert.Equal(t, "bob", s.User)
		require.NoError(t, wait())

		// A wrong password: status other than 0, ErrAuthFailed, and the
		// request is not read.
		d := newDuplex(greetingWire(0x02), userPassWire("bob", "secret"), encode(t, connectExample))
		s, err = socks5.ServerHandshake(testContext(t), d, methods)
		assert.ErrorIs(t, err, socks5.ErrAuthFailed)
		assert.Nil(t, s)
		out := d.out.Bytes()
		require.Len(t, out, 4)
		assert.Equal(t, []byte{0x05, 0x02, 0x01}, out[:3])
		assert.NotZero(t, out[3], "status")
		assert.Equal(t, len(encode(t, connectExample)), d.in.Len(), "the request is left unread")
	})

	t.Run("private method exchanging a token", func(t *testing.T) {
		methods := []socks5.ServerMethod{tokenServer{tokens: map[string]string{"s3cr3t": "carol"}}}
		conn, wait := sockstest.Play(t,
			sockstest.Send(0x05, 0x01, 0x80),
			sockstest.Expect(0x05, 0x80),
			sockstest.Send(6, 's', '3', 'c', 'r', '3', 't'),
			sockstest.Expect(0x00),
			sockstest.Send(encode(t, connectExample)...),
		)
		s, err := socks5.ServerHandshake(testContext(t), conn, methods)
		require.NoError(t, err)
		assert.Equal(t, methodToken, s.Method)
		assert.Equal(t, "carol", s.User)
		assert.Equal(t, connectExample, s.Request)
		require.NoError(t, wait())

		d := newDuplex(greetingWire(0x80), []byte{3, 'b', 'a', 'd'})
		_, err = socks5.ServerHandshake(testContext(t), d, methods)
		assert.ErrorIs(t, err, errBadToken, "the method's error is kept")
		assert.Contains(t, err.Error(), "private method 0x80")
		assert.Equal(t, []byte{0x05, 0x80, 0x01}, d.out.Bytes())
	})

	t.Run("private method wrapping the stream", func(t *testing.T) {
		const key = 0x5a
		reply := socks5.Response{Reply: socks5.Succeeded, Addr: boundLocal}
		conn, wait := sockstest.Play(t,
			sockstest.Send(0x05, 0x02, 0x00, 0x81),
			sockstest.Expect(0x05, 0x81),
			sockstest.Send(key),
			sockstest.Send(xorBytes(encode(t, connectExample), key)...),
			sockstest.Expect(xorBytes(encode(t, reply), key)...),
			sockstest.Send(xorBytes([]byte("data"), key)...),
		)
		s, err := socks5.ServerHandshake(testContext(t), conn, []socks5.ServerMethod{xorServer{}, socks5.NoAuth{}})
		require.NoError(t, err)
		assert.Equal(t, methodXOR, s.Method)
		assert.Equal(t, "xor", s.User)
		assert.Equal(t, connectExample, s.Request, "the request is read through the wrapper")
		require.IsType(t, &xorStream{}, s.Stream)
		require.NoError(t, s.Reply(reply.Reply, reply.Addr), "the reply is written through the wrapper")
		data := make([]byte, 4)
		_, err = io.ReadFull(s.Stream, data)
		require.NoError(t, err)
		assert.Equal(t, "data", string(data))
		require.NoError(t, wait())
	})

	t.Run("malformed request", func(t *testing.T) {
		failure := func(code socks5.Reply) []byte {
			return []byte{0x05, byte(code), 0x00, 0x01, 0, 0, 0, 0, 0, 0}
		}
		tests := []struct {
			name    string
			request []byte
			want    error
			reply   []byte // after the method selection
		}{
			{"unknown address type", hexBytes("05 01 00 02 7f 00 00 01 00 50"), socks5.ErrAddrType, failure(socks5.AddrTypeNotSupported)},
			{"reserved byte", hexBytes("05 01 80 01 7f 00 00 01 00 50"), socks5.ErrMalformed, failure(socks5.GeneralFailure)},
			{"wrong version", hexBytes("04 01 00 50 7f 00 00 01 00"), socks5.ErrMalformed, failure(socks5.GeneralFailure)},
			{"empty name", hexBytes("05 01 00 03 00 00 50"), socks5.ErrMalformed, failure(socks5.GeneralFailure)},
			{"cut short", hexBytes("05 01 00 01 7f 00"), io.ErrUnexpectedEOF, nil},
			{"missing", nil, io.EOF, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				d := newDuplex(greetingWire(0x00), tt.request)
				s, err := socks5.ServerHandshake(testContext(t), d, nil)
				assert.ErrorIs(t, err, tt.want)
				assert.Nil(t, s)
				assert.Equal(t, sockstest.Join([]byte{0x05, 0x00}, tt.reply), d.out.Bytes())
			})
		}
	})

	t.Run("malformed greeting", func(t *testing.T) {
		tests := []struct {
			name     string
			greeting []byte
			want     error
		}{
			{"SOCKS4", hexBytes("04 01 00 50 7f 00 00 01 00"), socks5.ErrMalformed},
			{"cut short", hexBytes("05 02 00"), io.ErrUnexpectedEOF},
			{"nothing", nil, io.EOF},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				d := newDuplex(tt.greeting)
				_, err := socks5.ServerHandshake(testContext(t), d, nil)
				assert.ErrorIs(t, err, tt.want)
				assert.Zero(t, d.out.Len(), "no answer to what is not a SOCKS5 greeting")
			})
		}
	})

	// RFC 1928: a greeting offers 1 to 255 methods. One that offers none
	// is well formed as far as it goes, and none of its methods is
	// acceptable: the client is told so before the server closes.
	t.Run("no methods offered", func(t *testing.T) {
		d := newDuplex(hexBytes("05 00"), trailer)
		s, err := socks5.ServerHandshake(testContext(t), d, nil)
		assert.Nil(t, s)
		assert.ErrorIs(t, err, socks5.ErrNoAcceptableMethod)
		assert.ErrorIs(t, err, socks5.ErrMalformed)
		assert.Equal(t, hexBytes("05 ff"), d.out.Bytes())
		assert.Equal(t, len(trailer), d.in.Len(), "nothing read past the greeting")
	})

	// RFC 1929: a username and a password are 1 to 255 bytes each. A
	// request with an empty one gets a failure status, and then the
	// server closes; the request is read to its end, so that closing
	// does not reset the connection under the status.
	t.Run("empty username or password", func(t *testing.T) {
		methods := []socks5.ServerMethod{socks5.UserPassServer{Check: func(context.Context, string, string) bool { return true }}}
		for _, tt := range []struct{ name, wire string }{
			{"ULEN 0", "01 00 04 70 61 73 73"},
			{"PLEN 0", "01 04 75 73 65 72 00"},
			{"both 0", "01 00 00"},
		} {
			t.Run(tt.name, func(t *testing.T) {
				d := newDuplex(greetingWire(socks5.AuthUserPass), hexBytes(tt.wire), trailer)
				s, err := socks5.ServerHandshake(testContext(t), d, methods)
				assert.Nil(t, s)
				assert.ErrorIs(t, err, socks5.ErrAuthFailed)
				assert.ErrorIs(t, err, socks5.ErrMalformed)
				assert.Equal(t, hexBytes("05 02 01 01"), d.out.Bytes())
				assert.Equal(t, len(trailer), d.in.Len(), "the request read to its end, and no further")
			})
		}
	})

	t.Run("commands are the caller's to check", func(t *testing.T) {
		bind := socks5.Request{Command: socks5.CmdBind, Addr: ipv4("192.0.2.1:0")}
		d := newDuplex(greetingWire(0x00), encode(t, bind))
		s, err := socks5.ServerHandshake(testContext(t), d, nil)
		require.NoError(t, err)
		assert.Equal(t, bind, s.Request)

		d.out.Reset()
		require.NoError(t, s.Reply(socks5.CommandNotSupported, socks5.Addr{}))
		assert.Equal(t, hexBytes("05 07 00 01 00 00 00 00 00 00"), d.out.Bytes())
	})

	t.Run("BIND replies twice", func(t *testing.T) {
		bind := socks5.Request{Command: socks5.CmdBind, Addr: ipv4("192.0.2.1:0")}
		listening, peer := ipv4("127.0.0.1:40000"), ipv4("192.0.2.1:20")
		conn, wait := sockstest.Play(t,
			sockstest.Send(0x05, 0x01, 0x00),
			sockstest.Expect(0x05, 0x00),
			sockstest.Send(encode(t, bind)...),
			sockstest.Expect(encode(t, socks5.Response{Addr: listening})...),
			sockstest.Expect(encode(t, socks5.Response{Addr: peer})...),
		)
		s, err := socks5.ServerHandshake(testContext(t), conn, nil)
		require.NoError(t, err)
		require.NoError(t, s.Reply(socks5.Succeeded, listening))
		require.NoError(t, s.Reply(socks5.Succeeded, peer))
		require.NoError(t, wait())
	})
}

// A client that stalls in the middle of the handshake is cut off when the
// context ends, at once.
func TestServerHandshakeStalledClient(t *testing.T) {
	greeting := []byte{0x05, 0x01, 0x00}
	stalls := []struct {
		name   string
		script []sockstest.Step
		sent   int // bytes the script sends
	}{
		{"before the greeting", nil, 0},
		{"in the greeting", []sockstest.Step{sockstest.Send(0x05, 0x02, 0x00)}, 3},
		{"before the request", []sockstest.Step{sockstest.Send(greeting...), sockstest.Expect(0x05, 0x00)}, 3},
		{"in the request", []sockstest.Step{sockstest.Send(greeting...), sockstest.Expect(0x05, 0x00), sockstest.Send(0x05, 0x01, 0x00, 0x03, 0x10, 'a')}, 9},
		{"in the subnegotiation", []sockstest.Step{sockstest.Send(0x05, 0x01, 0x02), sockstest.Expect(0x05, 0x02), sockstest.Send(0x01, 0x05, 'a')}, 6},
	}
	methods := []socks5.ServerMethod{socks5.NoAuth{}, socks5.UserPassServer{}}
	for _, st := range stalls {
		t.Run(st.name, func(t *testing.T) {
			t.Run("cancel", func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				mine, theirs := net.Pipe()
				conn := &stallConn{Conn: mine, sent: st.sent, stall: cancel}
				sockstest.PlayOn(t, mine, theirs, append(st.script, sockstest.Drain())...)

				started := time.Now()
				s, err := socks5.ServerHandshake(ctx, conn, methods)
				assert.Less(t, time.Since(started), sockstest.Timeout/2, "the cancel ends the handshake at once")
				assert.Nil(t, s)
				assert.ErrorIs(t, err, context.Canceled)
				assert.Equal(t, st.sent, conn.read, "the handshake stalled where the client did")
			})

			t.Run("deadline", func(t *testing.T) {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				defer cancel()
				conn, _ := sockstest.Play(t, append(st.script, sockstest.Drain())...)
				started := time.Now()
				s, err := socks5.ServerHandshake(ctx, conn, methods)
				assert.Less(t, time.Since(started), sockstest.Timeout/2)
				assert.Nil(t, s)
				assert.ErrorIs(t, err, context.DeadlineExceeded)
			})
		})
	}
}
