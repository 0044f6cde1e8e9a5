package listener

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// loopbackPackets opens outbound sockets on 127.0.0.1: the tests bind
// nothing but loopback.
var loopbackPackets = PacketListenerFunc(func(ctx context.Context, _, _ string) (net.PacketConn, error) {
	var lc net.ListenConfig
	return lc.ListenPacket(ctx, "udp4", "127.0.0.1:0")
})

// udpWorld is a world that serves UDP ASSOCIATE as cfg says, with
// outbound sockets on loopback unless cfg has its own, and records the
// session records.
func udpWorld(t *testing.T, cfg *Config) (*world, *recorder) {
	t.Helper()
	return udpWorldOn(t, "127.0.0.1:0", cfg)
}

func udpWorldOn(t *testing.T, address string, cfg *Config) (*world, *recorder) {
	t.Helper()
	if cfg == nil {
		cfg = &Config{}
	}
	cfg.UDP = true
	if cfg.UDPListener == nil {
		cfg.UDPListener = loopbackPackets
	}
	rec := &recorder{}
	cfg.OnRecord = rec.add
	ln, err := net.Listen("tcp", address)
	if err != nil && strings.HasPrefix(address, "[::1]") {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	require.NoError(t, err)
	return wrapWorld(t, ln, cfg), rec
}

// udpClient is a SOCKS5 client's end of an association: the control
// connection, the relay's address from the reply, and a socket of its own
// on loopback that sends to the relay.
type udpClient struct {
	t     testing.TB
	ctrl  *net.TCPConn
	bound socks5.Addr // BND.ADDR and BND.PORT
	relay netip.AddrPort
	pc    *net.UDPConn
}

// associate makes an association through w, declaring declared as the
// address the client sends from (the zero Addr: 0.0.0.0:0), and opens
// the client's socket on loopback.
func associate(t testing.TB, w *world, declared socks5.Addr) *udpClient {
	t.Helper()
	c, err := tryAssociate(t, w, declared)
	require.NoError(t, err)
	return c
}

func tryAssociate(t testing.TB, w *world, declared socks5.Addr) (*udpClient, error) {
	t.Helper()
	if declared.IsZero() {
		declared = socks5.Addr{IP: netip.IPv4Unspecified()}
	}
	ctrl := w.dial()
	bound, _, err := socks5.ClientHandshake(context.Background(), ctrl,
		socks5.Request{Command: socks5.CmdUDPAssociate, Addr: declared})
	if err != nil {
		return nil, err
	}
	relay, ok := bound.AddrPort()
	require.True(t, ok, "BND.ADDR %v is an address", bound)
	// The client sends from the address its control connection comes
	// from: the relay takes datagrams from there only.
	from := ctrl.LocalAddr().(*net.TCPAddr).AddrPort().Addr()
	c := &udpClient{t: t, ctrl: ctrl, bound: bound, relay: relay, pc: listenUDP(t, from)}
	return c, nil
}

// listenUDP opens a UDP socket on ip, closed by the test's cleanup.
func listenUDP(t testing.TB, ip netip.Addr) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	require.NoError(t, err)
	t.Cleanup(func() { pc.Close() })
	return pc
}

// datagram returns payload in a SOCKS header addressed to to.
func datagram(t testing.TB, to socks5.Addr, payload string) []byte {
	t.Helper()
	b, err := socks5.Datagram{Addr: to, Payload: []byte(payload)}.AppendBinary(nil)
	require.NoError(t, err)
	return b
}

// send sends payload to to through the relay.
func (c *udpClient) send(to socks5.Addr, payload string) {
	c.t.Helper()
	c.sendRaw(datagram(c.t, to, payload))
}

// sendRaw sends b, header and all, to the relay.
func (c *udpClient) sendRaw(b []byte) {
	c.t.Helper()
	_, err := c.pc.WriteToUDPAddrPort(b, c.relay)
	require.NoError(c.t, err)
}

