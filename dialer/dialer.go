package dialer

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/socks4"
	"github.com/sockstap/sockstap/socks5"
)

// A Scheme is a SOCKS protocol version and where target names are
// resolved, named as a proxy URL's scheme names it (see the package
// documentation's table).
type Scheme string

// The schemes a [Dialer] speaks.
const (
	SOCKS4  Scheme = "socks4"  // SOCKS4, names resolved by the client
	SOCKS4A Scheme = "socks4a" // SOCKS4a, names sent to the proxy
	SOCKS5  Scheme = "socks5"  // SOCKS5, names resolved by the client
	SOCKS5H Scheme = "socks5h" // SOCKS5, names sent to the proxy
)

// version returns the protocol version, 4 or 5, and whether names are
// resolved by the client; ok is false for an unknown scheme. The empty
// Scheme is SOCKS5H.
func (s Scheme) version() (v int, local, ok bool) {
	switch s {
	case SOCKS4:
		return 4, true, true
	case SOCKS4A:
		return 4, false, true
	case SOCKS5:
		return 5, true, true
	case SOCKS5H, "":
		return 5, false, true
	}
	return 0, false, false
}

// A Dialer connects to its targets through one SOCKS server, with the
// CONNECT command. It implements [proxy.Dialer] and [proxy.ContextDialer].
// The zero value of each field but Proxy is a default that works; a Dialer
// may be used by several goroutines at once, and must not be changed while
// in use.
//
// The connection DialContext returns is the connection to the proxy, as
// Forward returned it (a *[net.TCPConn] by default) with the handshake
// done: nothing wraps it, so TCP's features and the kernel's zero-copy
// paths stay. Its RemoteAddr is the proxy's address, as with
// golang.org/x/net/proxy's SOCKS5 dialer, not the target's.
type Dialer struct {
	// Proxy is the SOCKS server's address, "host:port".
	Proxy string

	// Scheme is the protocol and where names are resolved; the empty
	// Scheme is SOCKS5H, which sends names to the proxy as
	// golang.org/x/net/proxy's SOCKS5 dialer does.
	Scheme Scheme

	// Username and Password authenticate to a SOCKS5 server with RFC 1929's
	// method, offered beside "no authentication" when Username is set; both
	// must then be 1 to 255 bytes. Through SOCKS4 and SOCKS4a, Username is
	// sent as the request's USERID and Password is not used.
	Username, Password string

	// Forward makes the connection to the proxy: another Dialer for a
	// chain, or any proxy.ContextDialer. Nil is a [net.Dialer] that uses
	// Resolver.
	Forward proxy.ContextDialer

	// Resolver resolves target names for the schemes that resolve them on
	// the client (socks4, socks5), and the proxy's own name when Forward is
	// nil. Nil is [net.DefaultResolver].
	Resolver *net.Resolver
}

// String returns the dialer as a proxy URL, without the password:
// "socks5h://alice@127.0.0.1:1080". A chain lists every hop, first first,
// each reached through the one before:
// "socks5h://127.0.0.1:1080 -> socks4://10.0.0.1:1080".
func (d *Dialer) String() string {
	u := url.URL{Scheme: string(d.scheme()), Host: d.Proxy}
	if d.Username != "" {
		u.User = url.User(d.Username)
	}
	if prev, ok := d.Forward.(*Dialer); ok && prev != nil {
		return prev.String() + " -> " + u.String()
	}
	return u.String()
}

func (d *Dialer) scheme() Scheme {
	if d.Scheme == "" {
		return SOCKS5H
	}
	return d.Scheme
}

// ForwardsName reports whether a dial of address on network sends its
// name to the proxy unresolved, for the proxy to resolve: true for the
// schemes that send names (socks4a, socks5h), false for those that
// resolve them on the client (socks4, socks5). Through a chain ([Chain])
// the last hop's scheme decides, since that hop names the target to its
// proxy. [github.com/sockstap/sockstap/listener.GuardDialer] asks, to
// give a dialer that forwards names the name itself rather than an
// address it resolved and checked.
func (d *Dialer) ForwardsName(network, address string) bool {
	_, local, ok := d.Scheme.version()
	return ok && !local
}

// LookupNetIP looks host up as the dialer resolves target names for the
// schemes that resolve them on the client: with Resolver, or
// net.DefaultResolver when it is nil. network is "ip", "ip4" or "ip6".
// [github.com/sockstap/sockstap/listener.GuardDialer] resolves through it
// the names it checks before it dials them through a socks4 or socks5
// Dialer, so that they resolve as the Dialer would resolve them.
func (d *Dialer) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	r := d.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	return r.LookupNetIP(ctx, network, host)
}

