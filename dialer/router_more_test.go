package dialer_test

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

// TestRouterHangingPeer checks the failover from a peer that accepts and
// never answers: after PeerTimeout the next peer serves, the failover is
// logged, and the next dials go to the good peer first, without waiting
// for the hanging one again.
func TestRouterHangingPeer(t *testing.T) {
	echo := sockstest.Echo(t)
	hang := startFakeProxy(t, nil)
	good := startProxy(t, listener.Config{})
	logger, logs := sockstest.NewLogger()
	hanging := &dialer.Dialer{Proxy: hang.addr}
	r := &dialer.Router{
		Peers:       []proxy.ContextDialer{hanging, &dialer.Dialer{Proxy: good.addr}},
		PeerTimeout: 50 * time.Millisecond,
		RetryAfter:  time.Hour,
		Logger:      logger,
	}
	c, err := r.Dial("tcp", echo.String())
	require.NoError(t, err)
	echoCheck(t, c)
	c.Close()
	await(t, hang.got, "the hanging peer's request")
	rec := logs.Wait(t, sockstest.Key("msg", "peer unreachable, trying the next"))
	assert.Equal(t, hanging.String(), rec["peer"])
	assert.Equal(t, "connect", rec["cmd"])
	assert.Equal(t, echo.String(), rec["target"])
	assert.Contains(t, rec["error"], "did not answer within 50ms")
	assert.Equal(t, "1h0m0s", rec["retry_after"])
	await(t, hang.closed, "the hanging peer's connection to close")

	for range 3 {
		start := time.Now()
		c, err := r.Dial("tcp", echo.String())
		require.NoError(t, err)
		echoCheck(t, c)
		c.Close()
		assert.Less(t, time.Since(start), wait/2)
	}
	select {
	case <-hang.got:
		t.Error("the peer that is down was asked again")
	default:
	}
	assert.Len(t, logs.All(), 1, "one failover")
}

// TestRouterBackoff checks that a peer down again waits twice as long, and
// that a success forgets its failures.
func TestRouterBackoff(t *testing.T) {
	echo := sockstest.Echo(t)
	logger, logs := sockstest.NewLogger()
	down := &dialer.Dialer{Proxy: closedAddr(t)}
	second := startProxy(t, listener.Config{})
	r := &dialer.Router{
		Peers:      []proxy.ContextDialer{down, &dialer.Dialer{Proxy: second.addr}},
		RetryAfter: time.Nanosecond, // down, but tried first again at once
		Logger:     logger,
	}
	for range 3 {
		c, err := r.Dial("tcp", echo.String())
		require.NoError(t, err)
		c.Close()
	}
	recs := logs.WaitN(t, 3, sockstest.Key("msg", "peer unreachable, trying the next"))
	assert.Equal(t, []string{"1ns", "2ns", "4ns"}, []string{recs[0]["retry_after"], recs[1]["retry_after"], recs[2]["retry_after"]})
}

// TestRouterTimeoutIsNotARefusal checks that a peer that refuses the
// target stays final even when it answers slowly, and that a lone peer's
// timeout is its error.
func TestRouterTimeoutIsNotARefusal(t *testing.T) {
	echo := sockstest.Echo(t)
	refusing := startFakeProxy(t, []byte{5, 0, 5, 2, 0, 1, 0, 0, 0, 0, 0, 0})
	counter := &countingDialer{}
	r := &dialer.Router{Logger: quiet, Peers: []proxy.ContextDialer{
		&dialer.Dialer{Proxy: refusing.addr},
		&dialer.Dialer{Proxy: "127.0.0.1:1", Forward: counter},
	}, PeerTimeout: wait}
	_, err := r.Dial("tcp", echo.String())
	var re *socks5.ReplyError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, socks5.NotAllowed, re.Reply)
	assert.Zero(t, counter.n.Load())

	hang := startFakeProxy(t, nil)
	lone := &dialer.Router{Logger: quiet, Peers: []proxy.ContextDialer{&dialer.Dialer{Proxy: hang.addr}}, PeerTimeout: 20 * time.Millisecond}
	_, err = lone.Dial("tcp", echo.String())
	assert.ErrorContains(t, err, "did not answer within 20ms")
	assert.True(t, deadline.IsTimeout(err), "%v", err)
}

