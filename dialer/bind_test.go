package dialer_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// scripted returns a Dialer whose proxy is a scripted peer, at the
// address proxyAddr (which the peer does not really have).
func scripted(t *testing.T, scheme dialer.Scheme, proxyAddr string, script ...sockstest.Step) (*dialer.Dialer, func() error) {
	t.Helper()
	conn, wait := sockstest.Play(t, script...)
	return &dialer.Dialer{Proxy: proxyAddr, Scheme: scheme, Forward: &pipeDialer{conn: conn}}, wait
}

func listen(t *testing.T, d *dialer.Dialer, address string) *dialer.BindListener {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	l, err := d.Listen(ctx, "tcp", address)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close() })
	return l.(*dialer.BindListener)
}

func TestListen(t *testing.T) {
	greet := sockstest.Join([]byte{5, 1, 0})
	t.Run("SOCKS5: the two replies", func(t *testing.T) {
		d, wait := scripted(t, dialer.SOCKS5H, "127.0.0.9:1080",
			sockstest.Expect(greet...), sockstest.Send(5, 0),
			sockstest.Expect(5, 2, 0, 3, 9, 'p', 'e', 'e', 'r', '.', 't', 'e', 's', 't', 0, 21),
			sockstest.Send(5, 0, 0, 1, 192, 0, 2, 1, 0x12, 0x34),
			sockstest.Send(5, 0, 0, 1, 198, 51, 100, 7, 0x10, 0xe1),
			sockstest.Send([]byte("from the peer")...),
			sockstest.Expect([]byte("to the peer")...),
			sockstest.Send([]byte("bye")...),
			sockstest.Close())
		l := listen(t, d, "peer.test:21")
		assert.Equal(t, "192.0.2.1:4660", l.Addr().String())
		_, isTCP := l.Addr().(*net.TCPAddr)
		assert.True(t, isTCP)
		c, err := l.Accept()
		require.NoError(t, err)
		defer c.Close()
		assert.Equal(t, "198.51.100.7:4321", c.RemoteAddr().String())
		got := make([]byte, len("from the peer"))
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
		assert.Equal(t, "from the peer", string(got))
		_, err = c.Write([]byte("to the peer"))
		require.NoError(t, err)

		_, err = l.Accept()
		assert.Error(t, err, "a second Accept")
		assertOp(t, err, "accept")
		require.NoError(t, l.Close())
		_, err = io.ReadFull(c, got[:3])
		require.NoError(t, err, "Close after Accept leaves the peer's connection open")
		assert.Equal(t, "bye", string(got[:3]))
		require.NoError(t, wait())
	})
	t.Run("SOCKS4: an unspecified address is the proxy's", func(t *testing.T) {
		d, wait := scripted(t, dialer.SOCKS4, "127.0.0.9:1080",
			sockstest.Expect(4, 2, 0, 21, 192, 0, 2, 9, 0),
			sockstest.Send(0, 90, 0x12, 0x34, 0, 0, 0, 0),
			sockstest.Send(0, 90, 0x10, 0xe1, 198, 51, 100, 7),
			sockstest.Close())
		l := listen(t, d, "192.0.2.9:21")
		assert.Equal(t, "127.0.0.9:4660", l.Addr().String())
		c, err := l.Accept()
		require.NoError(t, err)
		c.Close()
		assert.Equal(t, "198.51.100.7:4321", c.RemoteAddr().String())
		require.NoError(t, wait())
	})
	t.Run("the second reply refuses", func(t *testing.T) {
		d, _ := scripted(t, dialer.SOCKS5, "127.0.0.9:1080",
			sockstest.Expect(greet...), sockstest.Send(5, 0),
			sockstest.Expect(5, 2, 0, 1, 192, 0, 2, 9, 0, 21),
			sockstest.Send(5, 0, 0, 1, 192, 0, 2, 1, 0x12, 0x34),
			sockstest.Send(5, 2, 0, 1, 0, 0, 0, 0, 0, 0),
			sockstest.Drain())
		l := listen(t, d, "192.0.2.9:21")
		_, err := l.Accept()
		re, ok := errors.AsType[*socks5.ReplyError](err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, socks5.NotAllowed, re.Reply)
		assertOp(t, err, "accept")
		_, err = l.Accept()
		assert.ErrorIs(t, err, net.ErrClosed, "the listener is done")
	})
	t.Run("the first reply refuses", func(t *testing.T) {
		d, _ := scripted(t, dialer.SOCKS5, "127.0.0.9:1080",
			sockstest.Expect(greet...), sockstest.Send(5, 0),
			sockstest.Expect(5, 2, 0, 1, 192, 0, 2, 9, 0, 21),
			sockstest.Send(5, 7, 0, 1, 0, 0, 0, 0, 0, 0),
			sockstest.Drain())
		_, err := d.Listen(context.Background(), "tcp", "192.0.2.9:21")
		assertOp(t, err, "bind")
		re, ok := errors.AsType[*socks5.ReplyError](err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, socks5.CommandNotSupported, re.Reply)
	})
	t.Run("Close ends an Accept under way", func(t *testing.T) {
		d, _ := scripted(t, dialer.SOCKS5, "127.0.0.9:1080",
			sockstest.Expect(greet...), sockstest.Send(5, 0),
			sockstest.Expect(5, 2, 0, 1, 192, 0, 2, 9, 0, 21),
			sockstest.Send(5, 0, 0, 1, 192, 0, 2, 1, 0x12, 0x34),
			sockstest.Drain())
		l := listen(t, d, "192.0.2.9:21")
		res := make(chan error, 1)
		go func() {
			_, err := l.Accept()
			res <- err
		}()
		require.NoError(t, l.Close())
		assert.ErrorIs(t, await(t, res, "Accept to return"), net.ErrClosed)
	})
	t.Run("a deadline bounds the wait, and Accept may wait again", func(t *testing.T) {
		peerReady := make(chan struct{})
		proxyAddr := sockstest.Serve(t, func(c net.Conn) {
			c.SetDeadline(time.Now().Add(wait))
			buf := make([]byte, 10)
			if _, err := io.ReadFull(c, buf[:3]); err != nil {
				return
			}
			c.Write([]byte{5, 0})
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			c.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0x12, 0x34})
			<-peerReady
			c.Write([]byte{5, 0, 0, 1, 127, 0, 0, 2, 0x12, 0x35})
			io.Copy(io.Discard, c)
		}).String()
		l := listen(t, &dialer.Dialer{Proxy: proxyAddr, Scheme: dialer.SOCKS5}, "127.0.0.2:0")
		require.NoError(t, l.SetDeadline(time.Now().Add(20*time.Millisecond)))
		_, err := l.Accept()
		assert.True(t, deadline.IsTimeout(err), "%v", err)
		require.NoError(t, l.SetDeadline(time.Now().Add(wait)))
		close(peerReady)
		c, err := l.Accept()
		require.NoError(t, err)
		defer c.Close()
		assert.Equal(t, "127.0.0.2:4661", c.RemoteAddr().String())
		require.NoError(t, c.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		_, err = c.Read(make([]byte, 1))
		assert.True(t, deadline.IsTimeout(err), "the connection's own deadline works: %v", err)
	})
	t.Run("errors before the proxy is contacted", func(t *testing.T) {
		d := &dialer.Dialer{Proxy: "127.0.0.9:1080", Forward: &blockingDialer{called: make(chan struct{}, 1)}}
		_, err := d.Listen(context.Background(), "udp", "192.0.2.1:21")
		assertOp(t, err, "bind")
		_, err = d.Listen(context.Background(), "tcp", "no port")
		assertOp(t, err, "bind")
		d.Scheme = dialer.SOCKS4
		_, err = d.Listen(context.Background(), "tcp", "[::1]:21")
		assert.ErrorIs(t, err, dialer.ErrIPv4Only)
	})
}