// Dial connects to address on network through the proxy; see
// [Dialer.DialContext].
func (d *Dialer) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// direct is the Forward of a Dialer that has none and no Resolver.
var direct net.Dialer

// DialContext connects to address on network through the proxy: network is
// "tcp", "tcp4" or "tcp6", and address is "host:port". For the schemes that
// resolve names on the client, a name is resolved with Resolver to the
// first address that the protocol can carry and the network allows (tcp4:
// IPv4, tcp6: IPv6); for the others, the name goes to the proxy, which
// picks the address, whatever the network says.
//
// With network "udp", "udp4" or "udp6" it makes a UDP association instead,
// as [Dialer.ListenPacket] does, and returns a connected [net.Conn] that
// sends each Write to address as one datagram and reads the datagrams
// that come back from it (SOCKS5 only).
//
// ctx bounds the whole dial: the connection to the proxy and the
// handshake. When it ends before the dial is done, the connection is
// closed at once and the error wraps ctx's error. Every error is a
// [*net.OpError] (see the package documentation), and no connection is
// left open behind one.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	switch network {
	case "udp", "udp4", "udp6":
		return d.dialUDP(ctx, network, address)
	}
	c, _, err := d.request(ctx, cmdConnect, network, address)
	return c, err
}

// A command is a request the dialer makes, and the Op of its errors.
type command struct {
	v5 socks5.Command
	v4 socks4.Command // 0: SOCKS4 has no such command
	op string
}

// The commands.
var (
	cmdConnect    = command{socks5.CmdConnect, socks4.CmdConnect, "connect"}
	cmdBind       = command{socks5.CmdBind, socks4.CmdBind, "bind"}
	cmdUDP        = command{socks5.CmdUDPAssociate, 0, "udp associate"}
	cmdResolve    = command{socks5.CmdResolve, 0, "resolve"}
	cmdResolvePTR = command{socks5.CmdResolvePTR, 0, "resolve ptr"}
)

// request makes the request cmd, CONNECT or BIND, for address on network,
// a TCP network: it resolves a name as the scheme says, connects to the
// proxy and runs the handshake. It returns the connection to the proxy and
// the first reply's bound address, or a *net.OpError.
func (d *Dialer) request(ctx context.Context, cmd command, network, address string) (net.Conn, socks5.Addr, error) {
	target, err := socks5.ParseAddr(address)
	if err != nil {
		return nil, socks5.Addr{}, d.opError(cmd.op, network, nil, err)
	}
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, socks5.Addr{}, d.opError(cmd.op, network, target, net.UnknownNetworkError(network))
	}
	dst, err := d.destination(ctx, network, target)
	if err != nil {
		return nil, socks5.Addr{}, d.opError(cmd.op, network, target, err)
	}
	c, bound, err := d.exchange(ctx, cmd, dst)
	if err != nil {
		return nil, socks5.Addr{}, d.opError(cmd.op, network, target, err)
	}
	return c, bound, nil
}

// destination returns the address to send for target: target itself, or,
// for the schemes that resolve names on the client, the address its name
// resolves to. It checks that the protocol and network can carry it.
func (d *Dialer) destination(ctx context.Context, network string, target socks5.Addr) (socks5.Addr, error) {
	version, local, ok := d.Scheme.version()
	if !ok {
		return socks5.Addr{}, errors.New("dialer: unknown scheme " + string(d.Scheme))
	}
	dst := target
	if dst.Name != "" && local {
		ip, err := d.resolve(ctx, network, dst.Name, version == 4)
		if err != nil {
			return socks5.Addr{}, err
		}
		dst = socks5.Addr{IP: ip, Port: dst.Port}
	} else if dst.Name == "" {
		dst.IP = dst.IP.Unmap()
		if err := check(network, dst.IP, version == 4); err != nil {
			return socks5.Addr{}, err
		}
	}
	return dst, nil
}

// exchange connects to the proxy and makes the request cmd for dst. It
// returns the connection, with the handshake done, and the bound address
// of the (first) reply; the error is not yet a *net.OpError.
func (d *Dialer) exchange(ctx context.Context, cmd command, dst socks5.Addr) (net.Conn, socks5.Addr, error) {
	version, _, ok := d.Scheme.version()
	if !ok {
		return nil, socks5.Addr{}, errors.New("dialer: unknown scheme " + string(d.Scheme))
	}
	if version == 4 && cmd.v4 == 0 {
		return nil, socks5.Addr{}, &commandError{scheme: d.scheme(), cmd: cmd.v5}
	}
	if err := d.checkCredentials(); err != nil {
		return nil, socks5.Addr{}, err
	}
	c, err := d.forward().DialContext(ctx, "tcp", d.Proxy)
	if err != nil {
		return nil, socks5.Addr{}, &unreachableError{err}
	}
	bound, err := d.handshake(ctx, c, version, cmd, dst)
	if err != nil {
		c.Close()
		return nil, socks5.Addr{}, err
	}
	return c, bound, nil
}

