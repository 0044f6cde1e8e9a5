package listener

import (
	"context"
	"net/netip"
	"slices"

	"github.com/sockstap/sockstap/internal/match"
	"github.com/sockstap/sockstap/socks5"
)

// A Policy decides whether a request is served: nil allows it, an error
// denies it and says why. The client is answered "not allowed" (SOCKS5
// 0x02, SOCKS4 91) unless the error carries a reply code of the client's
// version ([socks5.ReplyError], socks4.ReplyError), and the reason is
// logged.
//
// A listener asks its policy when a request arrives, before anything is
// answered, with [Request.DialedIP] unset. When it relays through a
// *net.Dialer it asks again, at dial time, for each address the dialer is
// about to connect to, with DialedIP set: the address checked is the
// address connected to, so a name that resolves one way for the check and
// another for the dial (DNS rebinding) cannot slip past. (A listener with
// no Policy asks the built-in one again for names only: about an IP
// address, its answer cannot change.)
type Policy func(ctx context.Context, r *Request) error

// Denial is a policy's refusal.
type Denial struct {
	Reason string
}

func (d *Denial) Error() string { return "denied: " + d.Reason }

// Deny returns a [*Denial] with reason.
func Deny(reason string) error { return &Denial{Reason: reason} }

// DefaultPolicy is the policy of a listener whose Config has none. It
// serves clients on loopback, and clients elsewhere only once they have
// authenticated; and it refuses to the latter the destinations that
// [Sensitive] reports, the proxy's own host and its cloud's metadata
// service among them.
func DefaultPolicy(_ context.Context, r *Request) error {
	if r.ClientIP().IsLoopback() {
		return nil
	}
	if !r.Authenticated {
		return Deny("unauthenticated client not on loopback")
	}
	if ip := r.DestIP(); ip.IsValid() && Sensitive(ip) {
		return Deny("destination " + ip.String() + " is only for clients on loopback")
	}
	return nil
}

// sensitive are the networks Sensitive reports, beside loopback,
// unspecified and link-local addresses.
var sensitive = []netip.Prefix{
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud metadata
	netip.MustParsePrefix("192.0.0.192/32"),     // Oracle Cloud metadata
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS metadata over IPv6
}

// Sensitive reports whether ip is a destination a proxy must not open to
// clients from elsewhere without being told to: loopback, unspecified
// (which reaches the local host), link-local (169.254.169.254 is the
// metadata service of most clouds) and the other clouds' metadata
// addresses; in IPv4 or in any IPv4-in-IPv6 form (mapped, compatible,
// NAT64, 6to4).
func Sensitive(ip netip.Addr) bool {
	ip = ip.WithZone("")
	if v4, ok := embeddedIPv4(ip); ok && sensitiveAddr(v4) {
		return true
	}
	return sensitiveAddr(ip)
}

func sensitiveAddr(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsUnspecified() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() {
		return true
	}
	for _, p := range sensitive {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

var (
	nat64      = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour  = netip.MustParsePrefix("2002::/16")
	compatible = netip.MustParsePrefix("::/96")
)

// embeddedIPv4 returns the IPv4 address an IPv6 address carries, in the
// forms that route to it.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	if !ip.Is6() {
		return netip.Addr{}, false
	}
	if ip.Is4In6() {
		return ip.Unmap(), true
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip), nat64Local.Contains(ip), compatible.Contains(ip):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// A Rule allows or denies the requests it matches. Each condition that is
// set must hold; a rule with none matches every request.
type Rule struct {
	// Allow says what the rule decides: true allows, false denies.
	Allow bool

	// Clients are the networks the client's address must be in.
	Clients []netip.Prefix

	// Users are the names one of which the client must have authenticated
	// as. An unverified SOCKS4 USERID never matches.
	Users []string

	// Commands are the commands the request must be one of.
	Commands []socks5.Command

	// Dests are the networks the destination's address must be in. A
	// name matches only at dial time, by the address it resolved to (see
	// [Policy]); so allowing Dests does not let a name through when the
	// request arrives, while denying Dests still stops it when dialed.
	Dests []netip.Prefix

	// Domains are the names the target's name must be, or be a subdomain
	// of: "example.com" matches example.com and www.example.com. Case does
	// not matter; a trailing dot is ignored. An IP target never matches.
	Domains []string

	// Ports are the ranges the target's port must be in.
	Ports []PortRange

	// Reason is logged with the decision.
	Reason string
}

// PortRange is the ports First to Last, both included.
type PortRange struct {
	First, Last uint16
}

// Port is the range of the one port p.
func Port(p uint16) PortRange { return PortRange{p, p} }

// Rules is a rule set: the first rule that matches a request decides, and a
// request no rule matches is denied.
//
// An allowing rule opens a [Sensitive] destination to clients not on
// loopback only when its Dests name that destination: a rule that allows
// everything does not open the proxy's own host or the cloud's metadata
// service.
type Rules []Rule

// Policy applies the rules to r; its signature is a [Policy]'s.
func (rs Rules) Policy(_ context.Context, r *Request) error {
	for i := range rs {
		rule := &rs[i]
		if !rule.match(r) {
			continue
		}
		if !rule.Allow {
			return Deny(rule.reason("denied by rule"))
		}
		ip := r.DestIP()
		if ip.IsValid() && Sensitive(ip) && !r.ClientIP().IsLoopback() && !containsIP(rule.Dests, ip) {
			return Deny("destination " + ip.String() + " is only for clients on loopback unless a rule names it")
		}
		return nil
	}
	return Deny("no rule matched")
}

func (rule *Rule) reason(def string) string {
	if rule.Reason != "" {
		return rule.Reason
	}
	return def
}

func (rule *Rule) match(r *Request) bool {
	if len(rule.Clients) > 0 && !containsIP(rule.Clients, r.ClientIP()) {
		return false
	}
	if len(rule.Users) > 0 && (!r.Authenticated || !slices.Contains(rule.Users, r.User)) {
		return false
	}
	if len(rule.Commands) > 0 && !slices.Contains(rule.Commands, r.Command) {
		return false
	}
	if len(rule.Dests) > 0 && !containsIP(rule.Dests, r.DestIP()) {
		return false
	}
	if len(rule.Domains) > 0 && !matchDomain(rule.Domains, r.Target.Name) {
		return false
	}
	if len(rule.Ports) > 0 && !slices.ContainsFunc(rule.Ports, func(p PortRange) bool {
		return p.First <= r.Target.Port && r.Target.Port <= p.Last
	}) {
		return false
	}
	return true
}

func containsIP(nets []netip.Prefix, ip netip.Addr) bool {
	return match.IP(nets, ip)
}

func matchDomain(domains []string, name string) bool {
	return match.Domains(domains, name)
}
