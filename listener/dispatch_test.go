package listener

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks4"
	"github.com/sockstap/sockstap/socks5"
)

// Tests of dispatch and of what a command's serve function has: more than
// one reply, resources held with the connection, the record. The commands
// here are fakes, registered in a listener's table by the test, the way
// the real ones are in commandTable.

// listenTwice is a fake BIND: it listens on loopback (a resource of the
// session), answers with the address, waits for one connection, answers
// again with its peer's address, and ends the session.
func listenTwice(s *session) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.refuse(err, "listen")
		return
	}
	if !s.t.add(ln) {
		s.fail(net.ErrClosed)
		return
	}
	if s.reply(nil, socks5.AddrFromAddrPort(ln.Addr().(*net.TCPAddr).AddrPort())) != nil {
		s.fail(nil)
		return
	}
	peer, err := ln.Accept()
	if err != nil {
		s.fail(err) // Close and Shutdown end up here, having closed ln
		return
	}
	defer peer.Close()
	s.reply(nil, socks5.AddrFromAddrPort(peer.RemoteAddr().(*net.TCPAddr).AddrPort()))
	s.rec.Decision = DecisionBind
	s.end()
}

// countDatagrams is a fake UDP ASSOCIATE: it holds a UDP socket, answers,
// then counts each byte the client sends on the control connection as a
// datagram relayed up, until the client closes it. As a relay, it outlives
// a Shutdown that waits.
func countDatagrams(s *session) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		s.refuse(err, "listen")
		return
	}
	if !s.t.add(pc) || !s.l.startRelay(s.t) {
		s.fail(net.ErrClosed)
		return
	}
	if s.reply(nil, socks5.AddrFromAddrPort(pc.LocalAddr().(*net.UDPAddr).AddrPort())) != nil {
		s.fail(nil)
		return
	}
	s.rec.Decision = DecisionAssociate
	rd := s.rd
	s.spawn(func() {
		buf := make([]byte, 64)
		for {
			n, err := rd.Read(buf)
			s.traffic.datagramsUp.Add(int64(n))
			s.traffic.bytesUp.Add(int64(10 * n))
			if err != nil {
				break
			}
		}
		s.end()
	})
}

// withCommands registers cmds in a listener's table.
func withCommands(cmds map[socks5.Command]command) func(*Listener) {
	return func(l *Listener) {
		for code, c := range cmds {
			l.commands[code] = c
		}
	}
}

// fakeWorld is a world serving the fake commands: listenTwice as BIND, for
// both versions, and countDatagrams as UDP ASSOCIATE, and recording the
// session records.
func fakeWorld(t *testing.T, cfg *Config) (*world, *recorder) {
	rec := &recorder{}
	if cfg == nil {
		cfg = &Config{}
	}
	cfg.OnRecord = rec.add
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	w := wrapWorld(t, ln, cfg, withCommands(map[socks5.Command]command{
		socks5.CmdBind:         {socks4: true, serve: listenTwice},
		socks5.CmdUDPAssociate: {serve: countDatagrams},
	}))
	return w, rec
}

// recorder keeps the records OnRecord receives.
type recorder struct {
	mu      sync.Mutex
	records []*Record
	changed chan struct{}
}

func (r *recorder) add(rec *Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec)
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// wait returns the first record match accepts, waiting for it at most
// sockstest.Timeout.
func (r *recorder) wait(t testing.TB, match func(*Record) bool) *Record {
	t.Helper()
	deadline := time.After(sockstest.Timeout)
	for {
		r.mu.Lock()
		for _, rec := range r.records {
			if match(rec) {
				r.mu.Unlock()
				return rec
			}
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatal("no matching record in time")
			return nil
		}
	}
}

func decided(d Decision) func(*Record) bool {
	return func(r *Record) bool { return r.Decision == d }
}

func TestCommandRepliesTwice(t *testing.T) {
	w, rec := fakeWorld(t, nil)
	for _, version := range []int{5, 4} {
		c := w.dial()
		var listening netip.AddrPort
		if version == 5 {
			a, _, err := socks5.ClientHandshake(context.Background(), c,
				socks5.Request{Command: socks5.CmdBind, Addr: socks5.Addr{IP: netip.MustParseAddr("127.0.0.1"), Port: 0}})
			require.NoError(t, err)
			listening, _ = a.AddrPort()
		} else {
			var err error
			listening, err = socks4.ClientHandshake(context.Background(), c,
				socks4.Request{Command: socks4.CmdBind, IP: netip.MustParseAddr("127.0.0.1")})
			require.NoError(t, err)
		}
		peer, err := net.Dial("tcp", listening.String())
		require.NoError(t, err)
		defer peer.Close()
		var second netip.AddrPort
		if version == 5 {
			a, err := socks5.AwaitBind(context.Background(), c)
			require.NoError(t, err)
			second, _ = a.AddrPort()
		} else {
			second, err = socks4.AwaitBind(context.Background(), c)
			require.NoError(t, err)
		}
		assert.Equal(t, peer.LocalAddr().String(), second.String(), "the second reply names the peer")
		r := rec.wait(t, func(r *Record) bool { return r.Decision == DecisionBind && r.Request.Version == version })
		if version == 5 {
			assert.Equal(t, socks5.Succeeded, r.Reply)
		} else {
			assert.Equal(t, socks4.Granted, r.Reply)
		}
		waitClosed(t, c)
	}
}