func TestResolve(t *testing.T) {
	greet := []byte{5, 1, 0}
	t.Run("a name", func(t *testing.T) {
		d, wait := scripted(t, dialer.SOCKS5H, "127.0.0.9:1080",
			sockstest.Expect(greet...), sockstest.Send(5, 0),
			sockstest.Expect(5, 0xf0, 0, 3, 11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0, 0),
			sockstest.Send(5, 0, 0, 1, 93, 184, 215, 14, 0, 0),
			sockstest.Drain())
		ip, err := d.Resolve(context.Background(), "example.com")
		require.NoError(t, err)
		assert.Equal(t, netip.MustParseAddr("93.184.215.14"), ip)
		require.NoError(t, wait())
	})
	t.Run("an address", func(t *testing.T) {
		d, wait := scripted(t, dialer.SOCKS5, "127.0.0.9:1080",
			sockstest.Expect(greet...), sockstest.Send(5, 0),
			sockstest.Expect(5, 0xf1, 0, 1, 192, 0, 2, 1, 0, 0),
			sockstest.Send(5, 0, 0, 3, 8, 'h', 'o', 's', 't', '.', 't', 'l', 'd', 0, 0),
			sockstest.Drain())
		name, err := d.ResolvePTR(context.Background(), netip.MustParseAddr("::ffff:192.0.2.1"))
		require.NoError(t, err)
		assert.Equal(t, "host.tld", name)
		require.NoError(t, wait())
	})
	t.Run("an IP address is not asked about", func(t *testing.T) {
		d := &dialer.Dialer{Proxy: "127.0.0.9:1080", Forward: &blockingDialer{called: make(chan struct{}, 1)}}
		ip, err := d.Resolve(context.Background(), "::ffff:10.0.0.1")
		require.NoError(t, err)
		assert.Equal(t, netip.MustParseAddr("10.0.0.1"), ip)
	})
	for _, c := range []struct {
		name   string
		reply  []byte
		ptr    bool
		expect string
	}{
		{"a name for RESOLVE", []byte{5, 0, 0, 3, 1, 'x', 0, 0}, false, "without an IP address"},
		{"an address for RESOLVE_PTR", []byte{5, 0, 0, 1, 1, 2, 3, 4, 0, 0}, true, "without a name"},
		{"refused", []byte{5, 4, 0, 1, 0, 0, 0, 0, 0, 0}, false, "host unreachable"},
		{"not supported", []byte{5, 7, 0, 1, 0, 0, 0, 0, 0, 0}, true, "command not supported"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := []byte{5, 0xf0, 0, 3, 1, 'a', 0, 0}
			if c.ptr {
				req = []byte{5, 0xf1, 0, 1, 192, 0, 2, 1, 0, 0}
			}
			d, _ := scripted(t, dialer.SOCKS5H, "127.0.0.9:1080",
				sockstest.Expect(greet...), sockstest.Send(5, 0), sockstest.Expect(req...), sockstest.Send(c.reply...), sockstest.Drain())
			var err error
			if c.ptr {
				_, err = d.ResolvePTR(context.Background(), netip.MustParseAddr("192.0.2.1"))
				assertOp(t, err, "resolve ptr")
			} else {
				_, err = d.Resolve(context.Background(), "a")
				assertOp(t, err, "resolve")
			}
			assert.ErrorContains(t, err, c.expect)
		})
	}
	_, err := (&dialer.Dialer{Proxy: "127.0.0.9:1080"}).ResolvePTR(context.Background(), netip.Addr{})
	assert.Error(t, err, "no address")
}
