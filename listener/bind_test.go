package listener

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks4"
	"github.com/sockstap/sockstap/socks5"
)

// peerZone resolves the names the BIND tests expect their peers as:
// peer.test is 127.0.0.1 (where the tests' peers come from), elsewhere.test
// is 127.0.0.2.
func peerZone(name string) ([]netip.Addr, bool) {
	switch name {
	case "peer.test":
		return []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")}, true
	case "elsewhere.test":
		return []netip.Addr{netip.MustParseAddr("127.0.0.2")}, true
	}
	return nil, false
}

// bindWorld is a world on 127.0.0.1 whose listener serves BIND, with cfg
// (nil: the zero Config) and the peerZone resolver, and keeps its records.
func bindWorld(t testing.TB, cfg *Config) (*world, *recorder) {
	return bindWorldOn(t, "127.0.0.1:0", cfg)
}

func bindWorldOn(t testing.TB, address string, cfg *Config) (*world, *recorder) {
	t.Helper()
	rec := &recorder{}
	if cfg == nil {
		cfg = &Config{}
	}
	cfg.Bind = true
	cfg.OnRecord = rec.add
	if cfg.Resolver == nil {
		cfg.Resolver = sockstest.Resolver(t, peerZone)
	}
	ln, err := net.Listen("tcp", address)
	require.NoError(t, err)
	return wrapWorld(t, ln, cfg), rec
}

// bindRequest sends a BIND request of version (4 or 5) for the peer
// target, "host:port", on c, and returns the first reply's address.
func bindRequest(t testing.TB, c net.Conn, version int, target string) (netip.AddrPort, error) {
	t.Helper()
	a, err := socks5.ParseAddr(target)
	require.NoError(t, err)
	if version == 4 {
		q := socks4.Request{Command: socks4.CmdBind, IP: a.IP, Host: a.Name, Port: a.Port}
		return socks4.ClientHandshake(context.Background(), c, q)
	}
	bound, _, err := socks5.ClientHandshake(context.Background(), c, socks5.Request{Command: socks5.CmdBind, Addr: a})
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap, ok := bound.AddrPort()
	require.True(t, ok, "BIND's first reply names an address: %v", bound)
	return ap, nil
}

// awaitBind reads BIND's second reply on c.
func awaitBind(t testing.TB, c net.Conn, version int) (netip.AddrPort, error) {
	t.Helper()
	if version == 4 {
		return socks4.AwaitBind(context.Background(), c)
	}
	a, err := socks5.AwaitBind(context.Background(), c)
	if err != nil {
		return netip.AddrPort{}, err
	}
	ap, ok := a.AddrPort()
	require.True(t, ok, "BIND's second reply names an address: %v", a)
	return ap, nil
}

// replyOf returns the reply code of a client handshake's error, SOCKS5's
// or SOCKS4's, or nil when err carries none.
func replyOf(err error) fmt.Stringer {
	if re, ok := errors.AsType[*socks5.ReplyError](err); ok {
		return re.Reply
	}
	if re, ok := errors.AsType[*socks4.ReplyError](err); ok {
		return re.Reply
	}
	return nil
}

// refusal is the reply code a version's client sees for a SOCKS5 code:
// itself, or SOCKS4's one code of refusal.
func refusal(version int, code socks5.Reply) fmt.Stringer {
	if version == 4 {
		return socks4.Rejected
	}
	return code
}

// dialPeer connects to addr as BIND's peer, from 127.0.0.1; the test's
// cleanup closes the connection.
func dialPeer(t testing.TB, addr netip.AddrPort) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	require.NoError(t, err)
	c.SetDeadline(time.Now().Add(sockstest.Timeout))
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

// assertNotListening checks that nothing listens at addr any more: the
// BIND's socket is closed.
func assertNotListening(t testing.TB, addr netip.AddrPort) {
	t.Helper()
	c, err := net.Dial("tcp", addr.String())
	if err == nil {
		c.Close()
	}
	assert.Error(t, err, "BIND's listener at %v is closed", addr)
}

