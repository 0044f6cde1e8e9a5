package socks4_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks4"
)

// memConn is a connection in memory: reads come from what the peer sent,
// writes are kept. It has no SetDeadline method and no ReadByte method.
type memConn struct {
	r *bytes.Reader
	w bytes.Buffer
}

func newMemConn(peer []byte) *memConn { return &memConn{r: bytes.NewReader(peer)} }

func (c *memConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *memConn) Write(p []byte) (int, error) { return c.w.Write(p) }

// byteConn is a memConn that is also an io.ByteReader, like a connection
// wrapped in a bufio.Reader.
type byteConn struct{ *memConn }

func (c byteConn) ReadByte() (byte, error) { return c.r.ReadByte() }

// notifyConn closes reading when the code under test calls Read after it
// has read after bytes, all that the peer sent: the call that stalls. A
// test cancels a handshake that is under way there, without sleeping.
// Only the code under test reads from it.
type notifyConn struct {
	net.Conn
	after, read int
	once        sync.Once
	reading     chan struct{}
}

func notifying(c net.Conn, after int) *notifyConn {
	return &notifyConn{Conn: c, after: after, reading: make(chan struct{})}
}

func (c *notifyConn) Read(p []byte) (int, error) {
	if c.read >= c.after {
		c.once.Do(func() { close(c.reading) })
	}
	n, err := c.Conn.Read(p)
	c.read += n
	return n, err
}