func TestVersionHasTheCommand(t *testing.T) {
	var asked atomic.Int64
	w, _ := fakeWorld(t, &Config{Policy: func(context.Context, *Request) error {
		asked.Add(1)
		return nil
	}})
	// SOCKS4's CD 3 is not SOCKS5's UDP ASSOCIATE.
	c := w.dial()
	_, err := socks4.ClientHandshake(context.Background(), c, socks4.Request{Command: 3, IP: netip.MustParseAddr("127.0.0.1"), Port: 1})
	re, ok := errors.AsType[*socks4.ReplyError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, socks4.Rejected, re.Reply)
	waitClosed(t, c)
	r := w.logs.Wait(t, sockstest.Key("version", "socks4"))
	assert.Equal(t, "command 3", r["cmd"])
	assert.Equal(t, "command not supported", r["reason"])
	assert.Zero(t, asked.Load(), "the policy is not asked about a command the version lacks")

	// SOCKS5's is served, the policy asked once.
	c = w.dial()
	_, _, err = socks5.ClientHandshake(context.Background(), c, socks5.Request{Command: socks5.CmdUDPAssociate, Addr: socks5.Addr{IP: netip.MustParseAddr("0.0.0.0")}})
	require.NoError(t, err)
	c.Close()
	w.logs.Wait(t, sockstest.Key("decision", "associate"))
	assert.EqualValues(t, 1, asked.Load())
}

func TestCommandEnabled(t *testing.T) {
	table := map[socks5.Command]command{
		socks5.CmdConnect: {socks4: true, serve: (*session).connect},
		socks5.CmdBind:    {socks4: true, enabled: func(c *Config) bool { return c.Dialer != nil }, serve: listenTwice},
	}
	off := (&Config{}).commands(table)
	assert.Contains(t, off, socks5.CmdConnect)
	assert.NotContains(t, off, socks5.CmdBind, "not enabled")
	on := (&Config{Dialer: &net.Dialer{}}).commands(table)
	assert.Contains(t, on, socks5.CmdBind)
}

func TestRecordAndDatagrams(t *testing.T) {
	w, rec := fakeWorld(t, nil)
	c := w.dial()
	_, _, err := socks5.ClientHandshake(context.Background(), c, socks5.Request{Command: socks5.CmdUDPAssociate, Addr: socks5.Addr{IP: netip.MustParseAddr("0.0.0.0")}})
	require.NoError(t, err)
	_, err = c.Write([]byte("seven b"))
	require.NoError(t, err)
	require.NoError(t, c.CloseWrite())
	r := rec.wait(t, decided(DecisionAssociate))
	assert.EqualValues(t, 7, r.DatagramsUp)
	assert.EqualValues(t, 70, r.BytesUp)
	assert.Equal(t, socks5.CmdUDPAssociate, r.Request.Command)
	assert.Equal(t, c.LocalAddr().String(), r.Client.String())
	assert.False(t, r.Start.IsZero())
	assert.Positive(t, r.Duration)
	l := w.logs.Wait(t, sockstest.Key("decision", "associate"))
	assert.Equal(t, "7", l["datagrams_up"])
	assert.Equal(t, "0", l["datagrams_down"])
	assert.Equal(t, "70", l["bytes_up"])
	assert.Equal(t, "UDP ASSOCIATE", l["cmd"])
}

