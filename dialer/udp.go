package dialer

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstap/sockstap/socks5"
)

// ErrAssociationClosed is matched by the errors of a [PacketConn]'s reads
// and writes once the proxy has closed the association's control
// connection, which ends the association.
var ErrAssociationClosed = errors.New("dialer: the proxy closed the UDP association")

// ListenPacket makes a UDP association with the proxy (UDP ASSOCIATE,
// RFC 1928 section 7) and returns a *[PacketConn] that sends and receives
// datagrams through it. network is "udp", "udp4" or "udp6"; address is the
// local address to send from, as [net.ListenPacket] reads it ("" or
// ":0" for any). A full local address, IP and port, is told to the proxy;
// otherwise the request carries 0.0.0.0:0, which RFC 1928 lets a client
// send when it does not know its address yet.
//
// The association lives as long as the control connection that made it:
// closing the PacketConn closes it, and when the proxy closes it, reads and
// writes fail with an error that matches [ErrAssociationClosed]. ctx
// bounds the request and the reply, not the association.
//
// Datagrams travel between the program and the proxy's relay directly,
// even when the Dialer reaches its proxy through others (a [Chain]): only
// the control connection goes through the hops before.
//
// SOCKS4 has no UDP: through socks4 and socks4a the error matches
// [ErrUnsupportedCommand]. A failure is a [*net.OpError] whose Op is
// "udp associate".
func (d *Dialer) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	return d.listenPacket(ctx, network, address, nil)
}

// listenPacket is ListenPacket; target, when set, is the one destination
// that the association is for, for its errors.
func (d *Dialer) listenPacket(ctx context.Context, network, address string, target net.Addr) (*PacketConn, error) {
	fail := func(err error) (*PacketConn, error) {
		return nil, d.opError(cmdUDP.op, network, target, err)
	}
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return fail(net.UnknownNetworkError(network))
	}
	var laddr *net.UDPAddr
	if address != "" {
		a, err := net.ResolveUDPAddr(network, address)
		if err != nil {
			return fail(err)
		}
		laddr = a
	}
	from := socks5.Addr{IP: netip.IPv4Unspecified()}
	if laddr != nil && laddr.Port != 0 && laddr.IP != nil && !laddr.IP.IsUnspecified() {
		from = socks5.AddrFromAddrPort(laddr.AddrPort())
	}
	ctrl, bound, err := d.exchange(ctx, cmdUDP, from)
	if err != nil {
		return fail(err)
	}
	relay, err := d.relayAddr(ctx, ctrl, bound)
	if err == nil && !fits(network, relay.Addr()) {
		err = &net.AddrError{Err: "the proxy's relay is not of the network's family", Addr: relay.String()}
	}
	if err != nil {
		ctrl.Close()
		return fail(err)
	}
	// A connected socket: the kernel keeps out datagrams from anywhere but
	// the relay, and picks the local address that reaches it.
	udp, err := net.DialUDP(network, laddr, net.UDPAddrFromAddrPort(relay))
	if err != nil {
		ctrl.Close()
		return fail(err)
	}
	pc := &PacketConn{d: d, ctrl: ctrl, udp: udp, relay: relay, watched: make(chan struct{})}
	go pc.watch()
	return pc, nil
}

// relayAddr returns the relay's address from the reply's bound address: a
// name is resolved, and an unspecified address stands for the proxy's.
func (d *Dialer) relayAddr(ctx context.Context, ctrl net.Conn, bound socks5.Addr) (netip.AddrPort, error) {
	ip := bound.IP
	switch {
	case bound.Name != "":
		var err error
		if ip, err = d.resolve(ctx, "ip", bound.Name, false); err != nil {
			return netip.AddrPort{}, err
		}
	case !ip.IsValid() || ip.IsUnspecified():
		var err error
		if ip, err = d.proxyIP(ctx, ctrl); err != nil {
			return netip.AddrPort{}, err
		}
	}
	if bound.Port == 0 {
		return netip.AddrPort{}, errors.New("dialer: the proxy's relay has port 0")
	}
	return netip.AddrPortFrom(ip.Unmap(), bound.Port), nil
}

// A PacketConn sends and receives UDP datagrams through a SOCKS5 proxy's
// UDP association. It implements [net.PacketConn]; see
// [Dialer.ListenPacket].
type PacketConn struct {
	d     *Dialer
	ctrl  net.Conn       // the control connection
	udp   *net.UDPConn   // connected to the relay
	relay netip.AddrPort // the relay's address

	writeDeadline atomic.Int64 // unix nanoseconds; 0: none

	ended   atomic.Bool   // the proxy closed the control connection
	closed  atomic.Bool   // Close was called
	watched chan struct{} // closed when watch has returned
	once    sync.Once
}

