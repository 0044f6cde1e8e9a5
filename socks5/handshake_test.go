package socks5_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// Both sides of the package, over one connection.
func TestHandshakeBothSides(t *testing.T) {
	creds := socks5.NewCredentials(map[string]string{"alice": "secret"})
	tests := []struct {
		name     string
		client   []socks5.ClientMethod
		server   []socks5.ServerMethod
		req      socks5.Request
		method   socks5.AuthMethod
		user     string
		wantFail error
	}{
		{
			name: "defaults",
			req:  connectExample,
		},
		{
			name:   "username/password",
			client: []socks5.ClientMethod{socks5.UserPassClient{Username: "alice", Password: "secret"}},
			server: []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}},
			req:    socks5.Request{Command: socks5.CmdConnect, Addr: ipv4("192.0.2.1:443")},
			method: socks5.AuthUserPass, user: "alice",
		},
		{
			name:     "wrong password",
			client:   []socks5.ClientMethod{socks5.UserPassClient{Username: "alice", Password: "guess"}},
			server:   []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}},
			req:      connectExample,
			wantFail: socks5.ErrAuthFailed,
		},
		{
			name:   "private token",
			client: []socks5.ClientMethod{socks5.NoAuth{}, tokenClient{token: "tok"}},
			server: []socks5.ServerMethod{tokenServer{tokens: map[string]string{"tok": "dave"}}, socks5.NoAuth{}},
			req:    socks5.Request{Command: socks5.CmdUDPAssociate, Addr: ipv4("0.0.0.0:0")},
			method: methodToken, user: "dave",
		},
		{
			name:   "private wrapper",
			client: []socks5.ClientMethod{xorClient{key: 0xa5}},
			server: []socks5.ServerMethod{xorServer{}},
			req:    socks5.Request{Command: socks5.CmdResolve, Addr: name("torproject.org", 0)},
			method: methodXOR, user: "xor",
		},
		{
			name:     "nothing in common",
			client:   []socks5.ClientMethod{socks5.NoAuth{}},
			server:   []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}},
			req:      connectExample,
			wantFail: socks5.ErrNoAcceptableMethod,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clientConn, serverConn := net.Pipe()
			defer clientConn.Close()
			defer serverConn.Close()

			type clientResult struct {
				bound  socks5.Addr
				stream io.ReadWriter
				err    error
			}
			done := make(chan clientResult, 1)
			go func() {
				bound, stream, err := socks5.ClientHandshake(testContext(t), clientConn, tt.req, tt.client...)
				if err == nil {
					_, err = stream.Write([]byte("ping"))
				}
				done <- clientResult{bound, stream, err}
			}()

			s, err := socks5.ServerHandshake(testContext(t), serverConn, tt.server)
			if tt.wantFail != nil {
				assert.ErrorIs(t, err, tt.wantFail)
				serverConn.Close() // what a server does after a failed handshake
				r := <-done
				assert.ErrorIs(t, r.err, tt.wantFail, "both sides tell the same failure")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.req, s.Request)
			assert.Equal(t, tt.method, s.Method)
			assert.Equal(t, tt.user, s.User)
			require.NoError(t, s.Reply(socks5.Succeeded, boundLocal))

			ping := make([]byte, 4)
			_, err = io.ReadFull(s.Stream, ping)
			require.NoError(t, err)
			assert.Equal(t, "ping", string(ping), "data after the handshake arrives through the session's stream")

			r := <-done
			require.NoError(t, r.err)
			assert.Equal(t, boundLocal, r.bound)
		})
	}
}