// recv returns the next datagram the relay sends, unwrapped: its sender
// and payload.
func (c *udpClient) recv() (socks5.Addr, string) {
	c.t.Helper()
	buf := make([]byte, maxDatagram)
	c.pc.SetReadDeadline(time.Now().Add(sockstest.Timeout))
	n, src, err := c.pc.ReadFromUDPAddrPort(buf)
	require.NoError(c.t, err)
	assert.Equal(c.t, c.relay, netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), "from the relay")
	d, err := socks5.ParseDatagram(buf[:n])
	require.NoError(c.t, err)
	assert.Zero(c.t, d.Frag)
	return d.Addr, string(d.Payload)
}

// roundTrip sends payload to the echo server at to, and checks that it
// comes back, from the echo server.
func (c *udpClient) roundTrip(to *net.UDPAddr, payload string) {
	c.t.Helper()
	c.send(socks5.AddrFromAddrPort(to.AddrPort()), payload)
	from, got := c.recv()
	assert.Equal(c.t, payload, got)
	assert.Equal(c.t, to.String(), from.String(), "the header names the sender")
}

// udpSink is a UDP server on 127.0.0.1 that reports each datagram it
// receives, with its sender.
type udpSink struct {
	conn *net.UDPConn
	got  chan sunk
}

type sunk struct {
	from    netip.AddrPort
	payload string
}

func newSink(t testing.TB) *udpSink {
	t.Helper()
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	s := &udpSink{conn: conn, got: make(chan sunk, 256)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			select {
			case s.got <- sunk{from, string(buf[:n])}:
			default: // a test that does not read: dropped
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return s
}

func (s *udpSink) addr() socks5.Addr {
	return socks5.AddrFromAddrPort(s.conn.LocalAddr().(*net.UDPAddr).AddrPort())
}

// next returns the next datagram the sink received.
func (s *udpSink) next(t testing.TB) sunk {
	t.Helper()
	select {
	case d := <-s.got:
		return d
	case <-time.After(sockstest.Timeout):
		t.Fatal("the sink received nothing in time")
		return sunk{}
	}
}

func TestAssociateRelays(t *testing.T) {
	t.Parallel()
	for _, at := range []string{"127.0.0.1:0", "127.0.0.2:0", "[::1]:0"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			w, rec := udpWorldOn(t, at, nil)
			echo := sockstest.EchoUDP(t)
			c := associate(t, w, socks5.Addr{})
			ctrlLocal := c.ctrl.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()
			assert.Equal(t, ctrlLocal, c.relay.Addr(), "the relay is on the address the control connection arrived on")
			msgs := []string{"one", "", strings.Repeat("x", 1400), strings.Repeat("y", 60000)}
			for _, m := range msgs {
				c.roundTrip(echo, m)
			}
			c.ctrl.Close()
			r := rec.wait(t, decided(DecisionAssociate))
			assert.Equal(t, socks5.Succeeded, r.Reply)
			assert.EqualValues(t, len(msgs), r.DatagramsUp)
			assert.EqualValues(t, len(msgs), r.DatagramsDown)
			assert.EqualValues(t, 3+1400+60000, r.BytesUp)
			assert.EqualValues(t, 3+1400+60000, r.BytesDown)
			assert.NoError(t, r.Cause, "the client ended it")
			l := w.logs.Wait(t, sockstest.Key("decision", "associate"))
			assert.Equal(t, "UDP ASSOCIATE", l["cmd"])
			assert.Equal(t, "4", l["datagrams_up"])
		})
	}
}

func TestAssociateOff(t *testing.T) {
	t.Parallel()
	w := newWorld(t, &Config{Dialer: &net.Dialer{}})
	c := w.dial()
	_, _, err := socks5.ClientHandshake(context.Background(), c,
		socks5.Request{Command: socks5.CmdUDPAssociate, Addr: socks5.Addr{IP: netip.IPv4Unspecified()}})
	re, ok := errors.AsType[*socks5.ReplyError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, socks5.CommandNotSupported, re.Reply)
}

// named returns the address name:port of a.
func named(name string, a socks5.Addr) socks5.Addr { return socks5.Addr{Name: name, Port: a.Port} }