// TestRouterCommands checks that BIND, UDP ASSOCIATE and RESOLVE take the
// route of their destination.
func TestRouterCommands(t *testing.T) {
	udpProxy := sockstest.StartUDPProxy(t)
	echo := sockstest.EchoUDP(t)
	direct := sockstest.EchoUDP(t)
	directHost := direct.String()
	r := &dialer.Router{
		Logger: quiet,
		Routes: []dialer.Route{
			{Dests: dialer.MustParseHosts(directHost)},
			{Dests: dialer.MustParseHosts("127.0.0.0/8, localhost"), Peers: []proxy.ContextDialer{
				&dialer.Dialer{Proxy: closedAddr(t)}, &dialer.Dialer{Proxy: udpProxy.Addr},
			}},
		},
		Peers: []proxy.ContextDialer{&net.Dialer{}}, // no UDP ASSOCIATE: fails
	}

	t.Run("ListenPacket", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		pc, err := r.ListenPacket(ctx, "udp", "127.0.0.1:0")
		require.NoError(t, err)
		defer pc.Close()
		require.NoError(t, pc.SetDeadline(time.Now().Add(wait)))
		got, from := roundTrip(t, pc, echo, "through the route's peer")
		assert.Equal(t, "through the route's peer", got)
		assert.Equal(t, echo.String(), from.String())
		assert.Equal(t, 1, udpProxy.Associations(), "after failing over from the closed peer")
		got, from = roundTrip(t, pc, direct, "direct")
		assert.Equal(t, "direct", got)
		assert.Equal(t, direct.String(), from.String())
		got, _ = roundTrip(t, pc, socks5.Addr{Name: "localhost", Port: uint16(echo.Port)}, "by name, same association")
		assert.Equal(t, "by name, same association", got)
		assert.Equal(t, 1, udpProxy.Associations())

		_, err = pc.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 9})
		assert.Error(t, err, "the default peer has no UDP ASSOCIATE")

		require.NoError(t, pc.SetReadDeadline(time.Now().Add(20*time.Millisecond)))
		_, _, err = pc.ReadFrom(make([]byte, 10))
		assert.True(t, deadline.IsTimeout(err), "%v", err)

		udpProxy.EndAll()
		require.NoError(t, pc.SetReadDeadline(time.Now().Add(wait)))
		require.Eventually(t, func() bool {
			pc.WriteTo([]byte("again"), echo)
			return udpProxy.Associations() == 2
		}, wait, 10*time.Millisecond, "a new association once the proxy ended the first")
	})
	t.Run("DialContext udp", func(t *testing.T) {
		before := udpProxy.Associations()
		c, err := r.DialContext(context.Background(), "udp", echo.String())
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(wait)))
		_, err = c.Write([]byte("dialed"))
		require.NoError(t, err)
		buf := make([]byte, 10)
		n, err := c.Read(buf)
		require.NoError(t, err)
		assert.Equal(t, "dialed", string(buf[:n]))
		assert.Equal(t, before+1, udpProxy.Associations())
	})
	t.Run("Resolve", func(t *testing.T) {
		ip, err := r.Resolve(context.Background(), "192.0.2.7")
		require.NoError(t, err)
		assert.Equal(t, netip.MustParseAddr("192.0.2.7"), ip)
		_, err = r.Resolve(context.Background(), "localhost")
		assertOp(t, err, "resolve")
		var re *socks5.ReplyError
		require.ErrorAs(t, err, &re, "the route's peer was asked, and does not resolve")
		assert.Equal(t, socks5.CommandNotSupported, re.Reply)
	})
	t.Run("Listen", func(t *testing.T) {
		_, err := r.Listen(context.Background(), "tcp", "127.0.0.1:21")
		var re *socks5.ReplyError
		require.ErrorAs(t, err, &re, "the route's peer was asked, and has no BIND")
		l, err := r.Listen(context.Background(), "tcp", directHost)
		require.NoError(t, err, "a direct route listens locally")
		defer l.Close()
		assert.Equal(t, "127.0.0.1", l.Addr().(*net.TCPAddr).IP.String())
	})
}

// quiet is a logger for routers whose failovers the test does not look at.
var quiet = slog.New(slog.DiscardHandler)