// maxDatagram is the largest UDP datagram, header and payload.
const maxDatagram = 65535

// buffers hold a datagram with its header, on its way in or out.
var buffers = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

// watch waits for the control connection to end; when the proxy ends it,
// the association is over and the socket is closed, which ends the reads
// under way.
func (pc *PacketConn) watch() {
	defer close(pc.watched)
	var b [64]byte
	for {
		if _, err := pc.ctrl.Read(b[:]); err != nil {
			break // the proxy sends nothing on it: only its end matters
		}
	}
	if !pc.closed.Load() {
		pc.ended.Store(true)
		pc.udp.Close()
	}
}

// WriteTo sends p as one datagram to addr through the relay. addr is a
// *[net.UDPAddr], or a [socks5.Addr] (or *socks5.Addr), which may hold a
// name: through socks5h the name goes to the proxy, which resolves it;
// through socks5 it is resolved here, with the Dialer's Resolver, as for
// a CONNECT, within the write deadline.
func (pc *PacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	dst, err := pc.destination(addr)
	if err != nil {
		return 0, pc.opError("write", addr, err)
	}
	return pc.write(p, dst, addr)
}

// destination returns the address to put in the header for addr.
func (pc *PacketConn) destination(addr net.Addr) (socks5.Addr, error) {
	var a socks5.Addr
	switch addr := addr.(type) {
	case *net.UDPAddr:
		if addr == nil {
			return socks5.Addr{}, errNoDestination
		}
		a = socks5.AddrFromAddrPort(addr.AddrPort())
	case socks5.Addr:
		a = addr
	case *socks5.Addr:
		if addr == nil {
			return socks5.Addr{}, errNoDestination
		}
		a = *addr
	default:
		return socks5.Addr{}, errors.New("dialer: a datagram goes to a *net.UDPAddr or a socks5.Addr")
	}
	if a.IsZero() {
		return socks5.Addr{}, errNoDestination
	}
	if _, local, _ := pc.d.Scheme.version(); local && a.Name != "" {
		ctx := context.Background()
		if ns := pc.writeDeadline.Load(); ns != 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, time.Unix(0, ns))
			defer cancel()
		}
		ip, err := pc.d.resolve(ctx, "ip", a.Name, false)
		if err != nil {
			return socks5.Addr{}, err
		}
		a = socks5.Addr{IP: ip, Port: a.Port}
	}
	return a, nil
}

var errNoDestination = errors.New("dialer: no destination address")

// write sends p to dst, whose net.Addr is addr, for errors.
func (pc *PacketConn) write(p []byte, dst socks5.Addr, addr net.Addr) (int, error) {
	bp := buffers.Get().(*[]byte)
	defer buffers.Put(bp)
	b, err := socks5.Datagram{Addr: dst, Payload: p}.AppendBinary((*bp)[:0])
	if err == nil && len(b) > maxDatagram {
		err = errors.New("dialer: datagram and SOCKS header longer than 65535 bytes")
	}
	if err != nil {
		return 0, pc.opError("write", addr, err)
	}
	if _, err := pc.udp.Write(b); err != nil {
		return 0, pc.ioError(err)
	}
	return len(p), nil
}

// ReadFrom reads the next datagram that the relay passes on, copies its
// payload into p and returns the payload's length and its sender, the
// address in its SOCKS header: a *[net.UDPAddr], or a [socks5.Addr] when
// the proxy names the sender. As for a UDP socket, a payload longer than p
// is cut to fit.
//
// Datagrams that do not come from the relay's address, that have a
// malformed header, or that are fragments (FRAG other than 0: this client
// does not reassemble, as RFC 1928 allows) are dropped, and ReadFrom reads
// on.
func (pc *PacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	payload, from, bp, err := pc.read()
	if err != nil {
		return 0, nil, err
	}
	n := copy(p, payload)
	buffers.Put(bp)
	return n, netAddr(from, "udp"), nil
}

// read returns the next datagram's payload, in the buffer *bp, which the
// caller puts back, and its sender.
func (pc *PacketConn) read() ([]byte, socks5.Addr, *[]byte, error) {
	bp := buffers.Get().(*[]byte)
	for {
		n, src, err := pc.udp.ReadFromUDPAddrPort(*bp)
		if err != nil {
			buffers.Put(bp)
			return nil, socks5.Addr{}, nil, pc.ioError(err)
		}
		if payload, from, ok := unwrapDatagram((*bp)[:n], src, pc.relay); ok {
			return payload, from, bp, nil
		}
	}
}