// cancelOnRead returns a context that is cancelled once c is first read.
func cancelOnRead(t *testing.T, c *notifyConn) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	go func() {
		select {
		case <-c.reading:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx
}

// assertDeadline checks that err reports the context's deadline: the
// connection's deadline, which internal/deadline sets to the context's,
// cut the handshake short. Whether the error also matches
// context.DeadlineExceeded depends on which of the two timers fired first
// (see deadline.Bind), so only the connection's timeout is asserted.
func assertDeadline(t *testing.T, err error) {
	t.Helper()
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
}

func encode(t testing.TB, m interface{ AppendBinary([]byte) ([]byte, error) }) []byte {
	t.Helper()
	b, err := m.AppendBinary(nil)
	require.NoError(t, err)
	return b
}

var (
	fredConnect = socks4.Request{Command: socks4.CmdConnect, Port: 80, IP: mustIP("66.102.7.99"), User: "fred"}
	fredBind    = socks4.Request{Command: socks4.CmdBind, Port: 2121, IP: mustIP("66.102.7.99"), User: "fred"}
	nameConnect = socks4.Request{Command: socks4.CmdConnect, Port: 443, Host: "example.com", User: "fred"}
	replyOK     = []byte{0, 90, 0, 0, 0, 0, 0, 0}
	reply91     = []byte{0, 91, 0, 0, 0, 0, 0, 0}
)

func TestServerHandshake(t *testing.T) {
	t.Run("Connect", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Send(encode(t, fredConnect)...),
			sockstest.Expect(0, 90, 0, 0, 0, 0, 0, 0),
		)
		s, err := socks4.ServerHandshake(t.Context(), conn)
		require.NoError(t, err)
		assert.Equal(t, fredConnect, s.Request)
		assert.Equal(t, "fred", s.User)
		assert.Equal(t, conn, s.Stream)
		require.NoError(t, s.Reply(socks4.Granted, netip.AddrPort{}))
		assert.NoError(t, wait())
	})

	t.Run("Connect4a", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Send(encode(t, nameConnect)...),
			sockstest.Expect(0, 90, 0x01, 0xbb, 10, 0, 0, 1),
		)
		s, err := socks4.ServerHandshake(t.Context(), conn)
		require.NoError(t, err)
		assert.Equal(t, nameConnect, s.Request)
		assert.Equal(t, "example.com:443", s.Request.Target())
		require.NoError(t, s.Reply(socks4.Granted, netip.MustParseAddrPort("10.0.0.1:443")))
		assert.NoError(t, wait())
	})

	t.Run("Bind", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Send(encode(t, fredBind)...),
			sockstest.Expect(0, 90, 0xc0, 0x01, 192, 0, 2, 1),   // listening on 192.0.2.1:49153
			sockstest.Expect(0, 90, 0x08, 0x48, 66, 102, 7, 99), // 66.102.7.99:2120 connected
		)
		s, err := socks4.ServerHandshake(t.Context(), conn)
		require.NoError(t, err)
		assert.Equal(t, socks4.CmdBind, s.Request.Command)
		require.NoError(t, s.Reply(socks4.Granted, netip.MustParseAddrPort("192.0.2.1:49153")))
		require.NoError(t, s.Reply(socks4.Granted, netip.MustParseAddrPort("66.102.7.99:2120")))
		assert.NoError(t, wait())
	})

	t.Run("BindWrongHost", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Send(encode(t, fredBind)...),
			sockstest.Expect(0, 90, 0xc0, 0x01, 192, 0, 2, 1),
			sockstest.Expect(reply91...),
		)
		s, err := socks4.ServerHandshake(t.Context(), conn)
		require.NoError(t, err)
		require.NoError(t, s.Reply(socks4.Granted, netip.MustParseAddrPort("192.0.2.1:49153")))
		require.NoError(t, s.Reply(socks4.Rejected, netip.AddrPort{}))
		assert.NoError(t, wait())
	})

	t.Run("UnknownCommand", func(t *testing.T) {
		// The parser accepts any command; the caller answers 91.
		conn, wait := sockstest.Play(t,
			sockstest.Send(4, 3, 0, 80, 10, 0, 0, 1, 0),
			sockstest.Expect(reply91...),
		)
		s, err := socks4.ServerHandshake(t.Context(), conn)
		require.NoError(t, err)
		assert.Equal(t, socks4.Command(3), s.Request.Command)
		require.NoError(t, s.Reply(socks4.Rejected, netip.AddrPort{}))
		assert.NoError(t, wait())
	})

	t.Run("ReplyIPv6", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Send(encode(t, fredConnect)...),
			sockstest.Expect(reply91...),
		)
		s, err := socks4.ServerHandshake(t.Context(), conn)
		require.NoError(t, err)
		err = s.Reply(socks4.Granted, netip.MustParseAddrPort("[2001:db8::1]:80"))
		assert.ErrorContains(t, err, "IPv6")
		require.NoError(t, s.Reply(socks4.Rejected, netip.AddrPort{}), "nothing was sent by the failed Reply")
		assert.NoError(t, wait())
	})

	t.Run("Malformed", func(t *testing.T) {
		// The client sends exactly what the server reads before it gives
		// up, then reads the server's answer.
		conn, wait := sockstest.Play(t,
			sockstest.Send(5),
			sockstest.Expect(reply91...),
		)
		s, err := socks4.ServerHandshake(t.Context(), conn)
		assert.ErrorIs(t, err, socks4.ErrMalformed)
		assert.ErrorContains(t, err, "request version 5")
		assert.Nil(t, s)
		assert.NoError(t, wait())
	})

	t.Run("Cancel", func(t *testing.T) {
		pipe, wait := sockstest.Play(t,
			sockstest.Send(4, 1, 0, 80), // half a header, then silence
			sockstest.Expect('!'),
		)
		conn := notifying(pipe, 4)
		ctx := cancelOnRead(t, conn)
		s, err := socks4.ServerHandshake(ctx, conn)
		assert.ErrorIs(t, err, context.Canceled)
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
		assert.Nil(t, s)

		// The handshake cleared the deadline it set: the connection works.
		_, err = conn.Write([]byte{'!'})
		require.NoError(t, err)
		assert.NoError(t, wait())
	})

	t.Run("Deadline", func(t *testing.T) {
		conn, _ := sockstest.Play(t,
			sockstest.Send(4, 1, 0, 80, 10, 0, 0, 1, 'f', 'r'), // no NUL
			sockstest.Expect('!'),
		)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		s, err := socks4.ServerHandshake(ctx, conn)
		assertDeadline(t, err)
		assert.Nil(t, s)
	})
}

// TestServerHandshakeMalformed runs the malformed requests of the message
// tests through the handshake: each is an error, answered with 91 when the
// request breaks the protocol, with nothing when the client went away.
func TestServerHandshakeMalformed(t *testing.T) {
	long := bytes.Repeat([]byte{'a'}, socks4.MaxUserLen+1)
	cases := []struct {
		name  string
		in    []byte
		is    error
		reply []byte // what the server answers
	}{
		{"empty", nil, io.EOF, nil},
		{"SOCKS5", []byte{5, 1, 0}, socks4.ErrMalformed, reply91},
		{"truncated", []byte{4, 1, 0, 80, 10}, io.ErrUnexpectedEOF, nil},
		{"no NUL", []byte{4, 1, 0, 80, 10, 0, 0, 1, 'f'}, io.ErrUnexpectedEOF, nil},
		{"user id too long", Join([]byte{4, 1, 0, 80, 10, 0, 0, 1}, long, []byte{0}), socks4.ErrMalformed, reply91},
		{"empty host name", []byte{4, 1, 0, 80, 0, 0, 0, 9, 0, 0}, socks4.ErrMalformed, reply91},
		{"host name too long", Join([]byte{4, 1, 0, 80, 0, 0, 0, 9, 0}, long, []byte{0}), socks4.ErrMalformed, reply91},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, byteReader := range []bool{false, true} {
				mc := newMemConn(c.in)
				var rw io.ReadWriter = mc
				if byteReader {
					rw = byteConn{mc}
				}
				s, err := socks4.ServerHandshake(t.Context(), rw)
				assert.ErrorIs(t, err, c.is)
				assert.Nil(t, s)
				assert.Equal(t, c.reply, mc.w.Bytes())
			}
		})
	}
}

