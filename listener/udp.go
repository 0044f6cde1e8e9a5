package listener

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/socks5"
)

// UDP ASSOCIATE (RFC 1928, section 7), SOCKS5 only, served when
// Config.UDP is set.
//
// An association is a session with two sockets and three goroutines:
//
//   - the relay socket, bound on the IP address the control connection
//     arrived on (never on every interface), on an ephemeral port, told to
//     the client in the reply (or Config.UDPAdvertise with its port). It
//     takes datagrams from the client's IP address only, and from one
//     port: the one the request declared (DST.PORT, when DST.ADDR is the
//     unspecified address or the client's own), or else the one the
//     first well-formed datagram came from. Anything else is dropped, and
//     so are datagrams whose header is malformed, fragments (FRAG other
//     than 0: the listener does not reassemble, as RFC 1928 allows), and
//     datagrams to port 0;
//   - the outbound socket, from Config.UDPListener, which sends each
//     payload to its destination and receives the answers. A destination
//     named by a name is resolved through Config.Resolver, the answer
//     kept for the association (a minute at most); the policy is asked
//     about each new destination (the Request with Target the datagram's
//     destination and DialedIP the address it goes to), and its answer
//     is kept for the association too. Datagrams to a denied destination
//     are dropped. Answers pass back to the client, wrapped in a header
//     naming their sender, as Config.UDPFilter says: by default only from
//     the addresses and ports the client has sent to.
//
// The association ends when its control connection closes (or sends
// anything but bytes to discard: it reads to its end), when IdleTimeout
// passes with no datagram either way, when the outbound socket fails (an
// upstream association that ended), or when the listener's Close or
// Shutdown closes it; both sockets are closed at once. Its record counts
// the datagrams relayed each way, and their payloads' bytes.

// A PacketListener opens packet sockets, as [net.ListenPacket] does:
// *net.ListenConfig is one, and so is the SOCKS client's Dialer
// ([github.com/sockstap/sockstap/dialer.Dialer]), whose sockets send
// through an upstream proxy's UDP association.
type PacketListener interface {
	ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error)
}

// PacketListenerFunc is a function that is a [PacketListener]: for a
// program that picks an outbound socket per client or per user, from the
// [Request] its context carries ([FromContext]).
type PacketListenerFunc func(ctx context.Context, network, address string) (net.PacketConn, error)

// ListenPacket calls f.
func (f PacketListenerFunc) ListenPacket(ctx context.Context, network, address string) (net.PacketConn, error) {
	return f(ctx, network, address)
}

// A UDPFilter says which datagrams arriving at an association's outbound
// socket are passed on to its client. The filters are those of RFC 4787
// (NAT behavioral requirements for UDP), section 5: the stricter the
// filter, the fewer hosts can reach the client through the relay.
type UDPFilter uint8

const (
	// UDPFilterAddrPort passes datagrams from an address and port the
	// client has sent a datagram to, which the policy allowed (RFC 4787's
	// address and port-dependent filtering). The default: a client
	// hears from the hosts it talks to and no one else.
	UDPFilterAddrPort UDPFilter = iota

	// UDPFilterAddr passes datagrams from any port of an address the
	// client has sent to (address-dependent filtering): for protocols
	// whose servers answer from another port (TFTP, some games).
	UDPFilterAddr

	// UDPFilterNone passes every datagram (endpoint-independent
	// filtering), as peer-to-peer programs behind the relay need (STUN,
	// ICE, BitTorrent's DHT): anyone who learns the outbound socket's
	// address can then send to the client. The policy is asked about the
	// client's destinations, not about these senders.
	UDPFilterNone
)

// String returns "addr-port", "addr" or "none".
func (f UDPFilter) String() string {
	switch f {
	case UDPFilterAddrPort:
		return "addr-port"
	case UDPFilterAddr:
		return "addr"
	case UDPFilterNone:
		return "none"
	}
	return "UDPFilter(" + strconv.Itoa(int(f)) + ")"
}

// Bounds of an association's caches: past them, a cache is emptied and
// filled anew, so that a client that sends to ever new destinations holds
// no more memory than this. The policy is then asked again, and answers
// from the destinations forgotten are dropped until the client sends to
// them again.
const (
	maxDestinations = 4096
	maxNames        = 1024
	nameTTL         = time.Minute
)

