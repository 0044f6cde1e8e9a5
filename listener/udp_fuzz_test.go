package listener

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// sentPackets is an outbound socket that keeps what is sent through it.
type sentPackets struct {
	net.PacketConn // nil: only WriteTo and LocalAddr are called
	sent           []sentPacket
}

type sentPacket struct {
	payload []byte
	to      net.Addr
}

func (p *sentPackets) WriteTo(b []byte, to net.Addr) (int, error) {
	p.sent = append(p.sent, sentPacket{bytes.Clone(b), to})
	return len(b), nil
}

func (p *sentPackets) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9} }

// FuzzAssociateDatagram hands an association datagrams from its client
// made by the fuzzer: none may panic it, and a datagram relayed must be
// one the header parser takes, standing alone (FRAG 0), to a port other
// than 0, whose payload is what follows the header, sent to the address
// the header names (or, for a name, the address it resolves to).
func FuzzAssociateDatagram(f *testing.F) {
	for _, seed := range [][]byte{
		{0, 0, 0, 1, 127, 0, 0, 1, 0, 53, 'h', 'i'},
		{0, 0, 1, 1, 127, 0, 0, 1, 0, 53, 'h', 'i'},
		{0, 0, 0, 3, 9, 'e', 'c', 'h', 'o', '.', 't', 'e', 's', 't', 0, 7, 'x'},
		{0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 7},
		{0, 0, 0, 1, 127, 0, 0, 1, 0, 0},
		{0, 0, 0, 3, 0, 0, 7},
		{0, 0, 0, 2},
	} {
		f.Add(seed)
	}
	resolver := sockstest.Resolver(f, func(name string) ([]netip.Addr, bool) {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, name != "nx.test"
	})
	client := netip.MustParseAddrPort("127.0.0.1:4000")
	f.Fuzz(func(t *testing.T, b []byte) {
		l := &Listener{cfg: (&Config{UDP: true, Resolver: resolver}).withDefaults()}
		l.ctx, l.relayCtx = context.Background(), context.Background()
		s := &session{l: l, t: &tracked{}, req: &Request{
			Version: 5, Command: socks5.CmdUDPAssociate,
			Client: net.TCPAddrFromAddrPort(client), Local: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1080},
		}}
		out := &sentPackets{}
		a := newAssociation(s, nil, out)
		if !a.up(b, client) {
			t.Fatal("the association ended")
		}
		d, err := socks5.ParseDatagram(b)
		if err != nil || d.Frag != 0 || d.Addr.Port == 0 {
			if len(out.sent) != 0 {
				t.Fatalf("relayed %q (%v)", b, err)
			}
			return
		}
		if len(out.sent) == 0 {
			if d.Addr.Name != "" {
				return // a name that does not resolve, or that the resolver refuses
			}
			t.Fatalf("dropped %q", b)
		}
		p := out.sent[0]
		if !bytes.Equal(p.payload, d.Payload) || !bytes.HasSuffix(b, p.payload) {
			t.Fatalf("payload %q of %q", p.payload, b)
		}
		want := netip.AddrPortFrom(d.Addr.IP.Unmap(), d.Addr.Port)
		if d.Addr.Name != "" {
			want = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), d.Addr.Port)
			if ip, err := netip.ParseAddr(d.Addr.Name); err == nil { // an address, as a name
				want = netip.AddrPortFrom(ip.Unmap().WithZone(""), d.Addr.Port)
			}
		}
		if got := p.to.(*net.UDPAddr).AddrPort(); got != want {
			t.Fatalf("sent to %v, not %v", got, want)
		}
		if s.traffic.datagramsUp.Load() != 1 || s.traffic.bytesUp.Load() != int64(len(d.Payload)) {
			t.Fatal("not counted")
		}
	})
}
