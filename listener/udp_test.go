package listener

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
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
