package listener

import (
	"cmp"
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"syscall"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/internal/match"
	"github.com/sockstap/sockstap/socks5"
)

// A Policy decides whether a request is served: nil allows it, an error
// denies it and says why. The client is answered "not allowed" (SOCKS5
// 0x02, SOCKS4 91) unless the error carries a reply code of the client's
// version ([socks5.ReplyError], socks4.ReplyError), and the reason is
// logged.
//
// A listener asks its policy once about every request, whatever its
// command, when it arrives, before anything is answered, with
// [Request.DialedIP] unset. When it relays, it asks again at dial time
// (see [GuardDialer]), for each address it is about to connect to, with
// DialedIP set: the address checked is the address connected to, so a name
// that resolves one way for the check and another for the dial (DNS
// rebinding) cannot slip past. (A listener with no Policy asks the
// built-in one again only where its answer can change: for a name, and a
// client not on loopback.) A name the Dialer sends on unresolved to an
// upstream proxy ([NameForwarder]: socks5h, socks4a) is not resolved
// here, and not asked about again: the upstream resolves it and applies
// its own policy.
type Policy func(ctx context.Context, r *Request) error

// Denial is a policy's refusal.
type Denial struct {
	Reason string
}

func (d *Denial) Error() string { return "denied: " + d.Reason }

// Deny returns a [*Denial] with reason.
func Deny(reason string) error { return &Denial{Reason: reason} }

// denied is a policy's refusal on its way to the client.
type denied struct{ err error }

func (d *denied) Error() string { return d.err.Error() }
func (d *denied) Unwrap() error { return d.err }

// policy is the listener's Policy: the configured one, or the built-in
// one, which refuses a client that has not authenticated when
// authentication is required. It wraps a refusal in a *denied.
func (l *Listener) policy(ctx context.Context, r *Request) error {
	var err error
	switch {
	case l.cfg.Policy != nil:
		err = l.cfg.Policy(ctx, r)
	case l.authRequired && !r.Authenticated:
		err = Deny("authentication required, and " + r.VersionString() + " cannot authenticate")
	default:
		err = DefaultPolicy(ctx, r)
	}
	if err != nil {
		return &denied{err}
	}
	return nil
}

// dialCheck reports whether a dial for r needs the policy asked again at
// dial time. The program's policy always does; the built-in one, asked
// about r when it arrived, has nothing new to say about an IP address, nor
// about any address for a client on loopback.
func (l *Listener) dialCheck(r *Request) bool {
	return l.cfg.Policy != nil || r.Target.Name != "" && !r.ClientIP().IsLoopback()
}

// ErrNoRequest is the error of a dial through [GuardDialer] whose context
// carries no [Request]: there is nobody to ask the policy about.
var ErrNoRequest = errors.New("listener: the dial's context carries no Request (see NewContext)")

// GuardDialer returns a dialer that dials through d only the addresses the
// policy p allows at dial time: the check against DNS rebinding, for
// anyone who dials on a client's behalf (a listener's relays, an HTTP
// gateway). Each DialContext takes the [*Request] from its context
// ([NewContext], [FromContext]) and asks p about a copy of it with
// [Request.DialedIP] set, for every address it connects to: the address
// checked is the address connected to. A refusal is the dial's error,
// wrapping p's. A context without a Request is refused with
// [ErrNoRequest]: a guard that let such dials through unchecked would
// open what it guards to a caller that forgot the request.
//
// Where a name is resolved decides how it is checked, by one rule:
//
//   - With a *net.Dialer, the check runs in a copy's ControlContext, for
//     each address the dialer tries, after the dialer's own resolution
//     (through its Resolver) and before it connects; the dialer's own
//     Control or ControlContext still runs after it.
//   - A dialer that forwards the name ([NameForwarder]: a socks5h or
//     socks4a proxy, Tor) is given the name as it came: the upstream
//     resolves it, in its own network, and applies its own policy; p,
//     which judged the name when the request arrived (a listener and an
//     httpgate gateway ask it then), is not asked again. Nothing is looked
//     up locally, so no lookup leaks and
//     names only the upstream knows (.onion) work; but nor can a rule on
//     addresses (Rule.Dests) see where such a name leads.
//   - Any other dialer is never given a name: GuardDialer resolves it,
//     checks each address in turn, and dials the first allowed one as an
//     IP literal, going on to the next when a dial fails. A wrapper that
//     hides a *net.Dialer (to count its dials, say) is thus guarded, not
//     handed a name it would resolve unchecked. GuardDialer resolves
//     through the dialer's LookupNetIP method when it has one (a
//     [Resolver]), a *net.Dialer's Resolver, or net.DefaultResolver.
//
// A dialer that routes ([RouteDialer]) is asked which of its dialers
// serves a name, and the rule is that one's: a name routed to an upstream
// that forwards it goes on as a name, one routed to a direct dialer is
// resolved, checked, and dialed as an address through that same dialer,
// so that it keeps the route its name picked. An IP address is checked,
// and dialed through d.
//
// A nil p is [DefaultPolicy]; a nil d, a zero *net.Dialer.
func GuardDialer(d proxy.ContextDialer, p Policy) proxy.ContextDialer {
	if p == nil {
		p = DefaultPolicy
	}
	if d == nil {
		d = &net.Dialer{}
	}
	nd, ok := d.(*net.Dialer)
	if !ok {
		return &guard{d: d, p: p}
	}
	gd := *nd
	control, controlCtx := nd.Control, nd.ControlContext
	gd.Control = nil
	gd.ControlContext = func(ctx context.Context, network, address string, rc syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return err
		}
		if err := check(ctx, p, ap.Addr()); err != nil {
			return err
		}
		switch {
		case controlCtx != nil:
			return controlCtx(ctx, network, address, rc)
		case control != nil:
			return control(network, address, rc)
		}
		return nil
	}
	return &gd
}

