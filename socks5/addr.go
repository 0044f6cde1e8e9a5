package socks5

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// MaxNameLen is the longest domain name an address can carry: its length
// travels in one byte.
const MaxNameLen = 255

// An Addr is a SOCKS address: an IPv4 or IPv6 address, or a domain name
// that the server resolves, with a port. It implements [net.Addr].
//
// When Name is set the address is a domain name and IP is ignored. The zero
// Addr is no address at all; encoding it is an error, except in a
// [Response], where it stands for 0.0.0.0:0.
type Addr struct {
	Name string     // domain name, 1 to 255 bytes; empty for an IP address
	IP   netip.Addr // IPv4 or IPv6 address, when Name is empty
	Port uint16
}

// ParseAddr parses "host:port", where host is an IPv4 address, an IPv6
// address (in brackets) or a domain name of 1 to 255 bytes, and port is a
// decimal number. A name is never resolved: it is kept for the server to
// resolve. IPv6 zones cannot travel in SOCKS and are an error.
func ParseAddr(s string) (Addr, error) {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return Addr{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return Addr{}, &net.AddrError{Err: "invalid port", Addr: s}
	}
	a := Addr{Port: uint16(p)}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.Zone() != "" {
			return Addr{}, &net.AddrError{Err: "IPv6 zone cannot be sent through SOCKS", Addr: s}
		}
		a.IP = ip
		return a, nil
	}
	if i := strings.IndexByte(host, '%'); i >= 0 {
		// An address with a zone netip does not take (empty, or on IPv4)
		// is still an address with a zone, not a name.
		if _, err := netip.ParseAddr(host[:i]); err == nil {
			return Addr{}, &net.AddrError{Err: "IP zone cannot be sent through SOCKS", Addr: s}
		}
	}
	if err := checkName(host); err != nil {
		return Addr{}, &net.AddrError{Err: err.Error(), Addr: s}
	}
	a.Name = host
	return a, nil
}

// AddrFromNet converts a [net.Addr] to an Addr: a *[net.TCPAddr] or
// *[net.UDPAddr] directly (IPv4-mapped IPv6 addresses become IPv4), anything
// else by parsing its String. A nil address, which a net.Conn returns for
// an address it does not know, is an error.
func AddrFromNet(na net.Addr) (Addr, error) {
	var ap netip.AddrPort
	switch na := na.(type) {
	case nil:
		return Addr{}, errNilAddr
	case Addr:
		return na, nil
	case *Addr:
		if na == nil {
			return Addr{}, errNilAddr
		}
		return *na, nil
	case *net.TCPAddr:
		if na == nil {
			return Addr{}, errNilAddr
		}
		ap = na.AddrPort()
	case *net.UDPAddr:
		if na == nil {
			return Addr{}, errNilAddr
		}
		ap = na.AddrPort()
	default:
		return ParseAddr(na.String())
	}
	return AddrFromAddrPort(ap), nil
}

var errNilAddr = errors.New("socks5: no address (nil net.Addr)")

// AddrFromAddrPort returns the Addr of an IP address and port, with an
// IPv4-mapped IPv6 address turned into IPv4 and any zone dropped.
func AddrFromAddrPort(ap netip.AddrPort) Addr {
	return Addr{IP: ap.Addr().Unmap().WithZone(""), Port: ap.Port()}
}

// Network returns "socks".
func (a Addr) Network() string { return "socks" }

// String returns "host:port", with IPv6 addresses in brackets.
func (a Addr) String() string {
	if a.Name == "" && a.IP.IsValid() {
		return netip.AddrPortFrom(a.IP, a.Port).String() // one allocation, where joining is two
	}
	return net.JoinHostPort(a.Host(), strconv.Itoa(int(a.Port)))
}

// Host returns the domain name or the IP address as text, or "" for the
// zero Addr.
func (a Addr) Host() string {
	if a.Name != "" {
		return a.Name
	}
	if a.IP.IsValid() {
		return a.IP.String()
	}
	return ""
}

// Type returns the ATYP the address is encoded with, or 0 for the zero Addr.
func (a Addr) Type() AddrType {
	switch {
	case a.Name != "":
		return AddrDomain
	case a.IP.Is4():
		return AddrIPv4
	case a.IP.Is6():
		return AddrIPv6
	}
	return 0
}

// IsZero reports whether a is the zero Addr: no name and no IP.
func (a Addr) IsZero() bool { return a.Name == "" && !a.IP.IsValid() }

// AddrPort returns the IP address and port, and false when a is a domain
// name or the zero Addr.
func (a Addr) AddrPort() (netip.AddrPort, bool) {
	if a.Name != "" || !a.IP.IsValid() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(a.IP, a.Port), true
}

var (
	errNoAddr    = errors.New("no address")
	errEmptyName = errors.New("empty domain name")
	errLongName  = errors.New("domain name longer than 255 bytes")
)

func checkName(name string) error {
	switch {
	case name == "":
		return errEmptyName
	case len(name) > MaxNameLen:
		return errLongName
	}
	return nil
}

// appendAddr appends ATYP, the address and the port.
func appendAddr(b []byte, a Addr) ([]byte, error) {
	switch a.Type() {
	case AddrDomain:
		if err := checkName(a.Name); err != nil {
			return b, err
		}
		b = append(b, byte(AddrDomain), byte(len(a.Name)))
		b = append(b, a.Name...)
	case AddrIPv4:
		ip := a.IP.As4()
		b = append(b, byte(AddrIPv4))
		b = append(b, ip[:]...)
	case AddrIPv6:
		if a.IP.Zone() != "" {
			return b, errors.New("IPv6 zone cannot be sent through SOCKS")
		}
		ip := a.IP.As16()
		b = append(b, byte(AddrIPv6))
		b = append(b, ip[:]...)
	default:
		return b, errNoAddr
	}
	return binary.BigEndian.AppendUint16(b, a.Port), nil
}
