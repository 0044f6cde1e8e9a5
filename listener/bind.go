package listener

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/socks5"
)

// DefaultBindTimeout is how long BIND waits for its peer when
// Config.BindTimeout is zero: the SOCKS4 document's two minutes.
const DefaultBindTimeout = 2 * time.Minute

// Errors of BIND, each answered with the code its comment gives.
var (
	// errBindNoAddr: the client's connection has no IP address of ours
	// to listen on (a wrapper's connection that does not know it).
	// SOCKS5 0x01, SOCKS4 91.
	errBindNoAddr = errors.New("listener: BIND: the connection's local address is not an IP address to listen on")

	// errBindIPv6: the client came in over IPv6, which a SOCKS4 reply
	// cannot carry. 91.
	errBindIPv6 = errors.New("listener: BIND: SOCKS4 cannot name the IPv6 address listened on")

	// errClientGone: the client closed its connection while BIND waited
	// for the peer. No reply.
	errClientGone = errors.New("listener: BIND: the client closed its connection while waiting for the peer")
)

// bind serves BIND, SOCKS4's and SOCKS5's, as Config.Bind says: it
// listens on the address the client's connection arrived at, answers
// with it, waits for one connection, checks that it comes from the host
// the request named and asks the policy about it, answers again with the
// peer's address, and relays between the two as CONNECT does.
//
// The listening socket is the session's (s.t), so that Close and Shutdown
// close it; bind closes it itself as soon as the peer has come, or the
// wait has failed.
func (s *session) bind() {
	l := s.l
	local, ok := bindIP(s.conn.LocalAddr())
	switch {
	case !ok:
		s.refuse(errBindNoAddr, "no address to listen on")
		return
	case s.req.Version == 4 && !local.Is4():
		s.refuse(errBindIPv6, "SOCKS4 BIND over IPv6")
		return
	}
	expected, err := s.expectedPeer()
	if err != nil {
		s.refuse(err, "cannot resolve the expected peer")
		return
	}
	ln, err := l.listenBind(local)
	if err != nil {
		s.refuse(err, "cannot listen")
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

	peer, err := s.awaitPeer(ln)
	ln.Close() // one peer: whoever comes next is refused by the system
	switch {
	case errors.Is(err, errClientGone):
		s.fail(err)
		return
	case deadline.IsTimeout(err):
		s.refuse(err, "no peer came in time")
		return
	case errors.Is(err, net.ErrClosed): // Close or Shutdown closed the listener
		s.fail(err)
		return
	case err != nil:
		s.refuse(err, "accepting the peer failed")
		return
	}
	if !s.t.add(peer) {
		s.fail(net.ErrClosed)
		return
	}
	peerAddr := peer.RemoteAddr().(*net.TCPAddr).AddrPort()
	peerIP := peerAddr.Addr().Unmap()
	if expected != nil && !slices.Contains(expected, peerIP) {
		s.refuse(&denied{Deny(fmt.Sprintf("BIND peer %v is not %s, the host the request named", peerIP, s.req.Target.Host()))}, "")
		return
	}
	if err := s.l.allowedDialing(s.req, peerIP); err != nil {
		s.refuse(err, "")
		return
	}
	if !l.startRelay(s.t) {
		s.fail(net.ErrClosed)
		return
	}
	if s.reply(nil, socks5.AddrFromAddrPort(peerAddr)) != nil {
		s.fail(nil)
		return
	}
	s.splice(peer, DecisionBind)
}

// bindIP returns the IP address of a, the local address of a client's
// connection, for BIND to listen on: IPv4-mapped IPv6 addresses (a
// dual-stack listener's) become IPv4, and a zone is kept, for a
// link-local address. It reports false for an address that is not a
// TCP/IP one, or is unspecified.
func bindIP(a net.Addr) (netip.Addr, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta == nil {
		return netip.Addr{}, false
	}
	ip := ta.AddrPort().Addr().Unmap()
	if !ip.IsValid() || ip.IsUnspecified() {
		return netip.Addr{}, false
	}
	return ip, true
}

// expectedPeer returns the addresses the peer may come from: the
// request's IP address, or its name's addresses, looked up with the
// listener's resolver within DialTimeout. It returns nil, for any peer,
// when the request names an unspecified address (0.0.0.0 or ::), as
// clients do that do not know who will connect; the policy still decides
// about the peer once it has come.
func (s *session) expectedPeer() ([]netip.Addr, error) {
	t := s.req.Target
	if t.Name == "" {
		if t.IP.Unmap().IsUnspecified() {
			return nil, nil
		}
		return []netip.Addr{t.IP.Unmap().WithZone("")}, nil
	}
	ctx, cancel := context.WithTimeout(s.l.ctx, s.l.cfg.DialTimeout)
	defer cancel()
	ips, err := s.l.resolver().LookupNetIP(ctx, "ip", t.Name)
	if err == nil && len(ips) == 0 {
		err = &net.DNSError{Err: "no such host", Name: t.Name, IsNotFound: true}
	}
	if err != nil {
		return nil, err
	}
	for i, ip := range ips {
		ips[i] = ip.Unmap().WithZone("")
	}
	return ips, nil
}

// listenBind listens on ip, on a port of Config.BindPorts or an ephemeral
// one. In a range it starts at a random port and tries each in turn until
// one is free.
func (l *Listener) listenBind(ip netip.Addr) (*net.TCPListener, error) {
	network := "tcp6"
	if ip.Is4() {
		network = "tcp4"
	}
	listen := func(port uint16) (*net.TCPListener, error) {
		return net.ListenTCP(network, net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, port)))
	}
	r := l.cfg.BindPorts
	if r == (PortRange{}) {
		return listen(0)
	}
	first := max(r.First, 1)
	if first > r.Last {
		return nil, fmt.Errorf("listener: BIND: Config.BindPorts %d-%d is empty", r.First, r.Last)
	}
	n := int(r.Last-first) + 1
	start := rand.IntN(n)
	var err error
	for i := range n {
		var ln *net.TCPListener
		if ln, err = listen(first + uint16((start+i)%n)); err == nil {
			return ln, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			break
		}
	}
	return nil, fmt.Errorf("listener: BIND: no port free in %d-%d: %w", first, r.Last, err)
}