// TestServerOptimisticData: a client that sends its request and its first
// data in one write finds the data on the connection after the handshake.
func TestServerOptimisticData(t *testing.T) {
	payload := []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")

	for _, req := range []socks4.Request{fredConnect, nameConnect} {
		t.Run("Pipe/"+req.Target(), func(t *testing.T) {
			conn, wait := sockstest.Play(t,
				sockstest.Send(Join(encode(t, req), payload)...),
				sockstest.Expect(replyOK...),
			)
			s, err := socks4.ServerHandshake(t.Context(), conn)
			require.NoError(t, err)
			assert.Equal(t, req, s.Request)
			got := make([]byte, len(payload))
			_, err = io.ReadFull(s.Stream, got)
			require.NoError(t, err)
			assert.Equal(t, payload, got)
			require.NoError(t, s.Reply(socks4.Granted, netip.AddrPort{}))
			assert.NoError(t, wait())
		})
	}

	t.Run("TCP", func(t *testing.T) {
		type result struct {
			req     socks4.Request
			payload []byte
			err     error
		}
		results := make(chan result, 1)
		addr := sockstest.Serve(t, func(c net.Conn) {
			ctx, cancel := context.WithTimeout(context.Background(), sockstest.Timeout)
			defer cancel()
			s, err := socks4.ServerHandshake(ctx, c)
			if err != nil {
				results <- result{err: err}
				return
			}
			got := make([]byte, len(payload))
			c.SetReadDeadline(time.Now().Add(sockstest.Timeout))
			if _, err := io.ReadFull(c, got); err != nil {
				results <- result{err: err}
				return
			}
			results <- result{req: s.Request, payload: got, err: s.Reply(socks4.Granted, netip.AddrPort{})}
		})
		c, err := net.Dial("tcp", addr.String())
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(sockstest.Timeout)))
		_, err = c.Write(Join(encode(t, nameConnect), payload)) // one write, one segment
		require.NoError(t, err)

		var r result
		select {
		case r = <-results:
		case <-time.After(sockstest.Timeout):
			t.Fatal("server did not finish")
		}
		require.NoError(t, r.err)
		assert.Equal(t, nameConnect, r.req)
		assert.Equal(t, payload, r.payload)
		resp, err := socks4.ReadResponse(c)
		require.NoError(t, err)
		assert.Equal(t, socks4.Granted, resp.Reply)
	})
}

