package match

import (
	"net/netip"
	"strings"
	"testing"
)

// FuzzParsePrefix checks that what ParsePrefix accepts is a masked network
// that CIDR notation writes back as the same network, and that contains
// its own address.
func FuzzParsePrefix(f *testing.F) {
	for _, s := range []string{
		"10.0.0.0/8", "10.0.0.0/255.0.0.0", "::ffff:10.0.0.0/104", "fd00::/8",
		"192.0.2.1", "10.0.0.0/33", "1.2.3.4/255.0.255.0", "fe80::1%eth0",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrefix(s)
		if err != nil {
			return
		}
		if !p.IsValid() || p != p.Masked() || p.Addr().Is4In6() || p.Addr().Zone() != "" {
			t.Fatalf("ParsePrefix(%q) = %v", s, p)
		}
		again, err := ParsePrefix(p.String())
		if err != nil || again != p {
			t.Fatalf("ParsePrefix(%q) = %v, but ParsePrefix(%q) = %v, %v", s, p, p.String(), again, err)
		}
		if !IP([]netip.Prefix{p}, p.Addr()) {
			t.Fatalf("%v does not contain its own address", p)
		}
	})
}

// FuzzParseDomain checks that what ParseDomain accepts is a name that
// parses again to itself and that Domain finds in itself and in its
// subdomains, whatever their case.
func FuzzParseDomain(f *testing.F) {
	for _, s := range []string{
		"example.com", ".example.com", "*.example.com", "example.com.", "a..b", "300.1.1.1", "x_y-z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDomain(s)
		if err != nil {
			return
		}
		if again, err := ParseDomain(d); err != nil || again != d {
			t.Fatalf("ParseDomain(%q) = %q, but ParseDomain(%q) = %q, %v", s, d, d, again, err)
		}
		if _, err := netip.ParseAddr(d); err == nil {
			t.Fatalf("ParseDomain(%q) = %q, an IP address", s, d)
		}
		if !Domain(d, strings.ToUpper(d)) || !Domain(d, "www."+d) || Domain(d, "x"+d) {
			t.Fatalf("Domain(%q) does not match as it should", d)
		}
	})
}