// What a client sends right behind its request (optimistic data: greeting,
// request and payload in one write) is left on the connection for whoever
// reads next.
func TestServerHandshakeOptimisticData(t *testing.T) {
	payload := []byte("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
	blob := sockstest.Join([]byte{0x05, 0x01, 0x00}, encode(t, connectExample), payload)

	t.Run("net.Pipe", func(t *testing.T) {
		client, server := net.Pipe()
		defer client.Close()
		defer server.Close()
		require.NoError(t, client.SetDeadline(time.Now().Add(sockstest.Timeout)))
		require.NoError(t, server.SetDeadline(time.Now().Add(sockstest.Timeout)))

		// The one write returns when the server has read all of it; the
		// client reads the answers meanwhile, as a TCP stack's buffers
		// would let it.
		wrote := make(chan error, 1)
		go func() {
			n, err := client.Write(blob)
			if err == nil && n != len(blob) {
				err = io.ErrShortWrite
			}
			wrote <- err
		}()
		answers := make(chan []byte, 1)
		go func() {
			b := make([]byte, 2+10)
			n, _ := io.ReadFull(client, b)
			answers <- b[:n]
		}()

		s, err := socks5.ServerHandshake(testContext(t), server, nil)
		require.NoError(t, err)
		assert.Equal(t, connectExample, s.Request)

		got := make([]byte, len(payload))
		_, err = io.ReadFull(server, got)
		require.NoError(t, err)
		assert.Equal(t, payload, got, "the payload is intact on the connection")
		require.NoError(t, <-wrote)

		require.NoError(t, s.Reply(socks5.Succeeded, boundLocal))
		assert.Equal(t, sockstest.Join([]byte{0x05, 0x00}, encode(t, socks5.Response{Addr: boundLocal})), <-answers)
	})

	t.Run("loopback TCP", func(t *testing.T) {
		type result struct {
			req     socks5.Request
			payload []byte
			err     error
		}
		results := make(chan result, 1)
		addr := sockstest.Serve(t, func(c net.Conn) {
			s, err := socks5.ServerHandshake(testContext(t), c, nil)
			if err != nil {
				results <- result{err: err}
				return
			}
			got := make([]byte, len(payload))
			c.SetReadDeadline(time.Now().Add(sockstest.Timeout))
			_, err = io.ReadFull(c, got)
			if err == nil {
				err = s.Reply(socks5.Succeeded, boundLocal)
			}
			results <- result{s.Request, got, err}
		})

		c, err := net.DialTimeout("tcp", addr.String(), sockstest.Timeout)
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(sockstest.Timeout)))
		n, err := c.Write(blob)
		require.NoError(t, err)
		require.Equal(t, len(blob), n, "one write")

		var r result
		select {
		case r = <-results:
		case <-time.After(sockstest.Timeout):
			require.FailNow(t, "the server did not finish")
		}
		require.NoError(t, r.err)
		assert.Equal(t, connectExample, r.req)
		assert.Equal(t, payload, r.payload, "the payload is intact on the connection")

		sel, err := socks5.ReadMethodSelection(c)
		require.NoError(t, err)
		assert.Equal(t, socks5.AuthNone, sel.Method)
		resp, err := socks5.ReadResponse(c)
		require.NoError(t, err)
		assert.Equal(t, socks5.Response{Addr: boundLocal}, resp)
	})
}

// What a server sends right behind its reply stays on the connection for
// the client's next reader.
func TestClientHandshakeOptimisticData(t *testing.T) {
	banner := []byte("220 smtp.example.com ESMTP\r\n")
	reply := encode(t, socks5.Response{Reply: socks5.Succeeded, Addr: boundLocal})

	t.Run("net.Pipe", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Expect(0x05, 0x01, 0x00),
			sockstest.Send(0x05, 0x00),
			sockstest.Expect(encode(t, connectExample)...),
			sockstest.Send(sockstest.Join(reply, banner)...),
		)
		bound, stream, err := socks5.ClientHandshake(testContext(t), conn, connectExample)
		require.NoError(t, err)
		assert.Equal(t, boundLocal, bound)
		got := make([]byte, len(banner))
		_, err = io.ReadFull(stream, got)
		require.NoError(t, err)
		assert.Equal(t, banner, got)
		require.NoError(t, wait())
	})

	t.Run("loopback TCP", func(t *testing.T) {
		served := make(chan error, 1)
		addr := sockstest.Serve(t, func(c net.Conn) {
			c.SetDeadline(time.Now().Add(sockstest.Timeout))
			served <- func() error {
				if _, err := socks5.ReadGreeting(c); err != nil {
					return err
				}
				if _, err := c.Write([]byte{0x05, 0x00}); err != nil {
					return err
				}
				if _, err := socks5.ReadRequest(c); err != nil {
					return err
				}
				_, err := c.Write(sockstest.Join(reply, banner)) // one write
				return err
			}()
			io.Copy(io.Discard, c)
		})

		c, err := net.DialTimeout("tcp", addr.String(), sockstest.Timeout)
		require.NoError(t, err)
		defer c.Close()
		bound, stream, err := socks5.ClientHandshake(testContext(t), c, connectExample)
		require.NoError(t, err)
		assert.Equal(t, boundLocal, bound)
		require.NoError(t, <-served)

		require.NoError(t, c.SetReadDeadline(time.Now().Add(sockstest.Timeout)))
		got := make([]byte, len(banner))
		_, err = io.ReadFull(stream, got)
		require.NoError(t, err)
		assert.Equal(t, banner, got)
	})
}

// A context that cannot end leaves a connection without SetDeadline alone,
// and one that has ended is reported at the end of the handshake.
func TestHandshakeWithoutDeadline(t *testing.T) {
	d := newDuplex(greetingWire(0x00), encode(t, connectExample))
	s, err := socks5.ServerHandshake(context.Background(), d, nil)
	require.NoError(t, err)
	assert.Equal(t, connectExample, s.Request)

	// A context that ended is an error, and an error comes with no result.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	d = newDuplex(greetingWire(0x00), encode(t, connectExample))
	s, err = socks5.ServerHandshake(ctx, d, nil)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Nil(t, s)

	reply := encode(t, socks5.Response{Addr: boundLocal})
	d = newDuplex([]byte{0x05, 0x00}, reply, reply)
	bound, stream, err := socks5.ClientHandshake(ctx, d, connectExample)
	assert.ErrorIs(t, err, context.Canceled)
	assert.True(t, bound.IsZero())
	assert.Nil(t, stream)

	peer, err := socks5.AwaitBind(ctx, d)
	assert.ErrorIs(t, err, context.Canceled)
	assert.True(t, peer.IsZero())
}