// isErr returns a check that an error is target.
func isErr(target error) func(error) bool {
	return func(err error) bool { return errors.Is(err, target) }
}

func versionName(v int) string { return fmt.Sprintf("socks%d", v) }

// TestBind runs BIND through to the relay, in each version, for a peer
// named by its address, by a name the listener resolves, and by the
// unspecified address (any peer): the two replies, the bytes both ways
// (with what the client sent before the peer came, and half-closes), and
// the record.
func TestBind(t *testing.T) {
	w, rec := bindWorld(t, nil)
	for _, tc := range []struct {
		name    string
		version int
		target  string
	}{
		{"socks5 address", 5, "127.0.0.1:21"},
		{"socks5 name", 5, "peer.test:21"},
		{"socks5 any", 5, "0.0.0.0:0"},
		{"socks4 address", 4, "127.0.0.1:21"},
		{"socks4a name", 4, "peer.test:21"},
		{"socks4 any", 4, "0.0.0.0:0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := w.dial()
			first, err := bindRequest(t, c, tc.version, tc.target)
			require.NoError(t, err)
			assert.Equal(t, netip.MustParseAddr("127.0.0.1"), first.Addr(), "listens on the address the client came to")
			assert.NotZero(t, first.Port())

			// Sent before the peer comes: kept, and relayed once it has.
			_, err = io.WriteString(c, "early ")
			require.NoError(t, err)
			peer := dialPeer(t, first)
			second, err := awaitBind(t, c, tc.version)
			require.NoError(t, err)
			assert.Equal(t, peer.LocalAddr().String(), second.String(), "the second reply names the peer")

			_, err = io.WriteString(c, "up")
			require.NoError(t, err)
			got := make([]byte, len("early up"))
			_, err = io.ReadFull(peer, got)
			require.NoError(t, err)
			assert.Equal(t, "early up", string(got))
			_, err = io.WriteString(peer, "down")
			require.NoError(t, err)
			_, err = io.ReadFull(c, got[:4])
			require.NoError(t, err)
			assert.Equal(t, "down", string(got[:4]))

			// Half-close each way.
			require.NoError(t, c.CloseWrite())
			n, err := peer.Read(got)
			assert.Equal(t, 0, n)
			assert.ErrorIs(t, err, io.EOF, "the client's half-close reaches the peer")
			_, err = io.WriteString(peer, " bye")
			require.NoError(t, err)
			require.NoError(t, peer.Close())
			assert.Equal(t, " bye", string(waitClosed(t, c)))

			r := rec.wait(t, func(r *Record) bool {
				return r.Decision == DecisionBind && r.Request.Target.String() == tc.target && r.Request.Version == tc.version
			})
			assert.EqualValues(t, len("early up"), r.BytesUp)
			assert.EqualValues(t, len("down bye"), r.BytesDown)
			if tc.version == 4 {
				assert.Equal(t, socks4.Granted, r.Reply)
			} else {
				assert.Equal(t, socks5.Succeeded, r.Reply)
			}
			assert.NoError(t, r.Cause)
			assertNotListening(t, first)
		})
	}
	l := w.logs.Wait(t, sockstest.Key("decision", "bind"))
	assert.Equal(t, "BIND", l["cmd"])
}

// TestBindWrongPeer: a peer from another host than the request named is
// refused, in the second reply (SOCKS4 91, SOCKS5 0x02), and both
// connections are closed.
func TestBindWrongPeer(t *testing.T) {
	w, rec := bindWorld(t, nil)
	for _, version := range []int{5, 4} {
		for _, target := range []string{"127.0.0.2:21", "elsewhere.test:21"} {
			t.Run(fmt.Sprintf("%s %s", versionName(version), target), func(t *testing.T) {
				c := w.dial()
				first, err := bindRequest(t, c, version, target)
				require.NoError(t, err)
				peer := dialPeer(t, first) // from 127.0.0.1
				_, err = awaitBind(t, c, version)
				assert.Equal(t, refusal(version, socks5.NotAllowed), replyOf(err), "%v", err)
				waitClosed(t, c)
				waitClosed(t, peer)
				r := rec.wait(t, func(r *Record) bool {
					return r.Decision == DecisionDeny && r.Request.Target.String() == target && r.Request.Version == version
				})
				assert.Contains(t, r.Reason, "127.0.0.1 is not")
				assertNotListening(t, first)
			})
		}
	}
}