// TestResourcesClosedWithTheConnection checks that what a session holds
// is closed by Close, and by Shutdown at once unless the session is a
// relay, which Shutdown lets run until its context ends.
func TestResourcesClosedWithTheConnection(t *testing.T) {
	// bindWaiting opens a fake BIND and returns the address it listens
	// on, once the listener holds it.
	bindWaiting := func(t *testing.T, w *world) (*net.TCPConn, string) {
		c := w.dial()
		a, _, err := socks5.ClientHandshake(context.Background(), c,
			socks5.Request{Command: socks5.CmdBind, Addr: socks5.Addr{IP: netip.MustParseAddr("127.0.0.1")}})
		require.NoError(t, err)
		return c, a.String()
	}
	associated := func(t *testing.T, w *world) *net.TCPConn {
		c := w.dial()
		_, _, err := socks5.ClientHandshake(context.Background(), c,
			socks5.Request{Command: socks5.CmdUDPAssociate, Addr: socks5.Addr{IP: netip.MustParseAddr("0.0.0.0")}})
		require.NoError(t, err)
		return c
	}
	refused := func(t *testing.T, addr string) {
		_, err := net.Dial("tcp", addr)
		assert.Error(t, err, "the session's listener at %s is closed", addr)
	}

	t.Run("Close", func(t *testing.T) {
		w, rec := fakeWorld(t, nil)
		c, addr := bindWaiting(t, w)
		u := associated(t, w)
		require.NoError(t, w.l.Close())
		waitClosed(t, c)
		waitClosed(t, u)
		refused(t, addr)
		r := rec.wait(t, decided(DecisionFail))
		assert.ErrorIs(t, r.Cause, net.ErrClosed)
		rec.wait(t, decided(DecisionAssociate))
	})

	t.Run("Shutdown", func(t *testing.T) {
		w, rec := fakeWorld(t, nil)
		c, addr := bindWaiting(t, w)
		u := associated(t, w)
		ctx, cancel := context.WithCancel(context.Background())
		shut := make(chan error, 1)
		go func() { shut <- w.l.Shutdown(ctx) }()
		waitClosed(t, c) // not a relay: closed at once, with its listener
		refused(t, addr)
		rec.wait(t, decided(DecisionFail))

		_, err := u.Write([]byte("x")) // a relay: still served
		require.NoError(t, err)
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned %v with a relay running", err)
		default:
		}
		cancel() // now it must end
		waitClosed(t, u)
		assert.ErrorIs(t, <-shut, context.Canceled)
		rec.wait(t, decided(DecisionAssociate))
	})

	t.Run("added after Close", func(t *testing.T) {
		tr := &tracked{conn: nopConn{}}
		tr.closeAll(false)
		r := &closeCounter{}
		assert.False(t, tr.add(r), "a resource added to a closed connection")
		assert.EqualValues(t, 1, r.closed.Load(), "is closed at once")
	})
}

type nopConn struct{ net.Conn }

func (nopConn) Close() error { return nil }

type closeCounter struct{ closed atomic.Int64 }

func (c *closeCounter) Close() error { c.closed.Add(1); return nil }

// TestRecords checks the typed record of each way a CONNECT ends, and that
// a hook that panics takes nothing down.
func TestRecords(t *testing.T) {
	echo := sockstest.Echo(t)
	rec := &recorder{}
	w := newWorld(t, &Config{
		Dialer: &net.Dialer{},
		Policy: func(_ context.Context, r *Request) error {
			if r.Target.Port == 7 {
				return Deny("port 7")
			}
			return nil
		},
		Tap: func(r *Request, _ func(int) []byte) bool { return r.Target.Name == "tap.test" },
		OnRecord: func(r *Record) {
			rec.add(r)
			if r.Request != nil && r.Request.User == "panic" {
				panic("hook bug")
			}
		},
	})

	c, _, err := w.connect5(echo.String())
	require.NoError(t, err)
	_, err = c.Write([]byte("ping"))
	require.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 4))
	require.NoError(t, err)
	require.NoError(t, c.CloseWrite())
	waitClosed(t, c)
	r := rec.wait(t, decided(DecisionRelay))
	assert.EqualValues(t, 4, r.BytesUp)
	assert.EqualValues(t, 4, r.BytesDown)
	assert.Equal(t, socks5.Succeeded, r.Reply)
	assert.NoError(t, r.Cause)
	assert.Equal(t, echo.String(), r.Request.Target.String())

	_, _, err = w.connect5("127.0.0.1:7")
	require.Error(t, err)
	r = rec.wait(t, decided(DecisionDeny))
	assert.Equal(t, "port 7", r.Reason)
	assert.Equal(t, socks5.NotAllowed, r.Reply)

	_, _, err = w.connect5("tap.test:80")
	require.NoError(t, err)
	w.accept()
	r = rec.wait(t, decided(DecisionTap))
	assert.Equal(t, "tap.test:80", r.Request.Target.String())

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	refusedAddr := closed.Addr().String()
	closed.Close()
	_, _, err = w.connect5(refusedAddr)
	require.Error(t, err)
	r = rec.wait(t, decided(DecisionFail))
	assert.Equal(t, socks5.ConnectionRefused, r.Reply)
	assert.Error(t, r.Cause)

	// A hook that panics is recovered, and logged.
	c, err = w.connect4("127.0.0.1", uint16(echo.Port), "panic")
	require.NoError(t, err)
	c.Close()
	l := w.logs.Wait(t, sockstest.Key("msg", "socks panic"))
	assert.Equal(t, "hook bug", l["cause"])
	c, _, err = w.connect5(echo.String())
	require.NoError(t, err, "the listener goes on")
	c.Close()
}
