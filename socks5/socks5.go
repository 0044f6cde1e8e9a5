package socks5

import "strconv"

// Version is the protocol version byte that opens every SOCKS5 message
// exchanged before the request's reply, RFC 1929's subnegotiation aside.
const Version = 0x05

// An AuthMethod identifies an authentication method in method negotiation
// (RFC 1928, section 3).
type AuthMethod uint8

// A Command is the request's CMD field.
type Command uint8

// An AddrType is the ATYP field that says how an address is encoded.
type AddrType uint8

// A Reply is the REP field of the server's reply: the outcome of a request.
type Reply uint8

// Wire values, as RFC 1928 assigns them, plus Tor's extensions to CMD.
const (
	AuthNone         AuthMethod = 0x00 // no authentication required
	AuthGSSAPI       AuthMethod = 0x01 // GSS-API, RFC 1961
	AuthUserPass     AuthMethod = 0x02 // username/password, RFC 1929
	AuthNoAcceptable AuthMethod = 0xff // the server accepts none of the offered methods

	CmdConnect      Command = 0x01
	CmdBind         Command = 0x02
	CmdUDPAssociate Command = 0x03
	CmdResolve      Command = 0xf0 // Tor: resolve a name, reply with its address
	CmdResolvePTR   Command = 0xf1 // Tor: resolve an address, reply with its name

	AddrIPv4   AddrType = 0x01
	AddrDomain AddrType = 0x03
	AddrIPv6   AddrType = 0x04

	Succeeded            Reply = 0x00
	GeneralFailure       Reply = 0x01 // general SOCKS server failure
	NotAllowed           Reply = 0x02 // connection not allowed by ruleset
	NetworkUnreachable   Reply = 0x03
	HostUnreachable      Reply = 0x04
	ConnectionRefused    Reply = 0x05
	TTLExpired           Reply = 0x06
	CommandNotSupported  Reply = 0x07
	AddrTypeNotSupported Reply = 0x08
)

func (m AuthMethod) String() string {
	switch {
	case m == AuthNone:
		return "no authentication"
	case m == AuthGSSAPI:
		return "GSS-API"
	case m == AuthUserPass:
		return "username/password"
	case m == AuthNoAcceptable:
		return "no acceptable methods"
	case m >= 0x03 && m <= 0x7f:
		return "IANA method " + hex(uint8(m))
	case m >= 0x80 && m <= 0xfe:
		return "private method " + hex(uint8(m))
	}
	return "method " + hex(uint8(m))
}

func (c Command) String() string {
	switch c {
	case CmdConnect:
		return "CONNECT"
	case CmdBind:
		return "BIND"
	case CmdUDPAssociate:
		return "UDP ASSOCIATE"
	case CmdResolve:
		return "RESOLVE"
	case CmdResolvePTR:
		return "RESOLVE_PTR"
	}
	return "command " + hex(uint8(c))
}

func (t AddrType) String() string {
	switch t {
	case AddrIPv4:
		return "IPv4"
	case AddrDomain:
		return "domain name"
	case AddrIPv6:
		return "IPv6"
	}
	return "address type " + hex(uint8(t))
}

func (r Reply) String() string {
	switch r {
	case Succeeded:
		return "succeeded"
	case GeneralFailure:
		return "general SOCKS server failure"
	case NotAllowed:
		return "connection not allowed by ruleset"
	case NetworkUnreachable:
		return "network unreachable"
	case HostUnreachable:
		return "host unreachable"
	case ConnectionRefused:
		return "connection refused"
	case TTLExpired:
		return "TTL expired"
	case CommandNotSupported:
		return "command not supported"
	case AddrTypeNotSupported:
		return "address type not supported"
	}
	return "reply " + hex(uint8(r))
}

func hex(b uint8) string {
	return "0x" + strconv.FormatUint(uint64(b)|0x100, 16)[1:]
}