// TestBindAsksThePolicyAboutThePeer: the policy is asked when the request
// arrives, then about the peer, with DialedIP its address; a refusal is
// the second reply.
func TestBindAsksThePolicyAboutThePeer(t *testing.T) {
	var mu sync.Mutex
	var seen []netip.Addr
	w, rec := bindWorld(t, &Config{Policy: func(_ context.Context, r *Request) error {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, r.DialedIP)
		if r.DialedIP.IsValid() && r.Target.Port == 99 {
			return Deny("no peers for port 99")
		}
		return nil
	}})
	for _, version := range []int{5, 4} {
		mu.Lock()
		seen = nil
		mu.Unlock()
		c := w.dial()
		first, err := bindRequest(t, c, version, "0.0.0.0:99")
		require.NoError(t, err)
		peer := dialPeer(t, first)
		_, err = awaitBind(t, c, version)
		assert.Equal(t, refusal(version, socks5.NotAllowed), replyOf(err), "%v", err)
		waitClosed(t, c)
		waitClosed(t, peer)
		r := rec.wait(t, func(r *Record) bool { return r.Decision == DecisionDeny && r.Request.Version == version })
		assert.Equal(t, "no peers for port 99", r.Reason)
		mu.Lock()
		assert.Equal(t, []netip.Addr{{}, netip.MustParseAddr("127.0.0.1")}, seen, "asked on arrival, then with the peer's address")
		mu.Unlock()
	}
}

// TestBindTimeout: a peer that does not come within BindTimeout gets the
// client a failure as its second reply, and the port closed.
func TestBindTimeout(t *testing.T) {
	w, rec := bindWorld(t, &Config{BindTimeout: 50 * time.Millisecond})
	for _, version := range []int{5, 4} {
		c := w.dial()
		first, err := bindRequest(t, c, version, "127.0.0.1:21")
		require.NoError(t, err)
		_, err = awaitBind(t, c, version)
		assert.Equal(t, refusal(version, socks5.HostUnreachable), replyOf(err), "%v", err)
		waitClosed(t, c)
		assertNotListening(t, first)
		r := rec.wait(t, func(r *Record) bool { return r.Decision == DecisionFail && r.Request.Version == version })
		assert.Equal(t, "no peer came in time", r.Reason)
		assert.True(t, deadline.IsTimeout(r.Cause), "%v", r.Cause)
	}
}

// TestBindClientHangsUp: a client that closes its connection while BIND
// waits for the peer ends the wait and the listening socket at once.
func TestBindClientHangsUp(t *testing.T) {
	w, rec := bindWorld(t, nil) // the default timeout: two minutes
	c := w.dial()
	first, err := bindRequest(t, c, 5, "127.0.0.1:21")
	require.NoError(t, err)
	require.NoError(t, c.Close())
	r := rec.wait(t, decided(DecisionFail))
	assert.ErrorIs(t, r.Cause, errClientGone)
	assertNotListening(t, first)
}

