package dialer

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sockstap/sockstap/internal/match"
)

// Hosts is a set of destinations written as NO_PROXY lists them, the way
// curl reads it. The zero Hosts contains nothing.
type Hosts struct {
	entries []hostEntry
}

// hostEntry is one destination of a list: every host, a domain, or a
// network; and the ports, all of them when hi is 0.
type hostEntry struct {
	any    bool         // every host
	domain string       // no leading or trailing dot; "" for a network
	exact  bool         // domain is one host, not its subdomains
	prefix netip.Prefix // a network, when domain is "" and any is false
	lo, hi uint16       // the ports lo to hi; hi 0: every port
}

// ParseHosts parses a list of destinations, separated by commas or white
// space:
//
//   - "*": every destination;
//   - "=" and a name: that host alone, not its subdomains ("=example.com"),
//     as Dante's configuration writes a host name;
//   - a domain name, with or without a leading dot: "example.com" and
//     ".example.com" both contain example.com and all its subdomains
//     (curl's reading; "*.example.com" is read the same way). Case and a
//     trailing dot do not matter;
//   - an IP address or a network in CIDR notation: "192.0.2.1", "::1",
//     "10.0.0.0/8", "fd00::/8";
//   - any of these with a port, or a range of ports, which then must
//     match too: "example.com:443", "192.0.2.1:80", "[::1]:8080",
//     "[fd00::/8]:8000-8099", "*:443".
//
// Names are not resolved: a domain entry contains names, an IP or network
// entry contains IP addresses.
//
// An entry that is none of these is an error that names it, and the list
// is not used: "10.0.0.0/33" (no such network), "host:99999" (no such
// port), "example.com:http" (a port is a number), "300.1.1.1" (digits
// and dots, but no address), "a..b" (no domain). curl ignores such
// entries; here a list is what it says or nothing.
func ParseHosts(list string) (Hosts, error) {
	var h Hosts
	var errs []error
	for _, e := range strings.FieldsFunc(list, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t' || r == '\n' || r == '\r'
	}) {
		entry, err := parseHostEntry(e)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		h.entries = append(h.entries, entry)
	}
	if len(errs) > 0 {
		return Hosts{}, &HostsError{Errs: errs}
	}
	return h, nil
}

// MustParseHosts is [ParseHosts] for a list the program itself writes: it
// panics when the list does not parse.
func MustParseHosts(list string) Hosts {
	h, err := ParseHosts(list)
	if err != nil {
		panic(err)
	}
	return h
}

// A HostsError lists the entries of a host list that do not parse.
type HostsError struct {
	Errs []error // one for each bad entry, in order
}

// Error lists the bad entries, separated by semicolons.
func (e *HostsError) Error() string {
	var b strings.Builder
	b.WriteString("dialer: host list: ")
	for i, err := range e.Errs {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap returns the entries' errors.
func (e *HostsError) Unwrap() []error { return e.Errs }

func parseHostEntry(e string) (hostEntry, error) {
	var entry hostEntry
	host := e
	if h, p, err := net.SplitHostPort(e); err == nil {
		lo, hi, err := parsePorts(p)
		if err != nil {
			return hostEntry{}, fmt.Errorf("%q: %w", e, err)
		}
		host, entry.lo, entry.hi = h, lo, hi
	} else if strings.HasPrefix(e, "[") && strings.HasSuffix(e, "]") {
		host = e[1 : len(e)-1]
	} else if strings.Count(e, ":") == 1 {
		return hostEntry{}, fmt.Errorf("%q: %w", e, err)
	}
	switch {
	case host == "*":
		entry.any = true
		return entry, nil
	case strings.HasPrefix(host, "="):
		d, err := match.ParseDomain(host[1:])
		if err != nil || strings.HasPrefix(host[1:], ".") || strings.HasPrefix(host[1:], "*") {
			return hostEntry{}, fmt.Errorf("%q: %w", e, errExactHost)
		}
		entry.domain, entry.exact = d, true
		return entry, nil
	case strings.ContainsAny(host, ":/") || startsLikeIP(host):
		p, err := match.ParsePrefix(host)
		if err != nil {
			return hostEntry{}, err
		}
		entry.prefix = p
		return entry, nil
	}
	// Any number of dots around a name, as curl takes them.
	d, err := match.ParseDomain(strings.Trim(strings.TrimPrefix(host, "*."), "."))
	if err != nil {
		return hostEntry{}, err
	}
	entry.domain = d
	return entry, nil
}

// startsLikeIP reports whether host reads as an IPv4 address: digits and
// dots, and a digit first.
func startsLikeIP(host string) bool {
	return host != "" && strings.Trim(host, "0123456789.") == "" && host[0] != '.'
}

var errExactHost = errors.New(`"=" goes before a host name: =www.example.com`)

var errPort = errors.New("a port is a number from 1 to 65535, or a range of them: 8000-8099")

// parsePorts parses "80" or "8000-8099".
func parsePorts(s string) (lo, hi uint16, err error) {
	first, last, isRange := strings.Cut(s, "-")
	l, err1 := strconv.ParseUint(first, 10, 16)
	h, err2 := l, error(nil)
	if isRange {
		h, err2 = strconv.ParseUint(last, 10, 16)
	}
	if err1 != nil || err2 != nil || l == 0 || h < l {
		return 0, 0, errPort
	}
	return uint16(l), uint16(h), nil
}

// Contains reports whether the destination address, "host:port" or a bare
// host, is in h. A bare host is in no entry that names ports.
func (h Hosts) Contains(address string) bool {
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
	for i := range h.entries {
		e := &h.entries[i]
		if e.hi != 0 && (port < int(e.lo) || port > int(e.hi)) {
			continue
		}
		switch {
		case e.any:
			return true
		case e.exact:
			if !isIP && strings.EqualFold(e.domain, host) {
				return true
			}
		case e.domain != "":
			if !isIP && match.Domain(e.domain, host) {
				return true
			}
		case isIP && match.IP([]netip.Prefix{e.prefix}, ip):
			return true
		}
	}
	return false
}

// String returns the list as [ParseHosts] reads it, entries separated by
// commas: "example.com, 10.0.0.0/8, [::1]:8080".
func (h Hosts) String() string {
	var b strings.Builder
	for i, e := range h.entries {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(e.String())
	}
	return b.String()
}

func (e hostEntry) String() string {
	host := e.domain
	switch {
	case e.exact:
		host = "=" + host
	case e.any:
		host = "*"
	case host == "" && e.prefix.IsSingleIP():
		host = e.prefix.Addr().String()
	case host == "":
		host = e.prefix.String()
	}
	if e.hi == 0 {
		return host
	}
	ports := strconv.Itoa(int(e.lo))
	if e.hi != e.lo {
		ports += "-" + strconv.Itoa(int(e.hi))
	}
	return net.JoinHostPort(host, ports)
}
