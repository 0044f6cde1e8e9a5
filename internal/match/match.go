// Package match holds the destination matching that the dialer's host
// lists and the listener's rules share: an IP address against networks in
// CIDR notation, a name against domains and their subdomains, and the
// parsing of both.
package match

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
)

// IP reports whether ip is in one of nets. The address is compared
// unmapped and without its zone, so that ::ffff:10.1.2.3 is in 10.0.0.0/8;
// a network written as IPv4-mapped IPv6 (::ffff:10.0.0.0/104) contains the
// IPv4 addresses it maps. The invalid address is in no network.
func IP(nets []netip.Prefix, ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	ip = ip.Unmap().WithZone("")
	for _, n := range nets {
		if Prefix(n).Contains(ip) {
			return true
		}
	}
	return false
}

// Prefix returns p masked, with an IPv4-mapped IPv6 network of 96 bits or
// more turned into the IPv4 network it maps.
func Prefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p.Masked()
}

// Domain reports whether name is domain or one of its subdomains: the
// domain "example.com" contains example.com and www.example.com, not
// badexample.com. Case and a trailing dot on either side do not matter; an
// empty name or domain contains nothing.
func Domain(domain, name string) bool {
	name = strings.TrimSuffix(name, ".")
	domain = strings.TrimSuffix(domain, ".")
	if name == "" || domain == "" {
		return false
	}
	if len(name) == len(domain) {
		return strings.EqualFold(name, domain)
	}
	return len(name) > len(domain) && name[len(name)-len(domain)-1] == '.' &&
		strings.EqualFold(name[len(name)-len(domain):], domain)
}

// Domains reports whether name is in one of domains, as [Domain] says.
func Domains(domains []string, name string) bool {
	for _, d := range domains {
		if Domain(d, name) {
			return true
		}
	}
	return false
}

// ParsePrefix parses a network: CIDR notation ("10.0.0.0/8", "fd00::/8"),
// an address and a dotted netmask ("10.0.0.0/255.0.0.0", as Dante writes
// them; the mask's ones must be contiguous), or a lone address, which is
// the network of that one address. The result is masked, and an
// IPv4-mapped network is turned into IPv4 as [Prefix] does. Zones, prefix
// lengths out of range and anything else are errors.
func ParsePrefix(s string) (netip.Prefix, error) {
	addr, bits, hasBits := strings.Cut(s, "/")
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return netip.Prefix{}, &Error{What: "address", Text: s}
	}
	if ip.Zone() != "" {
		return netip.Prefix{}, &Error{What: "address", Text: s, Why: "a zone"}
	}
	if !hasBits {
		return Prefix(netip.PrefixFrom(ip, ip.BitLen())), nil
	}
	n, err := strconv.ParseUint(bits, 10, 8)
	if err != nil || bits == "" || bits[0] == '+' || len(bits) > 1 && bits[0] == '0' {
		mask, merr := netip.ParseAddr(bits)
		if merr != nil || !mask.Is4() || !ip.Is4() {
			return netip.Prefix{}, &Error{What: "network", Text: s, Why: "the length after / is no number or IPv4 netmask"}
		}
		ones, ok := maskOnes(mask.As4())
		if !ok {
			return netip.Prefix{}, &Error{What: "network", Text: s, Why: "a netmask whose ones are not contiguous"}
		}
		n = uint64(ones)
	}
	if int(n) > ip.BitLen() {
		return netip.Prefix{}, &Error{What: "network", Text: s, Why: "a prefix longer than the address"}
	}
	return Prefix(netip.PrefixFrom(ip, int(n))), nil
}

// maskOnes returns the number of leading ones of a netmask, and false when
// ones follow a zero.
func maskOnes(m [4]byte) (int, bool) {
	v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	ones := 0
	for v&0x80000000 != 0 {
		ones++
		v <<= 1
	}
	return ones, v == 0
}

// ParseDomain parses a domain for [Domain]: a name whose labels are 1 to 63
// letters, digits, hyphens or underscores, 253 bytes at most, with one
// leading "." or "*." allowed (".example.com" and "*.example.com" mean
// example.com and its subdomains, as a plain "example.com" does) and a
// trailing dot ignored. It returns the name without either, and an error
// for a name that is not one, such as "a..b", "exa mple.com", or
// "300.1.1.1", which is all digits and so no domain but a bad address.
func ParseDomain(s string) (string, error) {
	name := s
	switch {
	case strings.HasPrefix(name, "*."):
		name = name[2:]
	case strings.HasPrefix(name, "."):
		name = name[1:]
	}
	name = strings.TrimSuffix(name, ".")
	if name == "" {
		return "", &Error{What: "domain", Text: s, Why: "no name"}
	}
	if len(name) > 253 {
		return "", &Error{What: "domain", Text: s, Why: "longer than 253 bytes"}
	}
	digits := true
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 {
			return "", &Error{What: "domain", Text: s, Why: "a label empty or longer than 63 bytes"}
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			switch {
			case c >= '0' && c <= '9':
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_':
				digits = false
			default:
				return "", &Error{What: "domain", Text: s, Why: "a character no name has"}
			}
		}
	}
	if digits {
		return "", &Error{What: "address", Text: s, Why: "digits and dots, but no IP address"}
	}
	return name, nil
}

// ErrSyntax is matched by every error of this package's parsers.
var ErrSyntax = errors.New("invalid destination")

// An Error is a destination that does not parse.
type Error struct {
	What string // what it was read as: "address", "network", "domain"
	Text string // the text that did not parse
	Why  string // what is wrong with it, if more than its being invalid
}

func (e *Error) Error() string {
	s := "invalid " + e.What + " " + strconv.Quote(e.Text)
	if e.Why != "" {
		s += ": " + e.Why
	}
	return s
}

// Is reports whether target is ErrSyntax.
func (e *Error) Is(target error) bool { return target == ErrSyntax }
