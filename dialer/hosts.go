package dialer

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Hosts is a set of destinations written as NO_PROXY lists them, the way
// curl reads it. The zero Hosts contains nothing.
type Hosts struct {
	all     bool
	entries []hostEntry
}

// hostEntry is one destination of a list: a domain, or a network, and a
// port (0: any).
type hostEntry struct {
	domain string       // no leading or trailing dot; "" for a network
	prefix netip.Prefix // a network, when domain is ""
	port   uint16
}

// ParseHosts parses a list of destinations, separated by commas or white
// space:
//
//   - "*" alone: every destination;
//   - a domain name, with or without a leading dot: "example.com" and
//     ".example.com" both contain example.com and all its subdomains
//     (curl's reading; "*.example.com" is read the same way). Case and a
//     trailing dot do not matter;
//   - an IP address or a network in CIDR notation: "192.0.2.1", "::1",
//     "10.0.0.0/8", "fd00::/8";
//   - any of these with a port, which then must match too:
//     "example.com:443", "192.0.2.1:80", "[::1]:8080".
//
// Names are not resolved: a domain entry contains names, an IP or network
// entry contains IP addresses. Entries that are none of these (an invalid
// port, say) are ignored, as curl ignores them, so that one bad entry in a
// NO_PROXY does not make the others fail.
func ParseHosts(list string) Hosts {
	var h Hosts
	for _, e := range strings.FieldsFunc(list, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	}) {
		if e == "*" {
			h.all = true
			continue
		}
		if entry, ok := parseHostEntry(e); ok {
			h.entries = append(h.entries, entry)
		}
	}
	return h
}

func parseHostEntry(e string) (hostEntry, bool) {
	var port uint16
	host := e
	if h, p, err := net.SplitHostPort(e); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return hostEntry{}, false
		}
		host, port = h, uint16(n)
	} else if strings.HasPrefix(e, "[") && strings.HasSuffix(e, "]") {
		host = e[1 : len(e)-1]
	}
	if p, err := netip.ParsePrefix(host); err == nil {
		if p.Addr().Zone() != "" {
			return hostEntry{}, false
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return hostEntry{prefix: p.Masked(), port: port}, true
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap().WithZone("")
		return hostEntry{prefix: netip.PrefixFrom(ip, ip.BitLen()), port: port}, true
	}
	host = strings.TrimPrefix(host, "*")
	host = strings.Trim(host, ".")
	if host == "" || strings.ContainsAny(host, "[]/*:") {
		return hostEntry{}, false
	}
	return hostEntry{domain: host, port: port}, true
}

// Contains reports whether the destination address, "host:port" or a bare
// host, is in h.
func (h Hosts) Contains(address string) bool {
	if h.all {
		return true
	}
	host, port := address, -1
	if hs, ps, err := net.SplitHostPort(address); err == nil {
		host = hs
		if n, err := strconv.ParseUint(ps, 10, 16); err == nil {
			port = int(n)
		}
	}
	host = strings.TrimSuffix(host, ".")
	ip, err := netip.ParseAddr(host)
	isIP := err == nil
	if isIP {
		ip = ip.Unmap().WithZone("")
	}
	for i := range h.entries {
		e := &h.entries[i]
		if e.port != 0 && port != int(e.port) {
			continue
		}
		if e.domain == "" {
			if isIP && e.prefix.Contains(ip) {
				return true
			}
			continue
		}
		if !isIP && inDomain(host, e.domain) {
			return true
		}
	}
	return false
}

// inDomain reports whether name is domain or one of its subdomains, case
// aside.
func inDomain(name, domain string) bool {
	if len(name) == len(domain) {
		return strings.EqualFold(name, domain)
	}
	return len(name) > len(domain) && name[len(name)-len(domain)-1] == '.' &&
		strings.EqualFold(name[len(name)-len(domain):], domain)
}