// maxDatagram is the size of the buffers datagrams are read into: the
// largest UDP payload, and more than any IPv4 or IPv6 datagram without
// jumbograms carries.
const maxDatagram = 65535

// readBuffer is the receive buffer asked for on an association's sockets
// (SO_RCVBUF; Linux caps it at net.core.rmem_max, and doubles it for its
// own accounting): room for a burst of some 400 datagrams of 1,400 bytes,
// which the default (212,992 bytes on Linux) would drop past a hundred.
// It is a limit, not memory held: the kernel takes only what is queued.
const readBuffer = 1 << 20

// headroom is the room kept before an answer read from the outbound
// socket, for the SOCKS header that goes in front of it: RSV, FRAG, ATYP,
// an IPv6 address and a port.
const headroom = 3 + 1 + 16 + 2

var (
	errTooManyAssociations = errors.New("too many UDP associations")
	errNoRelayAddr         = errors.New("listener: the control connection's local address is not an IP address to bind a UDP relay on")
	errIdle                = errors.New("listener: UDP association idle")
)

// associations counts the associations under way, for the limits.
type associations struct {
	mu        sync.Mutex
	n         int
	perClient map[netip.Addr]int
}

// take counts an association of client key, or reports false when a
// limit (not positive: none) is reached.
func (a *associations) take(key netip.Addr, max, maxPerClient int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if max > 0 && a.n >= max || maxPerClient > 0 && a.perClient[key] >= maxPerClient {
		return false
	}
	if a.perClient == nil {
		a.perClient = make(map[netip.Addr]int)
	}
	a.n++
	a.perClient[key]++
	return true
}

func (a *associations) release(key netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n--
	if a.perClient[key]--; a.perClient[key] <= 0 {
		delete(a.perClient, key)
	}
}

// assocSlot is an association's place in the count: a resource of the
// session, so that however the session ends, the slot is given back once.
type assocSlot struct {
	a    *associations
	key  netip.Addr
	once sync.Once
}

func (s *assocSlot) Close() error {
	s.once.Do(func() { s.a.release(s.key) })
	return nil
}

// packetListener returns the listener's PacketListener.
func (l *Listener) packetListener() PacketListener {
	if l.cfg.UDPListener != nil {
		return l.cfg.UDPListener
	}
	return &net.ListenConfig{}
}

// associate serves UDP ASSOCIATE: it opens the relay and the outbound
// sockets, answers with the relay's address, and starts the association's
// goroutines, which end the session.
func (s *session) associate() {
	l := s.l
	key := clientKey(s.req.ClientIP())
	if !l.assoc.take(key, l.cfg.MaxAssociations, l.cfg.MaxAssociationsPerClient) {
		s.refuse(&socks5.ReplyError{Reply: socks5.GeneralFailure, Err: errTooManyAssociations}, errTooManyAssociations.Error())
		return
	}
	if !s.t.add(&assocSlot{a: &l.assoc, key: key}) {
		s.fail(net.ErrClosed)
		return
	}
	local := ipOf(s.req.Local)
	if !local.IsValid() || local.IsUnspecified() {
		s.refuse(errNoRelayAddr, "no address for the relay")
		return
	}
	ctx, cancel := context.WithTimeout(NewContext(l.ctx, s.req), l.cfg.DialTimeout)
	defer cancel()
	relay, err := listenRelay(ctx, local)
	if err != nil {
		s.refuse(err, "relay socket")
		return
	}
	if !s.t.add(relay) {
		s.fail(net.ErrClosed)
		return
	}
	relay.SetReadBuffer(readBuffer)
	out, err := l.packetListener().ListenPacket(ctx, "udp", ":0")
	if err == nil && out == nil {
		err = errors.New("listener: UDPListener returned no socket")
	}
	if err != nil {
		s.refuse(err, "outbound socket")
		return
	}
	if !s.t.add(out) || !l.startRelay(s.t) {
		s.fail(net.ErrClosed)
		return
	}
	bound := relay.LocalAddr().(*net.UDPAddr).AddrPort()
	if l.cfg.UDPAdvertise.IsValid() {
		bound = netip.AddrPortFrom(l.cfg.UDPAdvertise, bound.Port())
	}
	if s.reply(nil, socks5.AddrFromAddrPort(bound)) != nil {
		s.fail(nil)
		return
	}
	s.rec.Decision = DecisionAssociate
	a := newAssociation(s, relay, out)
	// The handshake's reader and its reply are done with.
	s.br, s.rd, s.data, s.replyFn = nil, nil, nil, nil
	a.loops.Add(2)
	s.spawn(a.fromClient)
	s.spawn(a.toClient)
	s.spawn(a.watch)
}