// TestBindReleasesItsListener counts the process's descriptors: a BIND
// whose peer never comes leaves none behind, whether it times out, its
// client hangs up, or the listener is closed or shut down.
func TestBindReleasesItsListener(t *testing.T) {
	needProc(t)
	for _, tc := range []struct {
		name  string
		end   func(t *testing.T, w *world, c *net.TCPConn)
		cfg   Config
		cause func(error) bool
	}{
		{"timeout", func(t *testing.T, w *world, c *net.TCPConn) {
			_, err := awaitBind(t, c, 5)
			require.Error(t, err)
		}, Config{BindTimeout: 20 * time.Millisecond}, deadline.IsTimeout},
		{"client hangs up", func(t *testing.T, w *world, c *net.TCPConn) {
			c.Close()
		}, Config{}, isErr(errClientGone)},
		{"Close", func(t *testing.T, w *world, c *net.TCPConn) {
			require.NoError(t, w.l.Close())
		}, Config{}, isErr(net.ErrClosed)},
		{"Shutdown", func(t *testing.T, w *world, c *net.TCPConn) {
			require.NoError(t, w.l.Shutdown(context.Background()), "a BIND waiting is no relay: Shutdown does not wait for it")
		}, Config{}, isErr(net.ErrClosed)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, before := descriptors(t)
			cfg := tc.cfg
			w, rec := bindWorld(t, &cfg)
			c := w.dial()
			first, err := bindRequest(t, c, 5, "127.0.0.1:21")
			require.NoError(t, err)
			tc.end(t, w, c)
			r := rec.wait(t, func(r *Record) bool { return r.Request != nil && r.Request.Command == socks5.CmdBind })
			assert.True(t, tc.cause(r.Cause), "cause %v", r.Cause)
			assertNotListening(t, first)
			c.Close()
			w.l.Close()
			require.Eventually(t, func() bool {
				_, after := descriptors(t)
				return after <= before
			}, sockstest.Timeout, time.Millisecond, "descriptors back to %d", before)
		})
	}
}

// TestBindRacesClose has peers come while the listener closes: whichever
// wins, every connection ends closed, nothing is left listening, and no
// goroutine is left (TestMain checks).
func TestBindRacesClose(t *testing.T) {
	for i := range 20 {
		w, rec := bindWorld(t, nil)
		c := w.dial()
		first, err := bindRequest(t, c, 5, "127.0.0.1:21")
		require.NoError(t, err)
		var wg sync.WaitGroup
		var peer net.Conn
		wg.Go(func() {
			if p, err := net.Dial("tcp", first.String()); err == nil {
				peer = p
			}
		})
		if i%2 == 0 {
			wg.Go(func() { w.l.Close() })
		} else {
			// A peer that won has made the BIND a relay, which Shutdown
			// waits for until its context ends.
			wg.Go(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
				defer cancel()
				w.l.Shutdown(ctx)
			})
		}
		wg.Wait()
		waitClosed(t, c)
		r := rec.wait(t, func(r *Record) bool { return r.Request != nil && r.Request.Command == socks5.CmdBind })
		if peer != nil {
			// A peer the session took is closed with it. One that lost
			// the race to the listener's close may never have been
			// accepted: the kernel can leave its connection half open
			// (SYN-RECV on our side, established on the peer's) until
			// it gives up on it, which is not ours to hurry.
			if r.Decision == DecisionBind {
				waitClosed(t, peer)
			}
			peer.Close()
		}
		assertNotListening(t, first)
	}
}

// TestBindOverIPv6: SOCKS5 listens on the IPv6 address the client came
// to; SOCKS4, whose replies carry IPv4 only, is refused rather than told
// a zeroed address.
func TestBindOverIPv6(t *testing.T) {
	probe, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	probe.Close()
	w, rec := bindWorldOn(t, "[::1]:0", nil)

	c := w.dial()
	_, err = bindRequest(t, c, 4, "127.0.0.1:21")
	assert.Equal(t, socks4.Rejected, replyOf(err), "%v", err)
	r := rec.wait(t, func(r *Record) bool { return r.Request != nil && r.Request.Version == 4 })
	assert.Equal(t, DecisionFail, r.Decision)
	assert.ErrorIs(t, r.Cause, errBindIPv6)

	c = w.dial()
	first, err := bindRequest(t, c, 5, "[::1]:21")
	require.NoError(t, err)
	assert.Equal(t, netip.MustParseAddr("::1"), first.Addr())
	peer := dialPeer(t, first)
	second, err := awaitBind(t, c, 5)
	require.NoError(t, err)
	assert.Equal(t, peer.LocalAddr().String(), second.String())
}

