package dialer_test

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

// startBindProxy starts a SOCKS5 server that serves BIND: it listens on
// 127.0.0.1, replies, accepts one peer, replies again and echoes what the
// peer sends to the client. Each connection's end, once every socket it
// opened is closed, is reported on the returned channel.
func startBindProxy(t *testing.T) (string, <-chan struct{}) {
	t.Helper()
	ended := make(chan struct{}, 256)
	addr := sockstest.Serve(t, func(c net.Conn) {
		defer func() { ended <- struct{}{} }()
		defer c.Close()
		c.SetDeadline(time.Now().Add(wait))
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		s, err := socks5.ServerHandshake(ctx, c, nil)
		cancel()
		if err != nil || s.Request.Command != socks5.CmdBind {
			return
		}
		ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			return
		}
		defer ln.Close()
		ln.SetDeadline(time.Now().Add(wait))
		if s.Reply(socks5.Succeeded, socks5.AddrFromAddrPort(ln.Addr().(*net.TCPAddr).AddrPort())) != nil {
			return
		}
		// The client may give up: its closing ends the wait.
		go func() { io.Copy(io.Discard, c); ln.Close() }()
		peer, err := ln.AcceptTCP()
		if err != nil {
			return
		}
		defer peer.Close()
		if s.Reply(socks5.Succeeded, socks5.AddrFromAddrPort(peer.RemoteAddr().(*net.TCPAddr).AddrPort())) != nil {
			return
		}
		io.Copy(c, peer)
	}).String()
	return addr, ended
}

// TestNoFDLeakCommands runs BINDs and UDP associations, each way they can
// go and fail, many times, and checks that the process has as many
// sockets open afterwards as before.
func TestNoFDLeakCommands(t *testing.T) {
	countFDs(t)
	const rounds = 15
	udpProxy := sockstest.StartUDPProxy(t)
	echo := sockstest.EchoUDP(t)
	bindProxy, bindEnded := startBindProxy(t)
	ours := startProxy(t, listener.Config{}) // serves neither BIND nor UDP
	stall := startFakeProxy(t, nil)
	badRelay := startFakeProxy(t, []byte{5, 0, 5, 0, 0, 1, 127, 0, 0, 1, 0, 0}) // relay port 0
	refused := closedAddr(t)
	ctx := context.Background()

	type use struct {
		name string
		run  func(t *testing.T)
	}
	uses := []use{
		{"association used and closed", func(t *testing.T) {
			pc := listenPacket(t, &dialer.Dialer{Proxy: udpProxy.Addr})
			roundTrip(t, pc, echo, "x")
			require.NoError(t, pc.Close())
			udpProxy.WaitIdle(t)
		}},
		{"association ended by the proxy", func(t *testing.T) {
			pc := listenPacket(t, &dialer.Dialer{Proxy: udpProxy.Addr})
			udpProxy.EndAll()
			_, _, err := pc.ReadFrom(make([]byte, 1))
			require.ErrorIs(t, err, dialer.ErrAssociationClosed)
			pc.Close()
			udpProxy.WaitIdle(t)
		}},
		{"association refused", func(t *testing.T) {
			_, err := (&dialer.Dialer{Proxy: ours.addr}).ListenPacket(ctx, "udp", "")
			require.Error(t, err)
		}},
		{"association with a relay on port 0", func(t *testing.T) {
			_, err := (&dialer.Dialer{Proxy: badRelay.addr}).ListenPacket(ctx, "udp", "")
			require.ErrorContains(t, err, "port 0")
			await(t, badRelay.closed, "the proxy's end")
		}},
		{"association with a proxy that is down", func(t *testing.T) {
			_, err := (&dialer.Dialer{Proxy: refused}).ListenPacket(ctx, "udp", "")
			require.ErrorIs(t, err, errConnRefused)
		}},
		{"association cut short by its context", func(t *testing.T) {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
			_, err := (&dialer.Dialer{Proxy: stall.addr}).ListenPacket(cctx, "udp", "")
			cancel()
			require.ErrorIs(t, err, context.DeadlineExceeded)
			await(t, stall.closed, "the proxy's end")
		}},
		{"BIND accepted and closed", func(t *testing.T) {
			l := listen(t, &dialer.Dialer{Proxy: bindProxy}, "127.0.0.1:0")
			peer, err := net.Dial("tcp", l.Addr().String())
			require.NoError(t, err)
			c, err := l.Accept()
			require.NoError(t, err)
			peer.Close()
			c.Close()
			l.Close()
			await(t, bindEnded, "the proxy's end")
		}},
		{"BIND closed before a peer came", func(t *testing.T) {
			l := listen(t, &dialer.Dialer{Proxy: bindProxy}, "127.0.0.1:0")
			require.NoError(t, l.Close())
			await(t, bindEnded, "the proxy's end")
		}},
		{"BIND refused", func(t *testing.T) {
			_, err := (&dialer.Dialer{Proxy: ours.addr, Scheme: dialer.SOCKS4}).Listen(ctx, "tcp", "127.0.0.1:0")
			require.Error(t, err)
		}},
		{"RESOLVE refused", func(t *testing.T) {
			_, err := (&dialer.Dialer{Proxy: ours.addr}).Resolve(ctx, "example.com")
			require.Error(t, err)
		}},
	}
	refusals := func(n int) {
		ours.logs.WaitN(t, n, func(r map[string]string) bool { return r["cmd"] != "" && r["cmd"] != "CONNECT" })
	}
	for _, u := range uses {
		u.run(t)
	}
	refusals(3)
	drain(stall.got, badRelay.got)

	before := countFDs(t)
	for _, u := range uses {
		t.Run(u.name, func(t *testing.T) {
			for range rounds {
				u.run(t)
			}
		})
	}
	refusals(3 + 3*rounds)
	assert.Equal(t, before, countFDs(t), "sockets open before and after %d BINDs and associations", len(uses)*rounds)
}