// listenRelay opens a relay socket on ip, on an ephemeral port.
func listenRelay(ctx context.Context, ip netip.Addr) (*net.UDPConn, error) {
	network := "udp4"
	if ip.Is6() {
		network = "udp6"
	}
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, network, netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// An association is a UDP ASSOCIATE under way.
type association struct {
	s      *session
	relay  *net.UDPConn   // the client's side
	out    net.PacketConn // the destinations' side
	outUDP *net.UDPConn   // out, when it is a UDP socket

	clientIP netip.Addr
	// clientPort is the port the client sends from: declared, or the
	// first well-formed datagram's; 0 until known. Set by fromClient,
	// read by toClient.
	clientPort atomic.Uint32

	// sentTo holds the destinations the client has sent to that the
	// policy allowed (netip.AddrPort keys; port 0 for UDPFilterAddr):
	// written by fromClient, read by toClient.
	sentTo sync.Map

	// fromClient's own caches: the policy's answers, and names resolved.
	dests     map[destKey]destAnswer
	names     map[string]nameAnswer
	resolveIn string // the network names are resolved in: ip, ip4, ip6

	loops    sync.WaitGroup // fromClient and toClient
	stopOnce sync.Once
	cause    error // why it stopped; set once, by stop
}

// destKey is a destination as the client named it: a name, if it sent
// one, and the address it goes to.
type destKey struct {
	name string
	ap   netip.AddrPort
}

type destAnswer struct {
	allowed bool
	addr    *net.UDPAddr // ap as a net.Addr, for a socket that is not a *net.UDPConn
}

type nameAnswer struct {
	ips     []netip.Addr
	expires time.Time
}

func newAssociation(s *session, relay *net.UDPConn, out net.PacketConn) *association {
	a := &association{
		s:         s,
		relay:     relay,
		out:       out,
		clientIP:  s.req.ClientIP(),
		dests:     make(map[destKey]destAnswer),
		names:     make(map[string]nameAnswer),
		resolveIn: "ip",
	}
	a.outUDP, _ = out.(*net.UDPConn)
	if a.outUDP != nil {
		a.outUDP.SetReadBuffer(readBuffer)
	}
	if la, ok := out.LocalAddr().(*net.UDPAddr); ok && la != nil {
		switch ip := la.AddrPort().Addr(); {
		case ip.Unmap().Is4():
			a.resolveIn = "ip4"
		case ip.Is6() && !ip.IsUnspecified():
			a.resolveIn = "ip6"
		}
	}
	// The declared address counts when it is the client's own, or says
	// nothing of the address: one behind a NAT is not the address the
	// datagrams will come from, nor, most likely, its port.
	if t := s.req.Target; t.Name == "" && t.Port != 0 &&
		(!t.IP.IsValid() || t.IP.IsUnspecified() || t.IP.Unmap() == a.clientIP) {
		a.clientPort.Store(uint32(t.Port))
	}
	return a
}

// stop ends the association's traffic, once: it closes both sockets and
// the control connection, so that every goroutine of the association
// returns. cause is why, kept for the record.
func (a *association) stop(cause error) {
	a.stopOnce.Do(func() {
		a.cause = cause
		a.s.t.closeAll(false)
	})
}

// watch waits for the association's end: its control connection's close,
// an idle spell, or a stop by a loop. It then waits for the loops and
// ends the session.
func (a *association) watch() {
	s := a.s
	idle := s.l.cfg.IdleTimeout
	var buf [256]byte
	var moved int64
	for {
		if idle > 0 {
			s.conn.SetReadDeadline(time.Now().Add(idle))
		}
		_, err := s.conn.Read(buf[:])
		if err == nil {
			continue // nothing the client sends on it means anything
		}
		if idle > 0 && deadline.IsTimeout(err) {
			now := s.traffic.datagramsUp.Load() + s.traffic.datagramsDown.Load()
			if now != moved {
				moved = now
				continue
			}
			a.stop(errIdle)
			break
		}
		if errors.Is(err, io.EOF) {
			err = nil // the client ended it: the association's normal end
		}
		a.stop(err)
		break
	}
	a.loops.Wait()
	s.rec.Cause = a.cause
	if err := s.l.relayCtx.Err(); err != nil {
		s.rec.Cause = err // closed by Close or Shutdown
	}
	s.end()
}

// fromClient relays the client's datagrams to their destinations, until
// the relay socket is closed.
func (a *association) fromClient() {
	defer a.loops.Done()
	buf := make([]byte, maxDatagram)
	for {
		n, src, err := a.relay.ReadFromUDPAddrPort(buf)
		if err != nil {
			a.stop(err)
			return
		}
		if !a.up(buf[:n], src) {
			return
		}
	}
}

// up relays one datagram b that came from src to its destination, or
// drops it; it reports false when the association is over.
func (a *association) up(b []byte, src netip.AddrPort) bool {
	if src.Addr().Unmap() != a.clientIP {
		return true // a stranger's
	}
	port := uint16(a.clientPort.Load())
	if port != 0 && src.Port() != port {
		return true // the client's host, another program's port
	}
	d, err := socks5.ParseDatagram(b)
	if err != nil || d.Frag != 0 || d.Addr.Port == 0 {
		return true
	}
	if port == 0 { // the first: the client's port from now on
		a.clientPort.Store(uint32(src.Port()))
	}
	dst, ok := a.destination(d.Addr)
	if !ok {
		return true
	}
	if a.outUDP != nil {
		_, err = a.outUDP.WriteToUDPAddrPort(d.Payload, dst.ap)
	} else {
		_, err = a.out.WriteTo(d.Payload, dst.addr)
	}
	if err != nil {
		if errors.Is(err, net.ErrClosed) {
			return false
		}
		return true // this destination cannot be reached; others may
	}
	t := &a.s.traffic
	t.datagramsUp.Add(1)
	t.bytesUp.Add(int64(len(d.Payload)))
	return true
}

// sentDest is where a datagram goes.
type sentDest struct {
	ap   netip.AddrPort
	addr *net.UDPAddr
}

// destination returns where a datagram to to goes, resolving a name and
// asking the policy about a destination new to the association; false
// when it goes nowhere (denied, not resolved).
func (a *association) destination(to socks5.Addr) (sentDest, bool) {
	if to.Name == "" {
		ap := netip.AddrPortFrom(to.IP.Unmap(), to.Port)
		if d, ok := a.dests[destKey{ap: ap}]; ok {
			return sentDest{ap, d.addr}, d.allowed
		}
		return a.decide(to, []netip.Addr{ap.Addr()})
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(to.Name); err == nil { // an address, sent as a name
		ips = []netip.Addr{ip.Unmap().WithZone("")}
	} else {
		ips = a.resolve(to.Name)
	}
	if len(ips) == 1 { // the usual case: one lookup in the cache
		ap := netip.AddrPortFrom(ips[0], to.Port)
		if d, ok := a.dests[destKey{to.Name, ap}]; ok {
			return sentDest{ap, d.addr}, d.allowed
		}
	}
	return a.decide(to, ips)
}

// decide asks the policy about the datagram's destination to, at each of
// ips in turn, and keeps its answers: the first address allowed is where
// the datagram goes.
func (a *association) decide(to socks5.Addr, ips []netip.Addr) (sentDest, bool) {
	l := a.s.l
	if len(a.dests) >= maxDestinations {
		clear(a.dests)
		a.sentTo.Clear()
	}
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip, to.Port)
		key := destKey{to.Name, ap}
		if d, ok := a.dests[key]; ok {
			if d.allowed {
				return sentDest{ap, d.addr}, true
			}
			continue
		}
		r := *a.s.req
		r.Target = to
		r.DialedIP = ip
		ctx, cancel := context.WithTimeout(NewContext(l.relayCtx, &r), l.cfg.DialTimeout)
		err := l.policy(ctx, &r)
		cancel()
		d := destAnswer{allowed: err == nil, addr: net.UDPAddrFromAddrPort(ap)}
		a.dests[key] = d
		if d.allowed {
			a.sent(ap)
			return sentDest{ap, d.addr}, true
		}
	}
	return sentDest{}, false
}

