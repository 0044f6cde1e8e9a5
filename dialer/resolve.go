package dialer

import (
	"context"
	"errors"
	"net/netip"

	"github.com/sockstap/sockstap/socks5"
)

// Resolve asks the proxy for an address of name, with Tor's RESOLVE
// extension to SOCKS5 (command 0xF0): the proxy resolves the name, as it
// would for a socks5h CONNECT, and answers with one address. The proxy is
// asked whatever the Scheme says about names; an IP address is returned
// as it is, without asking. SOCKS4 has no such command: through socks4
// and socks4a the error matches [ErrUnsupportedCommand]. Most SOCKS
// servers other than Tor answer [socks5.CommandNotSupported].
//
// A failure is a [*net.OpError] whose Op is "resolve".
func (d *Dialer) Resolve(ctx context.Context, name string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(name); err == nil {
		return ip.Unmap(), nil
	}
	target := socks5.Addr{Name: name}
	bound, err := d.ask(ctx, cmdResolve, target)
	if err == nil && (bound.Name != "" || !bound.IP.IsValid()) {
		err = errors.New("dialer: the proxy answered RESOLVE without an IP address")
	}
	if err != nil {
		return netip.Addr{}, d.opError(cmdResolve.op, "ip", target, err)
	}
	return bound.IP.Unmap(), nil
}

// ResolvePTR asks the proxy for the name of ip, with Tor's RESOLVE_PTR
// extension to SOCKS5 (command 0xF1), as [Dialer.Resolve] asks for an
// address. A failure is a [*net.OpError] whose Op is "resolve ptr".
func (d *Dialer) ResolvePTR(ctx context.Context, ip netip.Addr) (string, error) {
	target := socks5.Addr{IP: ip.Unmap().WithZone("")}
	var bound socks5.Addr
	err := errors.New("dialer: no IP address to resolve")
	if ip.IsValid() {
		bound, err = d.ask(ctx, cmdResolvePTR, target)
	}
	if err == nil && bound.Name == "" {
		err = errors.New("dialer: the proxy answered RESOLVE_PTR without a name")
	}
	if err != nil {
		return "", d.opError(cmdResolvePTR.op, "ip", target, err)
	}
	return bound.Name, nil
}

// ask makes a request whose answer is the reply's address, and closes the
// connection.
func (d *Dialer) ask(ctx context.Context, cmd command, target socks5.Addr) (socks5.Addr, error) {
	c, bound, err := d.exchange(ctx, cmd, target)
	if err != nil {
		return socks5.Addr{}, err
	}
	c.Close()
	return bound, nil
}