func TestAssociateNames(t *testing.T) {
	t.Parallel()
	var asked atomic.Int64
	resolver := sockstest.Resolver(t, func(name string) ([]netip.Addr, bool) {
		switch name {
		case "echo.test":
			asked.Add(1)
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, true
		}
		return nil, false
	})
	w, rec := udpWorld(t, &Config{Resolver: resolver})
	echo := sockstest.EchoUDP(t)
	c := associate(t, w, socks5.Addr{})
	to := socks5.Addr{Name: "echo.test", Port: uint16(echo.Port)}
	for i := range 5 {
		c.send(socks5.Addr{Name: "nowhere.test", Port: uint16(echo.Port)}, "dropped: no such name")
		msg := "by name " + strconv.Itoa(i)
		c.send(to, msg)
		from, got := c.recv()
		assert.Equal(t, msg, got)
		assert.Equal(t, echo.String(), from.String(), "the sender by its address")
	}
	assert.EqualValues(t, 1, asked.Load(), "the name is looked up once for the association")
	c.ctrl.Close()
	r := rec.wait(t, decided(DecisionAssociate))
	assert.EqualValues(t, 5, r.DatagramsUp)
}

func TestAssociatePolicy(t *testing.T) {
	t.Parallel()
	sink := newSink(t)
	var mu sync.Mutex
	var asked []Request
	resolver := sockstest.Resolver(t, func(name string) ([]netip.Addr, bool) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, true
	})
	w, rec := udpWorld(t, &Config{
		Resolver: resolver,
		Policy: func(_ context.Context, r *Request) error {
			mu.Lock()
			asked = append(asked, *r)
			mu.Unlock()
			if r.Target.Name == "denied.test" {
				return Deny("not that name")
			}
			return nil
		},
	})
	c := associate(t, w, socks5.Addr{})
	for i := range 3 {
		c.send(named("denied.test", sink.addr()), "denied")
		c.send(sink.addr(), "allowed by address "+strconv.Itoa(i))
		assert.Equal(t, "allowed by address "+strconv.Itoa(i), sink.next(t).payload, "nothing else came before")
		c.send(named("allowed.test", sink.addr()), "allowed by name")
		assert.Equal(t, "allowed by name", sink.next(t).payload)
	}
	c.ctrl.Close()
	r := rec.wait(t, decided(DecisionAssociate))
	assert.EqualValues(t, 6, r.DatagramsUp)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, asked, 4, "once for the request, once for each destination: %v", asked)
	assert.Equal(t, socks5.CmdUDPAssociate, asked[0].Command)
	assert.False(t, asked[0].DialedIP.IsValid(), "the request, as it arrived")
	sinkIP := sink.addr().IP
	for i, want := range []socks5.Addr{named("denied.test", sink.addr()), sink.addr(), named("allowed.test", sink.addr())} {
		q := asked[i+1]
		assert.Equal(t, socks5.CmdUDPAssociate, q.Command)
		assert.Equal(t, want, q.Target, "the datagram's destination")
		assert.Equal(t, sinkIP, q.DialedIP, "the address it goes to")
		assert.Equal(t, c.ctrl.LocalAddr().String(), q.Client.String())
	}
}

// TestAssociateStrangers checks that the relay takes datagrams from the
// client's address and port only: the port the request declared, or the
// first well-formed datagram's.
func TestAssociateStrangers(t *testing.T) {
	t.Parallel()
	w, _ := udpWorld(t, nil)
	sink := newSink(t)
	loopback := netip.MustParseAddr("127.0.0.1")
	strangerSends := func(c *udpClient, from netip.Addr, payload string) {
		s := listenUDP(t, from)
		_, err := s.WriteToUDPAddrPort(datagram(t, sink.addr(), payload), c.relay)
		require.NoError(t, err)
	}
	firstAtSink := func(c *udpClient, want string) {
		t.Helper()
		c.send(sink.addr(), want)
		assert.Equal(t, want, sink.next(t).payload, "the stranger's datagram was dropped")
	}

	t.Run("declared", func(t *testing.T) {
		pc := listenUDP(t, loopback)
		c := associate(t, w, socks5.AddrFromAddrPort(pc.LocalAddr().(*net.UDPAddr).AddrPort()))
		c.pc = pc
		strangerSends(c, loopback, "same host, another port, before the client")
		firstAtSink(c, "declared port")
	})
	t.Run("first datagram", func(t *testing.T) {
		c := associate(t, w, socks5.Addr{})
		strangerSends(c, netip.MustParseAddr("127.0.0.2"), "another host, before the client")
		c.sendRaw([]byte{0, 0, 0, 9}) // malformed: does not choose the port
		strangerSends(c, netip.MustParseAddr("127.0.0.2"), "another host, again")
		firstAtSink(c, "the client's first")
		strangerSends(c, loopback, "same host, another port, after the client")
		firstAtSink(c, "the client's second")
	})
	t.Run("declared behind a NAT", func(t *testing.T) {
		// An address other than the client's says nothing of the port
		// datagrams come from: the first datagram's is taken.
		c := associate(t, w, socks5.Addr{IP: netip.MustParseAddr("192.0.2.7"), Port: 4242})
		firstAtSink(c, "from the port the NAT chose")
		strangerSends(c, loopback, "same host, another port")
		firstAtSink(c, "again")
	})
}