// sent notes that the client sends to ap, for the filter.
func (a *association) sent(ap netip.AddrPort) {
	switch a.s.l.cfg.UDPFilter {
	case UDPFilterAddrPort:
	case UDPFilterAddr:
		ap = netip.AddrPortFrom(ap.Addr(), 0)
	default:
		return
	}
	a.sentTo.Store(ap, struct{}{})
}

// resolve returns the addresses of name, from the cache or the resolver;
// none when it does not resolve.
func (a *association) resolve(name string) []netip.Addr {
	now := time.Now()
	if n, ok := a.names[name]; ok && now.Before(n.expires) {
		return n.ips
	}
	if len(a.names) >= maxNames {
		clear(a.names)
	}
	l := a.s.l
	ctx, cancel := context.WithTimeout(NewContext(l.relayCtx, a.s.req), l.cfg.DialTimeout)
	ips, err := l.resolver().LookupNetIP(ctx, a.resolveIn, name)
	cancel()
	if err != nil {
		ips = nil
	}
	for i, ip := range ips {
		ips[i] = ip.Unmap()
	}
	a.names[name] = nameAnswer{ips: ips, expires: now.Add(nameTTL)}
	return ips
}

// toClient passes the datagrams that arrive at the outbound socket on to
// the client, as the filter says, until the socket is closed or fails.
func (a *association) toClient() {
	defer a.loops.Done()
	buf := make([]byte, headroom+maxDatagram)
	hdr := make([]byte, 0, 3+1+1+socks5.MaxNameLen+2)
	for {
		var from socks5.Addr
		var n int
		var err error
		if a.outUDP != nil {
			var ap netip.AddrPort
			n, ap, err = a.outUDP.ReadFromUDPAddrPort(buf[headroom:])
			from = socks5.AddrFromAddrPort(ap)
		} else {
			var na net.Addr
			n, na, err = a.out.ReadFrom(buf[headroom:])
			if err == nil {
				from, err = socks5.AddrFromNet(na)
				if err != nil {
					continue // a sender it cannot name
				}
			}
		}
		if err != nil {
			a.stop(err)
			return
		}
		if !a.down(buf, n, from, hdr) {
			return
		}
	}
}

