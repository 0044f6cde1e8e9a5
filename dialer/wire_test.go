package dialer_test

import (
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks4"
	"github.com/sockstap/sockstap/socks5"
)

// TestWire checks the bytes each scheme sends against scripted proxies,
// and that a reply is read to its last byte and no further.
func TestWire(t *testing.T) {
	type (
		S = sockstest.Step
	)
	var (
		expect = sockstest.Expect
		send   = sockstest.Send
		join   = sockstest.Join
	)
	name := []byte("example.com")
	reply5 := []byte{5, 0, 0, 1, 127, 0, 0, 1, 0x1f, 0x90}
	reply4 := []byte{0, 90, 0, 0, 0, 0, 0, 0}
	tests := []struct {
		name   string
		d      dialer.Dialer
		target string
		script []S
	}{
		{"socks4 with user id", dialer.Dialer{Scheme: dialer.SOCKS4, Username: "bob"}, "192.0.2.1:80", []S{
			expect(4, 1, 0, 80, 192, 0, 2, 1, 'b', 'o', 'b', 0),
			send(reply4...),
		}},
		{"socks4a", dialer.Dialer{Scheme: dialer.SOCKS4A}, "example.com:443", []S{
			expect(join([]byte{4, 1, 1, 0xbb, 0, 0, 0, 1, 0}, name, []byte{0})...),
			send(reply4...),
		}},
		{"socks4a sends an IP address as SOCKS4", dialer.Dialer{Scheme: dialer.SOCKS4A}, "192.0.2.1:80", []S{
			expect(4, 1, 0, 80, 192, 0, 2, 1, 0),
			send(reply4...),
		}},
		{"socks5h", dialer.Dialer{Scheme: dialer.SOCKS5H}, "example.com:443", []S{
			expect(5, 1, 0),
			send(5, 0),
			expect(join([]byte{5, 1, 0, 3, byte(len(name))}, name, []byte{1, 0xbb})...),
			send(reply5...),
		}},
		{"socks5 with an IPv6 address", dialer.Dialer{Scheme: dialer.SOCKS5}, "[2001:db8::1]:80", []S{
			expect(5, 1, 0),
			send(5, 0),
			expect(5, 1, 0, 4, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 80),
			send(reply5...),
		}},
		{"socks5 with a password", dialer.Dialer{Scheme: dialer.SOCKS5, Username: "alice", Password: "secret"}, "192.0.2.1:80", []S{
			expect(5, 2, 2, 0),
			send(5, 2),
			expect(join([]byte{1, 5}, []byte("alice"), []byte{6}, []byte("secret"))...),
			send(1, 0),
			expect(5, 1, 0, 1, 192, 0, 2, 1, 0, 80),
			send(reply5...),
		}},
		{"socks5 with a password the server does not ask for", dialer.Dialer{Scheme: dialer.SOCKS5H, Username: "alice", Password: "secret"}, "192.0.2.1:80", []S{
			expect(5, 2, 2, 0),
			send(5, 0),
			expect(5, 1, 0, 1, 192, 0, 2, 1, 0, 80),
			send(reply5...),
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The proxy sends data right behind its reply: it stays on
			// the connection for the caller.
			script := append(tt.script, send('h', 'i'), sockstest.Drain())
			conn, wait := sockstest.Play(t, script...)
			d := tt.d
			d.Proxy = "proxy.sockstap.test:1080"
			d.Forward = &pipeDialer{conn: conn}
			c, err := d.DialContext(context.Background(), "tcp", tt.target)
			require.NoError(t, err)
			assert.Same(t, conn, c, "the connection to the proxy itself")
			got := make([]byte, 2)
			_, err = io.ReadFull(c, got)
			require.NoError(t, err)
			assert.Equal(t, "hi", string(got))
			require.NoError(t, c.Close())
			assert.NoError(t, wait())
		})
	}
}

// TestRogueProxy checks that a proxy breaking the protocol is an error,
// and that the connection is closed behind it.
func TestRogueProxy(t *testing.T) {
	var (
		expect = sockstest.Expect
		send   = sockstest.Send
	)
	tests := []struct {
		name   string
		scheme dialer.Scheme
		script []sockstest.Step
		check  func(t *testing.T, err error)
	}{
		{"socks5: HTTP answer", dialer.SOCKS5H, []sockstest.Step{
			// Over a synchronous pipe, only what the dialer reads can be sent.
			expect(5, 1, 0), send('H', 'T'),
		}, func(t *testing.T, err error) { assert.ErrorIs(t, err, socks5.ErrMalformed) }},
		{"socks5: method not offered", dialer.SOCKS5H, []sockstest.Step{
			expect(5, 1, 0), send(5, 2),
		}, func(t *testing.T, err error) { assert.ErrorIs(t, err, socks5.ErrMalformed) }},
		{"socks5: closed after the greeting", dialer.SOCKS5H, []sockstest.Step{
			expect(5, 1, 0), sockstest.Close(),
		}, func(t *testing.T, err error) { assert.ErrorIs(t, err, io.EOF) }},
		{"socks5: short reply", dialer.SOCKS5H, []sockstest.Step{
			expect(5, 1, 0), send(5, 0), expect(5, 1, 0, 1, 192, 0, 2, 1, 0, 80), send(5, 0, 0, 1, 0), sockstest.Close(),
		}, func(t *testing.T, err error) { assert.ErrorIs(t, err, io.ErrUnexpectedEOF) }},
		{"socks4: unknown reply code", dialer.SOCKS4, []sockstest.Step{
			expect(4, 1, 0, 80, 192, 0, 2, 1, 0), send(0, 42, 0, 0, 0, 0, 0, 0),
		}, func(t *testing.T, err error) { assert.ErrorIs(t, err, socks4.ErrMalformed) }},
		{"socks4: SOCKS5 answer", dialer.SOCKS4, []sockstest.Step{
			expect(4, 1, 0, 80, 192, 0, 2, 1, 0), send(5, 0, 0, 1, 0, 0, 0, 0),
		}, func(t *testing.T, err error) { assert.ErrorIs(t, err, socks4.ErrMalformed) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, wait := sockstest.Play(t, append(tt.script, sockstest.Drain())...)
			d := &dialer.Dialer{Proxy: "127.0.0.1:1080", Scheme: tt.scheme, Forward: &pipeDialer{conn: conn}}
			c, err := d.DialContext(context.Background(), "tcp", "192.0.2.1:80")
			require.Error(t, err)
			assert.Nil(t, c)
			assertOpError(t, err, "tcp", "127.0.0.1:1080", "192.0.2.1:80")
			tt.check(t, err)
			// The peer's Drain ends only when the dialer has closed its end.
			assert.NoError(t, wait())
			_, err = conn.Write([]byte{0})
			assert.ErrorIs(t, err, io.ErrClosedPipe, "the dialer closed the connection")
		})
	}
}

// TestDialerString shows a dialer as a proxy URL without its password.
func TestDialerString(t *testing.T) {
	tests := []struct {
		d    dialer.Dialer
		want string
	}{
		{dialer.Dialer{Proxy: "127.0.0.1:1080"}, "socks5h://127.0.0.1:1080"},
		{dialer.Dialer{Proxy: "[::1]:1080", Scheme: dialer.SOCKS4}, "socks4://[::1]:1080"},
		{dialer.Dialer{Proxy: "p.example:9050", Scheme: dialer.SOCKS5, Username: "alice", Password: "secret"}, "socks5://alice@p.example:9050"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.d.String())
			assert.NotContains(t, tt.d.String(), "secret")
		})
	}
}
