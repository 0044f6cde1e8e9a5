package sockstest

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// A Zone answers a DNS query: the addresses of name (lower case, without
// its final dot), and false for a name that does not exist. It is asked
// once per query, A and AAAA alike; the answer keeps the addresses of the
// query's type.
type Zone func(name string) (addrs []netip.Addr, ok bool)

// Resolver returns a resolver that asks zone, through a DNS server in
// memory: tests resolve made-up names, and never reach a real server. The
// test's cleanup waits for the server's goroutines.
func Resolver(t testing.TB, zone Zone) *net.Resolver {
	return ReverseResolver(t, zone, nil)
}

// A ReverseZone answers a PTR query: the names of addr, without their
// final dots, and false for an address that has none.
type ReverseZone func(addr netip.Addr) (names []string, ok bool)

// ReverseResolver is [Resolver], whose server also answers PTR queries
// (LookupAddr) from reverse; a nil reverse answers them as Resolver does.
func ReverseResolver(t testing.TB, zone Zone, reverse ReverseZone) *net.Resolver {
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	return &net.Resolver{
		PreferGo: true,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			// Not a PacketConn: the resolver frames its queries as over
			// TCP.
			client, server := net.Pipe()
			wg.Go(func() { serveDNS(server, zone, reverse) })
			return client, nil
		},
	}
}

// serveDNS answers the queries on c until c closes.
func serveDNS(c net.Conn, zone Zone, reverse ReverseZone) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(Timeout))
	for {
		var n [2]byte
		if _, err := io.ReadFull(c, n[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(n[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		resp, err := answerDNS(q, zone, reverse)
		if err != nil {
			return
		}
		if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...)); err != nil {
			return
		}
	}
}

func answerDNS(query []byte, zone Zone, reverse ReverseZone) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	name := strings.ToLower(strings.TrimSuffix(q.Name.String(), "."))
	var addrs []netip.Addr
	var names []string
	var ok bool
	if ip, isPTR := reverseName(name); isPTR && q.Type == dnsmessage.TypePTR && reverse != nil {
		names, ok = reverse(ip)
	} else {
		addrs, ok = zone(name)
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true}
	if !ok {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	rr := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 1}
	for _, a := range addrs {
		switch {
		case q.Type == dnsmessage.TypeA && a.Is4():
			err = b.AResource(rr, dnsmessage.AResource{A: a.As4()})
		case q.Type == dnsmessage.TypeAAAA && a.Is6() && !a.Is4In6():
			err = b.AAAAResource(rr, dnsmessage.AAAAResource{AAAA: a.As16()})
		}
		if err != nil {
			return nil, err
		}
	}
	for _, n := range names {
		ptr, err := dnsmessage.NewName(n + ".")
		if err != nil {
			return nil, err
		}
		if err := b.PTRResource(rr, dnsmessage.PTRResource{PTR: ptr}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// reverseName returns the address a PTR query's name (lower case, without
// its final dot) stands for: d.c.b.a.in-addr.arpa, or IPv6's 32 nibbles
// in ip6.arpa.
func reverseName(name string) (netip.Addr, bool) {
	if v4, ok := strings.CutSuffix(name, ".in-addr.arpa"); ok {
		parts := strings.Split(v4, ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		ip, err := netip.ParseAddr(parts[3] + "." + parts[2] + "." + parts[1] + "." + parts[0])
		return ip, err == nil
	}
	v6, ok := strings.CutSuffix(name, ".ip6.arpa")
	nibbles := strings.Split(v6, ".")
	if !ok || len(nibbles) != 32 {
		return netip.Addr{}, false
	}
	var b [16]byte
	for i, n := range nibbles {
		if len(n) != 1 {
			return netip.Addr{}, false
		}
		v := strings.IndexByte("0123456789abcdef", n[0])
		if v < 0 {
			return netip.Addr{}, false
		}
		// Nibbles come least significant first.
		j := 31 - i
		b[j/2] |= byte(v) << (4 * (1 - j%2))
	}
	return netip.AddrFrom16(b), true
}
