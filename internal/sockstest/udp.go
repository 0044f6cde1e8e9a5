package sockstest

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sockstap/sockstap/socks5"
)

// A UDPProxy is a SOCKS5 server on loopback that serves UDP ASSOCIATE
// only, with no authentication: the least relay that a client's tests
// need, while the listener has none. Each association gets a relay socket
// on 127.0.0.1, which passes the client's datagrams on to their
// destinations (IP addresses, or the name "localhost", taken for
// 127.0.0.1) and wraps what comes back in a header naming the sender. It
// ends when the client closes the control connection.
type UDPProxy struct {
	Addr string // the server's address, host:port

	mu      sync.Mutex
	ctrls   map[net.Conn]struct{}
	n       int
	live    int           // associations under way, sockets open
	changed chan struct{} // closed and replaced when live changes
}

// StartUDPProxy starts a UDPProxy; the test's cleanup stops it.
func StartUDPProxy(t testing.TB) *UDPProxy {
	t.Helper()
	p := &UDPProxy{ctrls: map[net.Conn]struct{}{}, changed: make(chan struct{})}
	p.Addr = Serve(t, p.serve).String()
	return p
}

// Associations returns how many associations the proxy has granted.
func (p *UDPProxy) Associations() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// WaitIdle waits until no association is under way and the sockets of
// those that were are closed, at most Timeout; it fails the test
// otherwise.
func (p *UDPProxy) WaitIdle(t testing.TB) {
	t.Helper()
	deadline := time.After(Timeout)
	for {
		p.mu.Lock()
		live, changed := p.live, p.changed
		p.mu.Unlock()
		if live == 0 {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("sockstest: %d associations still under way", live)
		}
	}
}

// setLive adds d to the associations under way.
func (p *UDPProxy) setLive(d int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.live += d
	close(p.changed)
	p.changed = make(chan struct{})
}

// EndAll closes the control connection of every association under way,
// as a proxy that shuts down or times out an association does.
func (p *UDPProxy) EndAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.ctrls {
		c.Close()
	}
}

func (p *UDPProxy) serve(c net.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	s, err := socks5.ServerHandshake(ctx, c, nil)
	cancel()
	if err != nil {
		return
	}
	if s.Request.Command != socks5.CmdUDPAssociate {
		s.Reply(socks5.CommandNotSupported, socks5.Addr{})
		return
	}
	p.setLive(1)
	defer p.setLive(-1)
	relay, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		s.Reply(socks5.GeneralFailure, socks5.Addr{})
		return
	}
	defer relay.Close()
	defer c.Close() // before live drops: Serve would close it only after
	// Counted, and found by EndAll, before the client knows of it.
	p.mu.Lock()
	p.ctrls[c] = struct{}{}
	p.n++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.ctrls, c)
		p.mu.Unlock()
	}()
	bound := socks5.AddrFromAddrPort(relay.LocalAddr().(*net.UDPAddr).AddrPort())
	if s.Reply(socks5.Succeeded, bound) != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		relayDatagrams(relay, c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr())
	}()
	io.Copy(io.Discard, c) // the association lasts as long as this connection
	relay.Close()
	<-done
}

// relayDatagrams passes datagrams between the client, the first sender
// from clientIP, and the destinations, until relay is closed.
func relayDatagrams(relay *net.UDPConn, clientIP netip.Addr) {
	var client netip.AddrPort
	buf := make([]byte, 65535)
	out := make([]byte, 0, 65535)
	for {
		n, src, err := relay.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
		if !client.IsValid() && src.Addr() == clientIP.Unmap() {
			client = src
		}
		if src == client {
			d, err := socks5.ParseDatagram(buf[:n])
			if err != nil || d.Frag != 0 {
				continue
			}
			ip := d.Addr.IP
			if d.Addr.Name == "localhost" {
				ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
			} else if d.Addr.Name != "" {
				continue
			}
			relay.WriteToUDPAddrPort(d.Payload, netip.AddrPortFrom(ip, d.Addr.Port))
			continue
		}
		if !client.IsValid() {
			continue
		}
		out, err = socks5.Datagram{Addr: socks5.AddrFromAddrPort(src), Payload: buf[:n]}.AppendBinary(out[:0])
		if err == nil {
			relay.WriteToUDPAddrPort(out, client)
		}
	}
}

// EchoUDP starts a UDP server on 127.0.0.1 that sends every datagram back
// to its sender. The test's cleanup stops it. Its receive buffer is 4 MiB
// (as far as the system allows): a benchmark's burst of hundreds of
// datagrams in flight would overflow the default one.
func EchoUDP(t testing.TB) *net.UDPAddr {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatalf("sockstest: %v", err)
	}
	c.SetReadBuffer(4 << 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 65535)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return c.LocalAddr().(*net.UDPAddr)
}