// TestAssociateHostileDatagrams sends the relay datagrams that a careless
// or hostile client might: each is dropped, and the association goes on.
func TestAssociateHostileDatagrams(t *testing.T) {
	t.Parallel()
	w, rec := udpWorld(t, nil)
	sink := newSink(t)
	c := associate(t, w, socks5.Addr{})
	good := datagram(t, sink.addr(), "good")
	port := good[8:10]
	c.sendRaw(datagram(t, sink.addr(), "first, to choose the port"))
	assert.Equal(t, "first, to choose the port", sink.next(t).payload)
	for _, h := range []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"one byte", []byte{0}},
		{"RSV only", []byte{0, 0}},
		{"no address type", []byte{0, 0, 0}},
		{"RSV not zero", append([]byte{1, 0}, good[2:]...)},
		{"FRAG 1", append([]byte{0, 0, 1}, good[3:]...)},
		{"FRAG 0x80, the last fragment", append([]byte{0, 0, 0x80}, good[3:]...)},
		{"address type 2", append([]byte{0, 0, 0, 2}, good[4:]...)},
		{"address type 0xff", append([]byte{0, 0, 0, 0xff}, good[4:]...)},
		{"IPv4 cut short", good[:7]},
		{"IPv4 without port", good[:8]},
		{"IPv6 cut short", []byte{0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 1}},
		{"empty name", append([]byte{0, 0, 0, 3, 0}, port...)},
		{"name longer than the datagram", append([]byte{0, 0, 0, 3, 200, 'a', 'b'}, port...)},
		{"port 0", datagram(t, socks5.Addr{IP: sink.addr().IP, Port: 0}, "port 0")},
		{"name port 0", datagram(t, socks5.Addr{Name: "localhost", Port: 0}, "port 0")},
	} {
		c.sendRaw(h.b)
	}
	c.sendRaw(good)
	assert.Equal(t, "good", sink.next(t).payload, "every hostile datagram was dropped")
	c.ctrl.Close()
	r := rec.wait(t, decided(DecisionAssociate))
	assert.EqualValues(t, 2, r.DatagramsUp, "only the well-formed datagrams count")
	assert.EqualValues(t, len("first, to choose the port")+len("good"), r.BytesUp)
}

// TestAssociateFilter checks whose datagrams reach the client under each
// UDPFilter: the destination's own, another port of the destination's
// host, another host.
func TestAssociateFilter(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		filter               UDPFilter
		otherPort, otherHost bool // passed
	}{
		{UDPFilterAddrPort, false, false},
		{UDPFilterAddr, true, false},
		{UDPFilterNone, true, true},
	} {
		t.Run(c.filter.String(), func(t *testing.T) {
			t.Parallel()
			w, _ := udpWorld(t, &Config{UDPFilter: c.filter})
			sink := newSink(t)
			u := associate(t, w, socks5.Addr{})
			u.send(sink.addr(), "hello")
			out := sink.next(t).from // the association's outbound socket
			// reply sends payload from the sink, the destination, and
			// checks what the client receives next: the sender's
			// datagram if it passed, else the sink's.
			expect := func(sender *net.UDPConn, payload string, passed bool) {
				t.Helper()
				_, err := sender.WriteToUDPAddrPort([]byte(payload), out)
				require.NoError(t, err)
				_, err = sink.conn.WriteToUDPAddrPort([]byte("from the destination"), out)
				require.NoError(t, err)
				from, got := u.recv()
				if passed {
					assert.Equal(t, payload, got)
					assert.Equal(t, sender.LocalAddr().String(), from.String())
					from, got = u.recv()
				}
				assert.Equal(t, "from the destination", got)
				assert.Equal(t, sink.addr(), from)
			}
			expect(listenUDP(t, netip.MustParseAddr("127.0.0.1")), "another port", c.otherPort)
			expect(listenUDP(t, netip.MustParseAddr("127.0.0.2")), "another host", c.otherHost)
		})
	}
}