// TestBindPorts: BIND listens on a port of Config.BindPorts, and fails
// (0x01) when none is free or the range is empty.
func TestBindPorts(t *testing.T) {
	hold, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer hold.Close()
	taken := uint16(hold.Addr().(*net.TCPAddr).Port)
	free := func() uint16 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return uint16(ln.Addr().(*net.TCPAddr).Port)
	}()

	w, _ := bindWorld(t, &Config{BindPorts: Port(free)})
	c := w.dial()
	first, err := bindRequest(t, c, 5, "127.0.0.1:21")
	require.NoError(t, err)
	assert.Equal(t, free, first.Port())

	for _, r := range []PortRange{Port(taken), {First: 10, Last: 5}} {
		w, rec := bindWorld(t, &Config{BindPorts: r})
		_, err := bindRequest(t, w.dial(), 5, "127.0.0.1:21")
		assert.Equal(t, socks5.GeneralFailure, replyOf(err), "%v: %v", r, err)
		got := rec.wait(t, decided(DecisionFail))
		assert.Equal(t, "cannot listen", got.Reason)
	}
}

// TestCommandsOff: BIND, RESOLVE and RESOLVE_PTR are answered "command not
// supported" unless the program enables them; SOCKS4 BIND with 91.
func TestCommandsOff(t *testing.T) {
	w := newWorld(t, &Config{Dialer: &net.Dialer{}})
	for _, cmd := range []socks5.Command{socks5.CmdBind, socks5.CmdResolve, socks5.CmdResolvePTR} {
		_, _, err := socks5.ClientHandshake(context.Background(), w.dial(),
			socks5.Request{Command: cmd, Addr: socks5.Addr{IP: netip.MustParseAddr("127.0.0.1")}})
		assert.Equal(t, socks5.CommandNotSupported, replyOf(err), "%v: %v", cmd, err)
	}
	_, err := bindRequest(t, w.dial(), 4, "127.0.0.1:21")
	assert.Equal(t, socks4.Rejected, replyOf(err), "%v", err)
	l := w.logs.Wait(t, sockstest.Key("version", "socks4"))
	assert.Equal(t, "command not supported", l["reason"])

	// Tor's commands have no SOCKS4 form, enabled or not.
	w = newWorld(t, &Config{Resolve: true, Bind: true})
	_, err = socks4.ClientHandshake(context.Background(), w.dial(),
		socks4.Request{Command: socks4.Command(socks5.CmdResolve), IP: netip.MustParseAddr("127.0.0.1"), Port: 1})
	assert.Equal(t, socks4.Rejected, replyOf(err), "%v", err)
}

// TestBindThroughDialer: the dialer package's Listen, an independent
// client, BINDs through the listener in each of its schemes.
func TestBindThroughDialer(t *testing.T) {
	w, rec := bindWorld(t, nil)
	for _, scheme := range []dialer.Scheme{dialer.SOCKS5, dialer.SOCKS5H, dialer.SOCKS4, dialer.SOCKS4A} {
		t.Run(string(scheme), func(t *testing.T) {
			d := &dialer.Dialer{Proxy: w.l.Addr().String(), Scheme: scheme, Resolver: sockstest.Resolver(t, peerZone)}
			ctx, cancel := context.WithTimeout(context.Background(), sockstest.Timeout)
			defer cancel()
			ln, err := d.Listen(ctx, "tcp4", "peer.test:21")
			require.NoError(t, err)
			defer ln.Close()
			bl := ln.(*dialer.BindListener)
			require.NoError(t, bl.SetDeadline(time.Now().Add(sockstest.Timeout)))
			bound, err := netip.ParseAddrPort(ln.Addr().String())
			require.NoError(t, err)
			peer := dialPeer(t, bound)
			c, err := ln.Accept()
			require.NoError(t, err)
			defer c.Close()
			assert.Equal(t, peer.LocalAddr().String(), c.RemoteAddr().String())

			_, err = io.WriteString(peer, "to the program")
			require.NoError(t, err)
			got := make([]byte, len("to the program"))
			_, err = io.ReadFull(c, got)
			require.NoError(t, err)
			assert.Equal(t, "to the program", string(got))
			_, err = io.WriteString(c, "to the peer")
			require.NoError(t, err)
			_, err = io.ReadFull(peer, got[:len("to the peer")])
			require.NoError(t, err)
			assert.Equal(t, "to the peer", string(got[:len("to the peer")]))
			c.Close()
			waitClosed(t, peer)
			peer.Close()
			r := rec.wait(t, func(r *Record) bool {
				return r.Decision == DecisionBind && r.Request.VersionString() == map[dialer.Scheme]string{
					dialer.SOCKS5: "socks5", dialer.SOCKS5H: "socks5", dialer.SOCKS4: "socks4", dialer.SOCKS4A: "socks4a",
				}[scheme] && r.Request.Target.Name == map[bool]string{true: "peer.test", false: ""}[scheme == dialer.SOCKS5H || scheme == dialer.SOCKS4A]
			})
			assert.EqualValues(t, len("to the peer"), r.BytesUp)
			assert.EqualValues(t, len("to the program"), r.BytesDown)
		})
	}
}

