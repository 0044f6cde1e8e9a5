package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks4"
	"github.com/sockstap/sockstap/socks5"
)

// syncBuffer is a bytes.Buffer safe for one writer and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// start runs the gateway with args on a free loopback port and returns its
// address and its log; the test's cleanup stops it and checks it stopped
// cleanly.
func start(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	g := launch(t, args...)
	t.Cleanup(func() {
		g.stop()
		assert.NoError(t, g.wait(t))
	})
	return g.addr, g.logs
}

// A gateway is one run of the gateway in the test's process.
type gateway struct {
	addr string
	logs *syncBuffer
	stop context.CancelFunc // what a signal does
	done chan error
}

// launch runs the gateway with args on a free loopback port, and returns
// once it listens. The test's cleanup stops it, if the test has not.
func launch(t *testing.T, args ...string) *gateway {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	g := &gateway{logs: &syncBuffer{}, stop: cancel, done: make(chan error, 1)}
	addrs := make(chan net.Addr, 1)
	go func() {
		g.done <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), g.logs, func(a net.Addr) { addrs <- a })
	}()
	t.Cleanup(cancel)
	select {
	case a := <-addrs:
		g.addr = a.String()
	case err := <-g.done:
		t.Fatalf("gateway ended: %v\n%s", err, g.logs)
	case <-time.After(sockstest.Timeout):
		t.Fatal("gateway did not start")
	}
	return g
}

// wait waits for the gateway to end, and returns what run returned.
func (g *gateway) wait(t *testing.T) error {
	t.Helper()
	select {
	case err := <-g.done:
		assert.Contains(t, g.logs.String(), "gateway stopped")
		return err
	case <-time.After(sockstest.Timeout):
		t.Fatal("gateway did not stop")
		return nil
	}
}

func TestGatewayRelays(t *testing.T) {
	echo := sockstest.Echo(t)
	addr, logs := start(t)
	target, err := socks5.ParseAddr(echo.String())
	require.NoError(t, err)

	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(sockstest.Timeout))
	_, _, err = socks5.ClientHandshake(context.Background(), c, socks5.Request{Command: socks5.CmdConnect, Addr: target})
	require.NoError(t, err)
	_, err = io.WriteString(c, "through the gateway")
	require.NoError(t, err)
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, "through the gateway", string(got))

	c4, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c4.Close()
	c4.SetDeadline(time.Now().Add(sockstest.Timeout))
	_, err = socks4.ClientHandshake(context.Background(), c4, socks4.Request{
		Command: socks4.CmdConnect, IP: echo.AddrPort().Addr(), Port: echo.AddrPort().Port()})
	require.NoError(t, err)

	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "decision=relay") &&
			strings.Contains(logs.String(), "target="+echo.String())
	}, sockstest.Timeout, time.Millisecond, "a log record for the relay")
}

// TestGatewayUDP: with -udp, the gateway relays datagrams; without, it
// answers UDP ASSOCIATE "command not supported".
func TestGatewayUDP(t *testing.T) {
	echo := sockstest.EchoUDP(t)
	associate := func(addr string) (*net.TCPConn, socks5.Addr, error) {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(sockstest.Timeout))
		bound, _, err := socks5.ClientHandshake(context.Background(), c,
			socks5.Request{Command: socks5.CmdUDPAssociate, Addr: socks5.Addr{IP: netip.IPv4Unspecified()}})
		return c.(*net.TCPConn), bound, err
	}

	off, _ := start(t)
	_, _, err := associate(off)
	re, ok := errors.AsType[*socks5.ReplyError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, socks5.CommandNotSupported, re.Reply)

	addr, logs := start(t, "-udp", "-udp-out", "127.0.0.1")
	ctrl, bound, err := associate(addr)
	require.NoError(t, err)
	relay, ok := bound.AddrPort()
	require.True(t, ok)
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer pc.Close()
	pc.SetDeadline(time.Now().Add(sockstest.Timeout))
	msg, err := socks5.Datagram{Addr: socks5.AddrFromAddrPort(echo.AddrPort()), Payload: []byte("a datagram")}.AppendBinary(nil)
	require.NoError(t, err)
	_, err = pc.WriteToUDPAddrPort(msg, relay)
	require.NoError(t, err)
	buf := make([]byte, 512)
	n, err := pc.Read(buf)
	require.NoError(t, err)
	d, err := socks5.ParseDatagram(buf[:n])
	require.NoError(t, err)
	assert.Equal(t, "a datagram", string(d.Payload))
	assert.Equal(t, echo.String(), d.Addr.String())
	ctrl.Close()
	require.Eventually(t, func() bool {
		return strings.Contains(logs.String(), "decision=associate") &&
			strings.Contains(logs.String(), "datagrams_up=1")
	}, sockstest.Timeout, time.Millisecond, "a log record for the association")
}