// openedSockets is a PacketListener on loopback that remembers the
// sockets it opened.
type openedSockets struct {
	mu    sync.Mutex
	addrs []netip.AddrPort
}

func (o *openedSockets) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	pc, err := loopbackPackets(ctx, network, address)
	if err == nil {
		o.mu.Lock()
		o.addrs = append(o.addrs, pc.LocalAddr().(*net.UDPAddr).AddrPort())
		o.mu.Unlock()
	}
	return pc, err
}

func (o *openedSockets) last(t testing.TB) netip.AddrPort {
	o.mu.Lock()
	defer o.mu.Unlock()
	require.NotEmpty(t, o.addrs)
	return o.addrs[len(o.addrs)-1]
}

// assertReleased checks that the sockets at addrs are closed: a new socket
// can bind each address.
func assertReleased(t testing.TB, addrs ...netip.AddrPort) {
	t.Helper()
	for _, a := range addrs {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(a))
		if assert.NoError(t, err, "%v is free again", a) {
			pc.Close()
		}
	}
}

// assertHeld checks that the sockets at addrs are still open.
func assertHeld(t testing.TB, addrs ...netip.AddrPort) {
	t.Helper()
	for _, a := range addrs {
		pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(a))
		if !assert.Error(t, err, "%v is still bound", a) {
			pc.Close()
		}
	}
}

// TestAssociateEndsWithControl proves that an association's sockets are
// closed within a second of its control connection's close: its record,
// written once they are closed, comes within a second, and both addresses
// can be bound again.
func TestAssociateEndsWithControl(t *testing.T) {
	t.Parallel()
	opened := &openedSockets{}
	w, rec := udpWorld(t, &Config{UDPListener: opened})
	echo := sockstest.EchoUDP(t)
	c := associate(t, w, socks5.Addr{})
	c.roundTrip(echo, "before")
	out := opened.last(t)
	assertHeld(t, c.relay, out)
	assert.Equal(t, 1, w.l.Stats().Associations)

	closed := time.Now()
	require.NoError(t, c.ctrl.Close())
	rec.wait(t, decided(DecisionAssociate))
	assert.Less(t, time.Since(closed), time.Second, "the association ended within a second")
	assertReleased(t, c.relay, out)
	// And the relay takes nothing more: a datagram sent to it now is
	// refused by the kernel, or lost, never relayed.
	c.send(socks5.AddrFromAddrPort(echo.AddrPort()), "after")
	c.pc.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, _, err := c.pc.ReadFromUDPAddrPort(make([]byte, 64))
	assert.Error(t, err, "no answer once the association is over")
}

func TestAssociateIdle(t *testing.T) {
	t.Parallel()
	// Long enough that a loaded machine does not stall a round trip for
	// a whole idle spell.
	const idle = time.Second
	opened := &openedSockets{}
	w, rec := udpWorld(t, &Config{UDPListener: opened, IdleTimeout: idle})
	echo := sockstest.EchoUDP(t)
	c := associate(t, w, socks5.Addr{})
	// Datagrams keep it alive over several idle spells.
	start := time.Now()
	for i := 0; time.Since(start) < 2*idle && i < 100000; i++ {
		c.roundTrip(echo, "alive "+strconv.Itoa(i))
	}
	// Then, with nothing moving, it ends, and closes the control
	// connection.
	waitClosed(t, c.ctrl)
	r := rec.wait(t, decided(DecisionAssociate))
	assert.ErrorIs(t, r.Cause, errIdle)
	assert.Greater(t, r.Duration, 2*idle)
	assertReleased(t, c.relay, opened.last(t))
}