// BenchmarkBind times a BIND from its request to its second reply: a
// client connects to the listener and asks it to BIND, a peer connects to
// the address of the first reply, and the time ends when the client has
// read the second reply. The baseline, direct, is the least the same
// rendezvous costs without a proxy: listen on loopback, dial, accept.
//
// Each op runs both, one after the other, so that they meet the same
// machine: the cores are shared, and the cost of finding a free port
// grows with the loopback connections in TIME_WAIT, which other tests
// and benchmarks leave by the thousand. Both close their connections with
// a reset (SO_LINGER 0), so as to leave none themselves. It reports
// bind-µs and direct-µs, the mean of each, and bind/direct, their ratio;
// ns/op is their sum.
//
//	go test ./listener -run '^$' -bench Bind -benchtime 2000x -count 3
func BenchmarkBind(b *testing.B) {
	for _, version := range []int{5, 4} {
		b.Run(fmt.Sprintf("socks%d", version), func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(b, err)
			l := Wrap(ln, &Config{Bind: true, Logger: slog.New(slog.DiscardHandler)})
			defer l.Close()
			proxy := ln.Addr().(*net.TCPAddr)
			var direct, bind time.Duration
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				if err := directRendezvous(); err != nil {
					b.Fatal(err)
				}
				mid := time.Now()
				if err := bindRendezvous(b, proxy, version); err != nil {
					b.Fatal(err)
				}
				direct += mid.Sub(start)
				bind += time.Since(mid)
			}
			n := float64(b.N)
			b.ReportMetric(float64(direct.Microseconds())/n, "direct-µs")
			b.ReportMetric(float64(bind.Microseconds())/n, "bind-µs")
			b.ReportMetric(float64(bind)/float64(direct), "bind/direct")
		})
	}
}

// directRendezvous is BenchmarkBind's baseline: listen on loopback, dial,
// accept, close.
func directRendezvous() error {
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	defer ln.Close()
	peer, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		return err
	}
	defer resetClose(peer)
	c, err := ln.AcceptTCP()
	if err != nil {
		return err
	}
	return resetClose(c)
}

// resetClose closes c with a reset, which leaves no TIME_WAIT behind.
func resetClose(c *net.TCPConn) error {
	c.SetLinger(0)
	return c.Close()
}

// bindRendezvous is the same rendezvous through a BIND of version at
// proxy, up to the second reply.
func bindRendezvous(b *testing.B, proxy *net.TCPAddr, version int) error {
	c, err := net.DialTCP("tcp4", nil, proxy)
	if err != nil {
		return err
	}
	defer resetClose(c)
	c.SetDeadline(time.Now().Add(benchTimeout))
	first, err := bindRequest(b, c, version, "127.0.0.1:0")
	if err != nil {
		return err
	}
	peer, err := net.DialTCP("tcp4", nil, net.TCPAddrFromAddrPort(first))
	if err != nil {
		return err
	}
	defer resetClose(peer)
	_, err = awaitBind(b, c, version)
	return err
}