// forward returns the dialer that reaches the proxy.
func (d *Dialer) forward() proxy.ContextDialer {
	switch {
	case d.Forward != nil:
		return d.Forward
	case d.Resolver != nil:
		return &net.Dialer{Resolver: d.Resolver}
	}
	return &direct
}

// handshake runs the handshake of cmd for dst on c, within ctx, and
// returns the bound address of the reply. The handshakes of socks4 and
// socks5 tie c's deadline to ctx: when ctx ends, the read or write under
// way returns at once, and the caller closes c.
func (d *Dialer) handshake(ctx context.Context, c net.Conn, version int, cmd command, dst socks5.Addr) (socks5.Addr, error) {
	var bound socks5.Addr
	var err error
	if version == 4 {
		req := socks4.Request{Command: cmd.v4, Port: dst.Port, IP: dst.IP, Host: dst.Name, User: d.Username}
		var ap netip.AddrPort
		ap, err = socks4.ClientHandshake(ctx, c, req)
		bound = socks5.AddrFromAddrPort(ap)
	} else {
		req := socks5.Request{Command: cmd.v5, Addr: dst}
		if d.Username != "" {
			bound, _, err = socks5.ClientHandshake(ctx, c, req,
				socks5.UserPassClient{Username: d.Username, Password: d.Password}, socks5.NoAuth{})
		} else {
			bound, _, err = socks5.ClientHandshake(ctx, c, req)
		}
	}
	if err == nil {
		return bound, nil
	}
	cerr := ctx.Err()
	if cerr == nil && errors.Is(err, context.DeadlineExceeded) {
		cerr = context.DeadlineExceeded // ctx's deadline, before its timer fired
	}
	if cerr != nil {
		err = &ctxError{ctx: cerr, err: err}
	}
	return socks5.Addr{}, err
}

// proxyIP returns the IP address of the proxy, for a reply whose bound
// address is unspecified (0.0.0.0, ::), which stands for the proxy's own:
// the address of c when c reaches the proxy directly, else the address of
// d.Proxy, resolved when it is a name.
func (d *Dialer) proxyIP(ctx context.Context, c net.Conn) (netip.Addr, error) {
	if d.Forward == nil {
		if ta, ok := c.RemoteAddr().(*net.TCPAddr); ok {
			return ta.AddrPort().Addr().Unmap(), nil
		}
	}
	host, _, err := net.SplitHostPort(d.Proxy)
	if err != nil {
		return netip.Addr{}, err
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().WithZone(""), nil
	}
	return d.resolve(ctx, "ip", host, false)
}

// opError returns err as the *net.OpError of the request op for target
// (nil when the address did not parse).
func (d *Dialer) opError(op, network string, target net.Addr, err error) error {
	var source net.Addr
	if a, perr := socks5.ParseAddr(d.Proxy); perr == nil {
		source = a
	}
	return &net.OpError{Op: op, Net: network, Source: source, Addr: target, Err: err}
}

// check reports whether ip fits network, and the protocol.
func check(network string, ip netip.Addr, v4only bool) error {
	if !fits(network, ip) {
		return &net.AddrError{Err: "no suitable address found", Addr: ip.String()}
	}
	if v4only && !ip.Is4() {
		return errIPv6Target
	}
	return nil
}

// fits reports whether ip, unmapped, is of the family network allows.
func fits(network string, ip netip.Addr) bool {
	switch network {
	case "tcp4", "udp4", "ip4":
		return ip.Is4()
	case "tcp6", "udp6", "ip6":
		return ip.Is6()
	}
	return true
}

// resolve returns the first address of name that fits network and, when
// v4only, is IPv4.
func (d *Dialer) resolve(ctx context.Context, network, name string, v4only bool) (netip.Addr, error) {
	ips, err := d.LookupNetIP(ctx, "ip", name)
	if err != nil {
		return netip.Addr{}, err
	}
	onlyIPv6 := false
	for _, ip := range ips {
		ip = ip.Unmap().WithZone("")
		if !fits(network, ip) {
			continue
		}
		if v4only && !ip.Is4() {
			onlyIPv6 = true
			continue
		}
		return ip, nil
	}
	if onlyIPv6 {
		return netip.Addr{}, &ipv6NameError{name: name}
	}
	return netip.Addr{}, &net.AddrError{Err: "no suitable address found", Addr: name}
}