// unwrapDatagram returns the payload and the sender of b, a datagram that
// came from src, and false when it is to be dropped: src is not the relay,
// the header is malformed, or the datagram is a fragment.
func unwrapDatagram(b []byte, src, relay netip.AddrPort) ([]byte, socks5.Addr, bool) {
	if src.Port() != relay.Port() || src.Addr().Unmap() != relay.Addr() {
		return nil, socks5.Addr{}, false
	}
	d, err := socks5.ParseDatagram(b)
	if err != nil || d.Frag != 0 {
		return nil, socks5.Addr{}, false
	}
	if d.Addr.Name == "" {
		d.Addr.IP = d.Addr.IP.Unmap()
	}
	return d.Payload, d.Addr, true
}

// ioError returns the error of a read or write on the socket: the
// association's end, when the proxy has ended it.
func (pc *PacketConn) ioError(err error) error {
	if pc.ended.Load() && !pc.closed.Load() {
		op := "read"
		if oe, ok := errors.AsType[*net.OpError](err); ok {
			op = oe.Op
		}
		return pc.opError(op, nil, ErrAssociationClosed)
	}
	return err
}

func (pc *PacketConn) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: "udp", Source: pc.udp.LocalAddr(), Addr: addr, Err: err}
}

// Close ends the association: it closes the control connection and the
// socket.
func (pc *PacketConn) Close() error {
	var err error
	pc.once.Do(func() {
		pc.closed.Store(true)
		pc.ctrl.Close()
		err = pc.udp.Close()
		<-pc.watched
		if pc.ended.Load() {
			err = nil // closed already, by the proxy's end
		}
	})
	return err
}

// LocalAddr returns the local address datagrams are sent from.
func (pc *PacketConn) LocalAddr() net.Addr { return pc.udp.LocalAddr() }

// RelayAddr returns the address of the proxy's relay, where the datagrams
// go.
func (pc *PacketConn) RelayAddr() net.Addr { return net.UDPAddrFromAddrPort(pc.relay) }

// SetDeadline sets the read and write deadlines, as a UDP socket's.
func (pc *PacketConn) SetDeadline(t time.Time) error {
	pc.setWriteDeadline(t)
	return pc.udp.SetDeadline(t)
}

// SetReadDeadline sets the deadline of ReadFrom.
func (pc *PacketConn) SetReadDeadline(t time.Time) error { return pc.udp.SetReadDeadline(t) }

// SetWriteDeadline sets the deadline of WriteTo.
func (pc *PacketConn) SetWriteDeadline(t time.Time) error {
	pc.setWriteDeadline(t)
	return pc.udp.SetWriteDeadline(t)
}

func (pc *PacketConn) setWriteDeadline(t time.Time) {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	pc.writeDeadline.Store(ns)
}

// dialUDP is DialContext for a UDP network: an association whose
// datagrams all go to address.
func (d *Dialer) dialUDP(ctx context.Context, network, address string) (net.Conn, error) {
	target, err := socks5.ParseAddr(address)
	if err != nil {
		return nil, d.opError(cmdUDP.op, network, nil, err)
	}
	dst, err := d.destination(ctx, network, target)
	if err != nil {
		return nil, d.opError(cmdUDP.op, network, target, err)
	}
	pc, err := d.listenPacket(ctx, network, "", target)
	if err != nil {
		return nil, err
	}
	return &udpConn{PacketConn: pc, dst: dst, remote: netAddr(dst, "udp")}, nil
}

// udpConn is a PacketConn bound to one destination, as a connected UDP
// socket is.
type udpConn struct {
	*PacketConn
	dst    socks5.Addr
	remote net.Addr
}

// Read reads the payload of the next datagram from the destination. When
// the destination is a name sent to the proxy, the proxy reports the
// sender by its address, and every datagram is taken.
func (c *udpConn) Read(p []byte) (int, error) {
	for {
		payload, from, bp, err := c.read()
		if err != nil {
			return 0, err
		}
		if c.dst.Name == "" && from != c.dst {
			buffers.Put(bp)
			continue
		}
		n := copy(p, payload)
		buffers.Put(bp)
		return n, nil
	}
}

// Write sends p as one datagram to the destination.
func (c *udpConn) Write(p []byte) (int, error) { return c.write(p, c.dst, c.remote) }

// RemoteAddr returns the destination.
func (c *udpConn) RemoteAddr() net.Addr { return c.remote }
