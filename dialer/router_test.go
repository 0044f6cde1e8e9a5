package dialer_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

var (
	_ proxy.Dialer        = (*dialer.Router)(nil)
	_ proxy.ContextDialer = (*dialer.Router)(nil)
)

// countingDialer dials directly and counts its dials.
type countingDialer struct {
	n atomic.Int64
	d net.Dialer
}

func (c *countingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c.n.Add(1)
	return c.d.DialContext(ctx, network, address)
}

func TestRouter(t *testing.T) {
	echo := sockstest.Echo(t)
	peerA := startProxy(t, listener.Config{})
	peerB := startProxy(t, listener.Config{})
	a := &dialer.Dialer{Proxy: peerA.addr}
	b := &dialer.Dialer{Proxy: peerB.addr}
	direct := &countingDialer{}
	r := &dialer.Router{
		Routes: []dialer.Route{
			{Dests: dialer.MustParseHosts("127.0.0.1:" + strconv.Itoa(echo.Port) + ",.direct.example")},
			{Dests: dialer.MustParseHosts("b.example,192.0.2.0/24"), Peers: []proxy.ContextDialer{b}},
		},
		Peers:  []proxy.ContextDialer{a},
		Direct: direct,
	}

	t.Run("a listed destination is dialed directly", func(t *testing.T) {
		c, err := r.Dial("tcp", echo.String())
		require.NoError(t, err)
		defer c.Close()
		echoCheck(t, c)
		assert.Equal(t, echo.String(), c.RemoteAddr().String())
		assert.EqualValues(t, 1, direct.n.Load())
	})

	// The route's peer gets the request: to check, dial a name the peer
	// cannot resolve and see which one answered.
	t.Run("a route's peer", func(t *testing.T) {
		_, err := r.Dial("tcp", "www.b.example:80")
		assertOpError(t, err, "tcp", peerB.addr, "www.b.example:80")
		peerB.logs.Wait(t, sockstest.Key("target", "www.b.example:80"))
	})
	t.Run("the default peers", func(t *testing.T) {
		_, err := r.Dial("tcp", "elsewhere.example:80")
		assertOpError(t, err, "tcp", peerA.addr, "elsewhere.example:80")
		peerA.logs.Wait(t, sockstest.Key("target", "elsewhere.example:80"))
	})

	t.Run("no peers at all: direct", func(t *testing.T) {
		var zero dialer.Router
		c, err := zero.Dial("tcp", echo.String())
		require.NoError(t, err)
		defer c.Close()
		echoCheck(t, c)
	})
}

// TestRouterFailover checks that peers that cannot be reached are passed
// over for the next, and that a peer that was reached decides.
func TestRouterFailover(t *testing.T) {
	echo := sockstest.Echo(t)
	down := &dialer.Dialer{Proxy: closedAddr(t), Scheme: dialer.SOCKS5}

	t.Run("first peer down: the second is used", func(t *testing.T) {
		second := startProxy(t, listener.Config{})
		r := &dialer.Router{Logger: quiet, Peers: []proxy.ContextDialer{down, &dialer.Dialer{Proxy: second.addr}}}
		c, err := r.Dial("tcp", echo.String())
		require.NoError(t, err)
		defer c.Close()
		echoCheck(t, c)
		c.Close()
		assert.Equal(t, echo.String(), second.record(t, c)["target"])
	})

	t.Run("first peer refuses: final, the second is never contacted", func(t *testing.T) {
		refusing := startProxy(t, listener.Config{Policy: func(context.Context, *listener.Request) error {
			return listener.Deny("not through this peer")
		}})
		second := startProxy(t, listener.Config{})
		secondDialer := &dialer.Dialer{Proxy: second.addr}
		r := &dialer.Router{Logger: quiet, Peers: []proxy.ContextDialer{&dialer.Dialer{Proxy: refusing.addr}, secondDialer}}
		c, err := r.Dial("tcp", echo.String())
		require.Error(t, err)
		assert.Nil(t, c)
		assertOpError(t, err, "tcp", refusing.addr, echo.String())
		var re *socks5.ReplyError
		require.ErrorAs(t, err, &re)
		assert.Equal(t, socks5.NotAllowed, re.Reply)

		// A connection the router had made to the second peer would have
		// been accepted before this one, which the test makes itself.
		c, err = secondDialer.Dial("tcp", echo.String())
		require.NoError(t, err)
		c.Close()
		assert.EqualValues(t, 1, second.accepts.Load(), "the second peer saw only the test's own connection")
	})

	t.Run("a peer that fails mid-handshake decides too", func(t *testing.T) {
		garbage := startFakeProxy(t, []byte("garbage!"))
		counter := &countingDialer{}
		r := &dialer.Router{Logger: quiet, Peers: []proxy.ContextDialer{
			&dialer.Dialer{Proxy: garbage.addr},
			&dialer.Dialer{Proxy: "127.0.0.1:1", Forward: counter},
		}}
		_, err := r.Dial("tcp", echo.String())
		assert.ErrorIs(t, err, socks5.ErrMalformed)
		assert.Zero(t, counter.n.Load())
	})

	t.Run("a chain whose first hop is down is unreachable", func(t *testing.T) {
		second := startProxy(t, listener.Config{})
		r := &dialer.Router{Logger: quiet, Peers: []proxy.ContextDialer{
			dialer.Chain(down, &dialer.Dialer{Proxy: second.addr}),
			&dialer.Dialer{Proxy: second.addr},
		}}
		c, err := r.Dial("tcp", echo.String())
		require.NoError(t, err)
		defer c.Close()
		echoCheck(t, c)
	})

	t.Run("all peers down", func(t *testing.T) {
		down2 := &dialer.Dialer{Proxy: closedAddr(t), Scheme: dialer.SOCKS4}
		r := &dialer.Router{Logger: quiet, Peers: []proxy.ContextDialer{down, down2}}
		_, err := r.Dial("tcp", echo.String())
		require.Error(t, err)
		oe, ok := errors.AsType[*net.OpError](err)
		require.True(t, ok)
		assert.Equal(t, "connect", oe.Op)
		assert.Equal(t, echo.String(), oe.Addr.String())
		assert.ErrorIs(t, err, errConnRefused)
		assert.Contains(t, err.Error(), down.Proxy)
		assert.Contains(t, err.Error(), down2.Proxy)
		assert.NotContains(t, err.Error(), "\n", "one line")

		// A router whose peers are all down is itself unreachable, for
		// a router that has it as a peer.
		second := startProxy(t, listener.Config{})
		outer := &dialer.Router{Logger: quiet, Peers: []proxy.ContextDialer{r, &dialer.Dialer{Proxy: second.addr}}}
		c, err := outer.Dial("tcp", echo.String())
		require.NoError(t, err)
		c.Close()
	})

	t.Run("an ended context stops the failover", func(t *testing.T) {
		counter := &countingDialer{}
		bd := &blockingDialer{called: make(chan struct{}, 1)}
		r := &dialer.Router{Logger: quiet, Peers: []proxy.ContextDialer{
			&dialer.Dialer{Proxy: "127.0.0.1:1", Forward: bd},
			&dialer.Dialer{Proxy: "127.0.0.1:1", Forward: counter},
		}}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		res := make(chan error, 1)
		go func() {
			_, err := r.DialContext(ctx, "tcp", echo.String())
			res <- err
		}()
		await(t, bd.called, "the first peer's dial")
		cancel()
		assert.ErrorIs(t, await(t, res, "the router's dial"), context.Canceled)
		assert.Zero(t, counter.n.Load())
	})
}