func TestClientHandshake(t *testing.T) {
	t.Run("Connect", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Expect(0x04, 0x01, 0x00, 0x50, 0x42, 0x66, 0x07, 0x63, 0x66, 0x72, 0x65, 0x64, 0x00),
			sockstest.Send(0, 90, 0, 0, 0, 0, 0, 0),
		)
		bound, err := socks4.ClientHandshake(t.Context(), conn, fredConnect)
		require.NoError(t, err)
		assert.Equal(t, netip.MustParseAddrPort("0.0.0.0:0"), bound)
		assert.NoError(t, wait())
	})

	t.Run("Connect4a", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Expect(Join([]byte{4, 1, 1, 0xbb, 0, 0, 0, 1}, []byte("fred\x00example.com\x00"))...),
			sockstest.Send(0, 90, 1, 0xbb, 93, 184, 216, 34),
		)
		bound, err := socks4.ClientHandshake(t.Context(), conn, nameConnect)
		require.NoError(t, err)
		assert.Equal(t, netip.MustParseAddrPort("93.184.216.34:443"), bound)
		assert.NoError(t, wait())
	})

	t.Run("Bind", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Expect(encode(t, fredBind)...),
			sockstest.Send(0, 90, 0xc0, 0x01, 192, 0, 2, 1),
			sockstest.Send(0, 90, 0x08, 0x48, 66, 102, 7, 99),
		)
		bound, err := socks4.ClientHandshake(t.Context(), conn, fredBind)
		require.NoError(t, err)
		assert.Equal(t, netip.MustParseAddrPort("192.0.2.1:49153"), bound)
		peer, err := socks4.AwaitBind(t.Context(), conn)
		require.NoError(t, err)
		assert.Equal(t, netip.MustParseAddrPort("66.102.7.99:2120"), peer)
		assert.NoError(t, wait())
	})

	t.Run("BindWrongHost", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Expect(encode(t, fredBind)...),
			sockstest.Send(0, 90, 0xc0, 0x01, 192, 0, 2, 1),
			sockstest.Send(0, 91, 0, 0, 0, 0, 0, 0),
		)
		_, err := socks4.ClientHandshake(t.Context(), conn, fredBind)
		require.NoError(t, err)
		peer, err := socks4.AwaitBind(t.Context(), conn)
		re, ok := errors.AsType[*socks4.ReplyError](err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, socks4.Rejected, re.Reply)
		assert.Zero(t, peer)
		assert.NoError(t, wait())
	})

	t.Run("DataAfterReply", func(t *testing.T) {
		// The server's first bytes arrive with the reply: they stay on the
		// connection.
		data := []byte("220 ftp.example.com ready\r\n")
		conn, wait := sockstest.Play(t,
			sockstest.Expect(encode(t, fredConnect)...),
			sockstest.Send(Join(replyOK, data)...),
		)
		_, err := socks4.ClientHandshake(t.Context(), conn, fredConnect)
		require.NoError(t, err)
		got := make([]byte, len(data))
		_, err = io.ReadFull(conn, got)
		require.NoError(t, err)
		assert.Equal(t, data, got)
		assert.NoError(t, wait())
	})

	t.Run("BadRequest", func(t *testing.T) {
		// A request that cannot be encoded sends nothing.
		for _, req := range []socks4.Request{
			{Command: socks4.CmdConnect, Port: 80, IP: mustIP("2001:db8::1")},
			{Command: socks4.CmdConnect, Port: 80, Host: repeat("h", socks4.MaxNameLen+1)},
			{Command: socks4.CmdConnect, Port: 80},
		} {
			mc := newMemConn(replyOK)
			bound, err := socks4.ClientHandshake(t.Context(), mc, req)
			assert.ErrorContains(t, err, "socks4: request: ")
			assert.Zero(t, bound)
			assert.Zero(t, mc.w.Len(), "bytes sent")
			assert.Equal(t, len(replyOK), mc.r.Len(), "bytes read")
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		pipe, wait := sockstest.Play(t,
			sockstest.Expect(encode(t, fredConnect)...),
			sockstest.Expect('!'), // and no reply
		)
		conn := notifying(pipe, 0)
		ctx := cancelOnRead(t, conn)
		bound, err := socks4.ClientHandshake(ctx, conn, fredConnect)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Zero(t, bound)
		_, err = conn.Write([]byte{'!'})
		require.NoError(t, err, "the deadline is cleared")
		assert.NoError(t, wait())
	})

	t.Run("CancelledBefore", func(t *testing.T) {
		conn, _ := sockstest.Play(t, sockstest.Drain())
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := socks4.ClientHandshake(ctx, conn, fredConnect)
		assert.ErrorIs(t, err, context.Canceled)
	})

	t.Run("Deadline", func(t *testing.T) {
		conn, _ := sockstest.Play(t,
			sockstest.Expect(encode(t, fredConnect)...),
			sockstest.Send(0, 90, 0), // part of a reply, then silence
			sockstest.Expect('!'),
		)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := socks4.ClientHandshake(ctx, conn, fredConnect)
		assertDeadline(t, err)
	})

	t.Run("AwaitBindCancel", func(t *testing.T) {
		pipe, wait := sockstest.Play(t,
			sockstest.Expect(encode(t, fredBind)...),
			sockstest.Send(0, 90, 0xc0, 0x01, 192, 0, 2, 1),
			sockstest.Expect('!'), // the expected host never comes
		)
		_, err := socks4.ClientHandshake(t.Context(), pipe, fredBind)
		require.NoError(t, err)
		conn := notifying(pipe, 0)
		ctx := cancelOnRead(t, conn)
		peer, err := socks4.AwaitBind(ctx, conn)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Zero(t, peer)
		_, err = conn.Write([]byte{'!'})
		require.NoError(t, err)
		assert.NoError(t, wait())
	})

	t.Run("AwaitBindDeadline", func(t *testing.T) {
		conn, _ := sockstest.Play(t, sockstest.Expect('!'))
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		_, err := socks4.AwaitBind(ctx, conn)
		assertDeadline(t, err)
	})
}