// down passes the datagram from from, whose n bytes are in buf after
// headroom, on to the client, or drops it; it reports false when the
// association is over.
func (a *association) down(buf []byte, n int, from socks5.Addr, hdr []byte) bool {
	if !a.passes(from) {
		return true
	}
	port := uint16(a.clientPort.Load())
	if port == 0 {
		return true // the client has not sent yet: it is nowhere to send to
	}
	hdr, err := socks5.Datagram{Addr: from}.AppendBinary(hdr[:0])
	if err != nil {
		return true
	}
	var b []byte
	if len(hdr) <= headroom {
		start := headroom - len(hdr)
		copy(buf[start:], hdr)
		b = buf[start : headroom+n]
	} else { // a name longer than an IPv6 address: no room in front
		b = append(hdr, buf[headroom:headroom+n]...)
	}
	if _, err := a.relay.WriteToUDPAddrPort(b, netip.AddrPortFrom(a.clientIP, port)); err != nil {
		return !errors.Is(err, net.ErrClosed)
	}
	t := &a.s.traffic
	t.datagramsDown.Add(1)
	t.bytesDown.Add(int64(n))
	return true
}

// passes reports whether the filter passes a datagram from from on to
// the client.
func (a *association) passes(from socks5.Addr) bool {
	f := a.s.l.cfg.UDPFilter
	if f == UDPFilterNone {
		return true
	}
	if from.Name != "" { // an upstream proxy named the sender: no address to match
		return false
	}
	ap := netip.AddrPortFrom(from.IP, from.Port)
	if f == UDPFilterAddr {
		ap = netip.AddrPortFrom(from.IP, 0)
	}
	_, ok := a.sentTo.Load(ap)
	return ok
}
