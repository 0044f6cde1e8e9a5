package listener

import (
	"cmp"
	"context"
	"net"
	"net/netip"
	"slices"
	"strings"

	"github.com/sockstap/sockstap/socks5"
)

// errPTRNeedsIP refuses a RESOLVE_PTR whose address is a name.
var errPTRNeedsIP = &socks5.ReplyError{Reply: socks5.AddrTypeNotSupported}

// resolve serves Tor's RESOLVE (0xF0), as Config.Resolve says: it answers
// with an address of the request's name, looked up with the listener's
// resolver within DialTimeout, as BND.ADDR (port 0). An IPv4 address is
// preferred to an IPv6 one, as Tor does; an IP address in the request is
// answered as it is.
//
// Where the listener checks a relay's address at dial time (see
// dialCheck: a Policy of the program's, or a client not on loopback), it
// checks the addresses the name resolves to the same way, with DialedIP
// set, and answers with the first one allowed: a client learns no address
// it could not connect to.
func (s *session) resolve() {
	l := s.l
	t := s.req.Target
	ip := t.IP.Unmap()
	if t.Name != "" {
		ctx, cancel := context.WithTimeout(l.ctx, l.cfg.DialTimeout)
		ips, err := l.resolver().LookupNetIP(ctx, "ip", t.Name)
		cancel()
		if err == nil && len(ips) == 0 {
			err = &net.DNSError{Err: "no such host", Name: t.Name, IsNotFound: true}
		}
		if err != nil {
			s.refuse(err, "cannot resolve")
			return
		}
		if ip, err = l.pickAddr(s.req, ips); err != nil {
			s.refuse(err, "")
			return
		}
	}
	s.answer(socks5.Addr{IP: ip})
}

// pickAddr returns the first of ips, IPv4 before IPv6, that the policy
// allows for r when the listener checks addresses at dial time, or the
// first one when it does not; or the policy's first refusal.
func (l *Listener) pickAddr(r *Request, ips []netip.Addr) (netip.Addr, error) {
	for i, ip := range ips {
		ips[i] = ip.Unmap().WithZone("")
	}
	slices.SortStableFunc(ips, func(a, b netip.Addr) int {
		return cmp.Compare(a.BitLen(), b.BitLen())
	})
	if !l.dialCheck(r) {
		return ips[0], nil
	}
	var denial error
	for _, ip := range ips {
		err := l.allowedDialing(r, ip)
		if err == nil {
			return ip, nil
		}
		denial = cmp.Or(denial, err)
	}
	return netip.Addr{}, denial
}

// resolvePTR serves Tor's RESOLVE_PTR (0xF1), as Config.Resolve says: it
// answers with the name of the request's IP address, looked up with the
// listener's resolver within DialTimeout, as BND.ADDR (a domain name, port
// 0). An address sent as a name ("192.0.2.1" with ATYP 0x03) is taken as
// the address; any other name is answered "address type not supported".
func (s *session) resolvePTR() {
	l := s.l
	t := s.req.Target
	ip := t.IP
	if t.Name != "" {
		var err error
		if ip, err = netip.ParseAddr(t.Name); err != nil {
			s.refuse(errPTRNeedsIP, "RESOLVE_PTR of a name")
			return
		}
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.DialTimeout)
	names, err := l.resolver().LookupAddr(ctx, ip.Unmap().WithZone("").String())
	cancel()
	if err != nil {
		s.refuse(err, "cannot resolve")
		return
	}
	for _, name := range names {
		name = strings.TrimSuffix(name, ".")
		if name != "" && len(name) <= socks5.MaxNameLen {
			s.answer(socks5.Addr{Name: name})
			return
		}
	}
	s.refuse(&net.DNSError{Err: "no name fits in a SOCKS5 reply", Name: ip.String(), IsNotFound: true}, "cannot resolve")
}

// answer sends RESOLVE's or RESOLVE_PTR's answer, and ends the session.
func (s *session) answer(a socks5.Addr) {
	s.rec.Decision = DecisionResolve
	s.reply(nil, a)
	s.end()
}
