package dialer

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/net/proxy"
)

// ListenPacket returns a [net.PacketConn] whose datagrams each take the
// route for their destination: through a UDP association with the route's
// peers (see [Dialer.ListenPacket]), or directly from a local UDP socket
// on address ("" for any), as network says. ReadFrom returns the
// datagrams that come back by any of them.
//
// An association is made on the first datagram to a destination of its
// route, with failover among the route's peers, bounded by PeerTimeout and
// by the write deadline; it is kept for the next datagrams of that route,
// and made again should the proxy end it. ctx bounds only the local
// socket's creation. LocalAddr is that socket's address.
func (r *Router) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	var lc net.ListenConfig
	c, err := lc.ListenPacket(ctx, network, address)
	if err != nil {
		return nil, err
	}
	rc := &routedPacketConn{
		r: r, network: network, direct: c,
		legs: map[int]net.PacketConn{}, in: make(chan routedDatagram),
		done: make(chan struct{}), readDeadline: newDeadline(),
	}
	rc.start(-2, c)
	return rc, nil
}

// routedPacketConn is a Router's PacketConn: a direct socket, and an
// association (a leg) for each route that a datagram has taken.
type routedPacketConn struct {
	r       *Router
	network string
	direct  net.PacketConn

	mu            sync.Mutex // legs, writeDeadline; held while a leg is made
	legs          map[int]net.PacketConn
	writeDeadline time.Time

	in           chan routedDatagram // from each leg's reader
	done         chan struct{}       // closed by Close
	closing      sync.Once
	readers      sync.WaitGroup
	readDeadline *waitDeadline
}

// routedDatagram is a datagram read on a leg.
type routedDatagram struct {
	payload []byte
	from    net.Addr
}

// start reads the datagrams of c, the leg of route, until c fails.
func (rc *routedPacketConn) start(route int, c net.PacketConn) {
	rc.readers.Go(func() {
		buf := make([]byte, maxDatagram)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				rc.mu.Lock()
				if rc.legs[route] == c {
					delete(rc.legs, route) // ended by the proxy: the next datagram makes another
				}
				rc.mu.Unlock()
				c.Close()
				return
			}
			select {
			case rc.in <- routedDatagram{payload: append([]byte(nil), buf[:n]...), from: from}:
			case <-rc.done:
				return
			}
		}
	})
}

// ReadFrom reads the next datagram to come back, by any route.
func (rc *routedPacketConn) ReadFrom(p []byte) (int, net.Addr, error) {
	select {
	case d := <-rc.in:
		return copy(p, d.payload), d.from, nil
	case <-rc.done:
		return 0, nil, rc.opError("read", nil, net.ErrClosed)
	case <-rc.readDeadline.wait():
		return 0, nil, rc.opError("read", nil, os.ErrDeadlineExceeded)
	}
}

// WriteTo sends p to addr, a *net.UDPAddr or a socks5.Addr, by the route
// for addr.
func (rc *routedPacketConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	select {
	case <-rc.done:
		return 0, rc.opError("write", addr, net.ErrClosed)
	default:
	}
	if addr == nil {
		return 0, rc.opError("write", nil, errNoDestination)
	}
	dest := addr.String()
	route, peers := rc.r.routeIndex(dest)
	if len(peers) == 0 {
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			var err error
			if ua, err = net.ResolveUDPAddr(rc.network, dest); err != nil {
				return 0, rc.opError("write", addr, err)
			}
		}
		return rc.direct.WriteTo(p, ua)
	}
	leg, err := rc.leg(route, peers, dest)
	if err != nil {
		return 0, err
	}
	return leg.WriteTo(p, addr)
}

// leg returns the association of route, made through peers if there is
// none yet.
func (rc *routedPacketConn) leg(route int, peers []proxy.ContextDialer, dest string) (net.PacketConn, error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if leg := rc.legs[route]; leg != nil {
		return leg, nil
	}
	ctx := context.Background()
	if !rc.writeDeadline.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, rc.writeDeadline)
		defer cancel()
	}
	var leg net.PacketConn
	err := rc.r.try(ctx, peers, cmdUDP.op, rc.network, dest, func(ctx context.Context, p proxy.ContextDialer) error {
		pl, ok := p.(PacketListener)
		if !ok {
			return &unreachableError{errors.New("peer " + peerName(p) + " has no UDP ASSOCIATE")}
		}
		var err error
		leg, err = pl.ListenPacket(ctx, rc.network, "")
		return err
	})
	if err != nil {
		return nil, err
	}
	select {
	case <-rc.done:
		leg.Close()
		return nil, rc.opError("write", nil, net.ErrClosed)
	default:
	}
	leg.SetWriteDeadline(rc.writeDeadline)
	rc.legs[route] = leg
	rc.start(route, leg)
	return leg, nil
}

func (rc *routedPacketConn) opError(op string, addr net.Addr, err error) error {
	return &net.OpError{Op: op, Net: rc.network, Source: rc.direct.LocalAddr(), Addr: addr, Err: err}
}

// Close closes the direct socket and every association.
func (rc *routedPacketConn) Close() error {
	var err error
	rc.closing.Do(func() {
		close(rc.done)
		err = rc.direct.Close()
		rc.mu.Lock()
		for _, leg := range rc.legs {
			leg.Close()
		}
		rc.mu.Unlock()
		rc.readers.Wait()
	})
	return err
}

// LocalAddr returns the address of the direct socket.
func (rc *routedPacketConn) LocalAddr() net.Addr { return rc.direct.LocalAddr() }

func (rc *routedPacketConn) SetDeadline(t time.Time) error {
	rc.SetReadDeadline(t)
	return rc.SetWriteDeadline(t)
}

func (rc *routedPacketConn) SetReadDeadline(t time.Time) error {
	rc.readDeadline.set(t)
	return nil
}

func (rc *routedPacketConn) SetWriteDeadline(t time.Time) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.writeDeadline = t
	for _, leg := range rc.legs {
		leg.SetWriteDeadline(t)
	}
	return rc.direct.SetWriteDeadline(t)
}

// waitDeadline is a settable deadline that a select can wait on.
type waitDeadline struct {
	mu     sync.Mutex
	timer  *time.Timer
	passed chan struct{} // closed when the deadline passes
}

func newDeadline() *waitDeadline { return &waitDeadline{passed: make(chan struct{})} }

// set sets the deadline; the zero time is none.
func (d *waitDeadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil && !d.timer.Stop() {
		d.passed = make(chan struct{}) // it fired, or is firing on the old channel
	}
	d.timer = nil
	select {
	case <-d.passed:
		d.passed = make(chan struct{})
	default:
	}
	if t.IsZero() {
		return
	}
	if wait := time.Until(t); wait > 0 {
		passed := d.passed
		d.timer = time.AfterFunc(wait, func() { close(passed) })
		return
	}
	close(d.passed)
}

// wait returns a channel closed once the deadline has passed.
func (d *waitDeadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.passed
}