// TestClientHandshakeWithRogueServer: every field of the reply is checked.
func TestClientHandshakeWithRogueServer(t *testing.T) {
	cases := []struct {
		name   string
		script []sockstest.Step // after the request
		is     error
		reply  socks4.Reply // for a *ReplyError
		msg    string
	}{
		{"Rejected", []sockstest.Step{sockstest.Send(0, 91, 0, 0, 0, 0, 0, 0)}, nil, socks4.Rejected, "socks4: request rejected or failed"},
		{"IdentdUnreachable", []sockstest.Step{sockstest.Send(0, 92, 0, 80, 1, 2, 3, 4)}, nil, socks4.IdentdUnreachable, "identd"},
		{"IdentdMismatch", []sockstest.Step{sockstest.Send(0, 93, 0, 0, 0, 0, 0, 0)}, nil, socks4.IdentdMismatch, "different user ids"},
		{"VersionFour", []sockstest.Step{sockstest.Send(4, 90, 0, 0, 0, 0, 0, 0)}, socks4.ErrMalformed, 0, "reply version 4, want 0"},
		{"VersionFive", []sockstest.Step{sockstest.Send(5, 0, 0, 1, 0, 0, 0, 0)}, socks4.ErrMalformed, 0, "reply version 5"},
		{"CodeZero", []sockstest.Step{sockstest.Send(0, 0, 0, 0, 0, 0, 0, 0)}, socks4.ErrMalformed, 0, "reply code 0"},
		{"Code94", []sockstest.Step{sockstest.Send(0, 94, 0, 0, 0, 0, 0, 0)}, socks4.ErrMalformed, 0, "reply code 94"},
		{"Code255", []sockstest.Step{sockstest.Send(0, 255, 0, 0, 0, 0, 0, 0)}, socks4.ErrMalformed, 0, "reply code 255"},
		{"ShortReply", []sockstest.Step{sockstest.Send(0, 90, 0, 80, 1), sockstest.Close()}, io.ErrUnexpectedEOF, 0, "reading reply: unexpected EOF"},
		{"SOCKS5Answer", []sockstest.Step{sockstest.Send(5, 0), sockstest.Close()}, io.ErrUnexpectedEOF, 0, "unexpected EOF"},
		{"CloseAtOnce", []sockstest.Step{sockstest.Close()}, io.EOF, 0, "reading reply: EOF"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			script := append([]sockstest.Step{sockstest.Expect(encode(t, fredConnect)...)}, c.script...)
			conn, wait := sockstest.Play(t, script...)
			bound, err := socks4.ClientHandshake(t.Context(), conn, fredConnect)
			require.Error(t, err)
			assert.Zero(t, bound)
			assert.ErrorContains(t, err, c.msg)
			if c.is != nil {
				assert.ErrorIs(t, err, c.is)
				_, isReply := errors.AsType[*socks4.ReplyError](err)
				assert.False(t, isReply)
			} else {
				re, ok := errors.AsType[*socks4.ReplyError](err)
				require.True(t, ok, "%v", err)
				assert.Equal(t, c.reply, re.Reply)
				assert.Nil(t, re.Err)
				assert.Equal(t, c.reply, socks4.ReplyFor(err), "a proxy passes the code on")
			}
			assert.NoError(t, wait())
		})
	}
}

// TestClientServer runs both handshakes against each other.
func TestClientServer(t *testing.T) {
	for _, req := range []socks4.Request{fredConnect, fredBind, nameConnect} {
		t.Run(req.Command.String()+" "+req.Target(), func(t *testing.T) {
			client, server := net.Pipe()
			defer client.Close()
			defer server.Close()
			listening := netip.MustParseAddrPort("127.0.0.1:40000")
			connected := netip.MustParseAddrPort("127.0.0.2:50000")

			done := make(chan error, 1)
			go func() {
				done <- func() error {
					s, err := socks4.ServerHandshake(t.Context(), server)
					if err != nil {
						return err
					}
					if s.Request != req {
						return errors.New("server read a different request")
					}
					if err := s.Reply(socks4.Granted, listening); err != nil {
						return err
					}
					if s.Request.Command == socks4.CmdBind {
						return s.Reply(socks4.Granted, connected)
					}
					return nil
				}()
			}()

			bound, err := socks4.ClientHandshake(t.Context(), client, req)
			require.NoError(t, err)
			assert.Equal(t, listening, bound)
			if req.Command == socks4.CmdBind {
				peer, err := socks4.AwaitBind(t.Context(), client)
				require.NoError(t, err)
				assert.Equal(t, connected, peer)
			}
			select {
			case err := <-done:
				assert.NoError(t, err)
			case <-time.After(sockstest.Timeout):
				t.Fatal("server did not finish")
			}
		})
	}
}