// A NameForwarder is a dialer that can tell, destination by destination,
// whether it sends a name on unresolved to an upstream that resolves it:
// a SOCKS client whose scheme sends names (socks4a, socks5h:
// [github.com/sockstap/sockstap/dialer.Dialer] is one), a Tor client.
// [GuardDialer] gives such a dialer the name rather than an address it
// resolved itself.
//
// ForwardsName is asked about a name only (address is "name:port"), and
// must answer true only when the name leaves this host as it is: a dialer
// that may look it up here, or connect from here to where it resolves,
// answers false, and is then given a checked address. A dialer without
// the method is given checked addresses too: one of another package that
// sends names on (golang.org/x/net/proxy's SOCKS5 dialer does) keeps
// doing so behind GuardDialer only wrapped in a type that says so.
type NameForwarder interface {
	ForwardsName(network, address string) bool
}

// A RouteDialer is a dialer that hands each destination to one of several
// dialers of its own, picked by the destination as given, name or address:
// a route table ([github.com/sockstap/sockstap/dialer.Router] is one).
// DialerFor returns the dialer that serves address on network: what
// DialContext(ctx, network, address) dials through. [GuardDialer] asks it
// about a name, so that a name it resolves is dialed, as an address,
// through the dialer the name was routed to, and not routed again by its
// address.
type RouteDialer interface {
	DialerFor(network, address string) proxy.ContextDialer
}

// A Resolver resolves a name to IP addresses, as *net.Resolver's
// LookupNetIP does (network is "ip", "ip4" or "ip6").
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// resolverOf returns the resolver d resolves names with: its own, a
// *net.Dialer's Resolver, or net.DefaultResolver.
func resolverOf(d proxy.ContextDialer) Resolver {
	switch d := d.(type) {
	case Resolver:
		return d
	case *net.Dialer:
		if d.Resolver != nil {
			return d.Resolver
		}
	}
	return net.DefaultResolver
}

// check asks p about the request ctx carries, dialing ip.
func check(ctx context.Context, p Policy, ip netip.Addr) error {
	r, ok := FromContext(ctx)
	if !ok {
		return ErrNoRequest
	}
	dr := *r
	dr.DialedIP = ip.Unmap().WithZone("")
	return p(ctx, &dr)
}

// guard is GuardDialer's dialer for a dialer other than *net.Dialer.
type guard struct {
	d proxy.ContextDialer
	p Policy
}

func (g *guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: network, Addr: stringAddr{network, address}, Err: err}
	}
	if _, ok := FromContext(ctx); !ok {
		return nil, opErr(ErrNoRequest)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, opErr(err)
	}
	d := g.d
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else {
		d = route(d, network, address)
		if f, ok := d.(NameForwarder); ok && f.ForwardsName(network, address) {
			return d.DialContext(ctx, network, address)
		}
		ips, err = resolverOf(d).LookupNetIP(ctx, ipNetwork(network), host)
		if err != nil {
			return nil, opErr(err)
		}
		if len(ips) == 0 {
			return nil, opErr(&net.DNSError{Err: "no such host", Name: host, IsNotFound: true})
		}
	}
	var denial, dialErr error
	for _, ip := range ips {
		if err := check(ctx, g.p, ip); err != nil {
			denial = cmp.Or(denial, err)
			continue
		}
		c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.Unmap().WithZone("").String(), port))
		if err == nil {
			return c, nil
		}
		dialErr = err
		if ctx.Err() != nil {
			break
		}
	}
	if dialErr != nil { // an allowed address that could not be reached says more
		return nil, dialErr
	}
	return nil, opErr(denial)
}

// maxRoutes bounds the route tables route goes through, one inside
// another: a table that routes to itself is asked no further.
const maxRoutes = 8

// route returns the dialer that serves address among d's routes
// (RouteDialer), and theirs in turn; d itself when it does not route.
func route(d proxy.ContextDialer, network, address string) proxy.ContextDialer {
	for range maxRoutes {
		rd, ok := d.(RouteDialer)
		if !ok {
			break
		}
		leg := rd.DialerFor(network, address)
		if leg == nil {
			break
		}
		d = leg
	}
	return d
}

// ipNetwork is the network to resolve a name in for a dial on network.
func ipNetwork(network string) string {
	switch network {
	case "tcp4", "udp4":
		return "ip4"
	case "tcp6", "udp6":
		return "ip6"
	}
	return "ip"
}

// stringAddr is a net.Addr that is only a network and a string.
type stringAddr struct{ net, addr string }

func (a stringAddr) Network() string { return a.net }
func (a stringAddr) String() string  { return a.addr }

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
	// request arrives, while denying Dests still stops it when dialed,
	// unless the dialer sends the name to an upstream proxy that resolves
	// it ([NameForwarder]), where this host never learns the address.
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