func TestAssociateLimits(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"per client", Config{MaxAssociationsPerClient: 2}},
		{"overall", Config{MaxAssociations: 2}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w, rec := udpWorld(t, &c.cfg)
			first := associate(t, w, socks5.Addr{})
			associate(t, w, socks5.Addr{})
			_, err := tryAssociate(t, w, socks5.Addr{})
			re, ok := errors.AsType[*socks5.ReplyError](err)
			require.True(t, ok, "%v", err)
			assert.Equal(t, socks5.GeneralFailure, re.Reply)
			r := rec.wait(t, decided(DecisionFail))
			assert.Equal(t, "too many UDP associations", r.Reason)
			// One ends: its place is free again.
			first.ctrl.Close()
			rec.wait(t, decided(DecisionAssociate))
			echo := sockstest.EchoUDP(t)
			associate(t, w, socks5.Addr{}).roundTrip(echo, "in its place")
		})
	}
	t.Run("negative: none", func(t *testing.T) {
		t.Parallel()
		w, _ := udpWorld(t, &Config{MaxAssociations: -1, MaxAssociationsPerClient: -1})
		for range 3 {
			associate(t, w, socks5.Addr{})
		}
	})
}

// TestAssociateClosedByListener checks that Close ends associations at
// once, and Shutdown lets them run until its context ends, as relays.
func TestAssociateClosedByListener(t *testing.T) {
	t.Parallel()
	t.Run("Close", func(t *testing.T) {
		t.Parallel()
		opened := &openedSockets{}
		w, rec := udpWorld(t, &Config{UDPListener: opened})
		c := associate(t, w, socks5.Addr{})
		require.NoError(t, w.l.Close())
		waitClosed(t, c.ctrl)
		assertReleased(t, c.relay, opened.last(t))
		r := rec.wait(t, decided(DecisionAssociate))
		assert.ErrorIs(t, r.Cause, context.Canceled, "closed by the listener")
	})
	t.Run("Shutdown", func(t *testing.T) {
		t.Parallel()
		opened := &openedSockets{}
		w, rec := udpWorld(t, &Config{UDPListener: opened})
		echo := sockstest.EchoUDP(t)
		c := associate(t, w, socks5.Addr{})
		ctx, cancel := context.WithCancel(context.Background())
		shut := make(chan error, 1)
		go func() { shut <- w.l.Shutdown(ctx) }()
		c.roundTrip(echo, "still relayed during Shutdown")
		select {
		case err := <-shut:
			t.Fatalf("Shutdown returned %v with an association under way", err)
		default:
		}
		cancel()
		assert.ErrorIs(t, <-shut, context.Canceled)
		waitClosed(t, c.ctrl)
		assertReleased(t, c.relay, opened.last(t))
		rec.wait(t, decided(DecisionAssociate))
	})
	t.Run("Shutdown, the client ends", func(t *testing.T) {
		t.Parallel()
		w, _ := udpWorld(t, nil)
		c := associate(t, w, socks5.Addr{})
		shut := make(chan error, 1)
		go func() { shut <- w.l.Shutdown(context.Background()) }()
		c.ctrl.Close()
		select {
		case err := <-shut:
			assert.NoError(t, err)
		case <-time.After(sockstest.Timeout):
			t.Fatal("Shutdown did not return once the association ended")
		}
	})
}

func TestAssociateAdvertise(t *testing.T) {
	t.Parallel()
	adv := netip.MustParseAddr("192.0.2.1")
	w, _ := udpWorld(t, &Config{UDPAdvertise: adv})
	ctrl := w.dial()
	bound, _, err := socks5.ClientHandshake(context.Background(), ctrl,
		socks5.Request{Command: socks5.CmdUDPAssociate, Addr: socks5.Addr{IP: netip.IPv4Unspecified()}})
	require.NoError(t, err)
	assert.Equal(t, adv, bound.IP, "BND.ADDR is the advertised address")
	// The relay is on the control connection's address, at the port told.
	echo := sockstest.EchoUDP(t)
	c := &udpClient{t: t, ctrl: ctrl, bound: bound, relay: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), bound.Port), pc: listenUDP(t, netip.MustParseAddr("127.0.0.1"))}
	c.roundTrip(echo, "through the advertised port")
}