func TestGatewayAuth(t *testing.T) {
	echo := sockstest.Echo(t)
	addr, logs := start(t, "-user", "alice", "-pass", "s3cret")
	target, err := socks5.ParseAddr(echo.String())
	require.NoError(t, err)
	for _, tc := range []struct {
		name   string
		method socks5.ClientMethod
		err    error
	}{
		{"right password", socks5.UserPassClient{Username: "alice", Password: "s3cret"}, nil},
		{"wrong password", socks5.UserPassClient{Username: "alice", Password: "guess"}, socks5.ErrAuthFailed},
		{"no password", socks5.NoAuth{}, socks5.ErrNoAcceptableMethod},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer c.Close()
			c.SetDeadline(time.Now().Add(sockstest.Timeout))
			_, _, err = socks5.ClientHandshake(context.Background(), c, socks5.Request{Command: socks5.CmdConnect, Addr: target}, tc.method)
			if tc.err == nil {
				assert.NoError(t, err)
			} else {
				assert.ErrorIs(t, err, tc.err)
			}
		})
	}
	assert.NotContains(t, logs.String(), "s3cret")
}

func TestGatewayFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-user", "alice"},
		{"-pass", "x"},
		{"extra"},
		{"-listen", "not an address"},
		{"-nosuchflag"},
		{"-cache", "lots"},
		{"-cache", "-1"},
		{"-upstream", "http://127.0.0.1:3128"},
		{"-upstream", "socks5h://[::1"},
		{"-route", "socks5h://127.0.0.1:1080"},
		{"-route", "10.0.0.0/33=direct"},
		{"-route", "a=direct", "-route", "a=socks5h://127.0.0.1:1080"},
		{"-proxyproto", "x"},
		{"-udp-out", "127.0.0.1"},
		{"-udp", "-udp-out", "localhost"},
	} {
		err := run(context.Background(), args, io.Discard, nil)
		assert.Error(t, err, "%q", args)
	}
	err := run(context.Background(), []string{"-h"}, io.Discard, nil)
	assert.True(t, errors.Is(err, flag.ErrHelp), "%v", err)
}

// TestGatewayCommands: -bind, -resolve and -identd each enable their
// command or check; without them BIND and RESOLVE are not supported and
// SOCKS4 user ids are not checked.
func TestGatewayCommands(t *testing.T) {
	dial := func(t *testing.T, addr string) net.Conn {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(sockstest.Timeout))
		return c
	}
	loopback := netip.MustParseAddr("127.0.0.1")
	replyOf := func(err error) socks5.Reply {
		re, ok := errors.AsType[*socks5.ReplyError](err)
		require.True(t, ok, "%v", err)
		return re.Reply
	}

	t.Run("off", func(t *testing.T) {
		addr, _ := start(t)
		for _, cmd := range []socks5.Command{socks5.CmdBind, socks5.CmdResolve} {
			_, _, err := socks5.ClientHandshake(context.Background(), dial(t, addr),
				socks5.Request{Command: cmd, Addr: socks5.Addr{IP: loopback}})
			assert.Equal(t, socks5.CommandNotSupported, replyOf(err), "%v", cmd)
		}
		echo := sockstest.Echo(t)
		_, err := socks4.ClientHandshake(context.Background(), dial(t, addr), socks4.Request{
			Command: socks4.CmdConnect, IP: loopback, Port: echo.AddrPort().Port(), User: "nobody"})
		assert.NoError(t, err, "no identd check")
	})

	t.Run("on", func(t *testing.T) {
		addr, logs := start(t, "-bind", "-resolve", "-identd")
		c := dial(t, addr)
		bound, _, err := socks5.ClientHandshake(context.Background(), c,
			socks5.Request{Command: socks5.CmdBind, Addr: socks5.Addr{IP: loopback}})
		require.NoError(t, err)
		peer := dial(t, bound.String())
		second, err := socks5.AwaitBind(context.Background(), c)
		require.NoError(t, err)
		assert.Equal(t, peer.LocalAddr().String(), second.String())

		// An address sent as a name resolves to itself, with no DNS.
		answer, _, err := socks5.ClientHandshake(context.Background(), dial(t, addr),
			socks5.Request{Command: socks5.CmdResolve, Addr: socks5.Addr{Name: "127.0.0.1"}})
		require.NoError(t, err)
		assert.Equal(t, loopback, answer.IP)

		// No identd answers for this test's connection (nothing listens
		// on 127.0.0.1:113, or not for it): 92 or 93, never granted.
		echo := sockstest.Echo(t)
		_, err = socks4.ClientHandshake(context.Background(), dial(t, addr), socks4.Request{
			Command: socks4.CmdConnect, IP: loopback, Port: echo.AddrPort().Port(), User: "nobody"})
		re, ok := errors.AsType[*socks4.ReplyError](err)
		require.True(t, ok, "%v", err)
		assert.Contains(t, []socks4.Reply{socks4.IdentdUnreachable, socks4.IdentdMismatch}, re.Reply)
		require.Eventually(t, func() bool {
			return strings.Contains(logs.String(), "decision=resolve") && strings.Contains(logs.String(), "identd")
		}, sockstest.Timeout, time.Millisecond, "log records for RESOLVE and the identd check")
	})
}