// bindTimeout is Config.BindTimeout, or its default.
func (l *Listener) bindTimeout() time.Duration {
	if l.cfg.BindTimeout > 0 {
		return l.cfg.BindTimeout
	}
	return DefaultBindTimeout
}

// awaitPeer waits for one connection on ln, at most BindTimeout, while it
// watches the client's connection: a client that closes it ends the wait
// (errClientGone). Close and Shutdown close ln, which ends the wait too.
//
// The client should send nothing before the second reply; what it sends
// all the same is kept, read ahead into s.rd, and relayed to the peer
// once it has come. Once the read-ahead buffer is full, the client is no
// longer watched, and only the timeout ends a wait for a peer that never
// comes.
func (s *session) awaitPeer(ln *net.TCPListener) (*net.TCPConn, error) {
	ln.SetDeadline(time.Now().Add(s.l.bindTimeout()))
	var gone, stopping atomic.Bool
	watched := make(chan struct{})
	rd := s.rd
	s.spawn(func() {
		defer close(watched)
		for n := rd.Buffered() + 1; n <= rd.Size(); n = rd.Buffered() + 1 {
			if _, err := rd.Peek(n); err != nil {
				if !stopping.Load() {
					gone.Store(true)
					ln.Close() // wakes Accept
				}
				return
			}
		}
	})
	peer, err := ln.AcceptTCP()
	// Wake the watcher, and wait for it: the relay reads s.rd next.
	stopping.Store(true)
	s.conn.SetReadDeadline(time.Unix(1, 0))
	<-watched
	s.conn.SetReadDeadline(time.Time{})
	switch {
	case s.l.ctx.Err() != nil: // Close or Shutdown, whose closing the watcher may have seen first
		err = net.ErrClosed
	case gone.Load():
		err = errClientGone
	default:
		return peer, err
	}
	if peer != nil {
		peer.Close()
	}
	return nil, err
}

// allowedDialing asks the policy about r with DialedIP set to ip: about
// BIND's peer once it has come, or RESOLVE's answer. A program's policy
// thus sees a BIND request twice, as it sees a relayed CONNECT: when it
// arrives, and with DialedIP the address of the peer that came.
func (l *Listener) allowedDialing(r *Request, ip netip.Addr) error {
	dr := *r
	dr.DialedIP = ip
	ctx, cancel := context.WithTimeout(NewContext(l.ctx, &dr), l.cfg.HandshakeTimeout)
	defer cancel()
	return l.policy(ctx, &dr)
}
