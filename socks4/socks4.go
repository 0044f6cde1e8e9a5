package socks4

import "strconv"

// Version is the VN byte that opens every request.
const Version = 0x04

// ReplyVersion is the VN byte that opens every reply: the version of the
// reply code, which is 0.
const ReplyVersion = 0x00

// A Command is the request's CD field.
type Command uint8

// A Reply is the CD field of the server's reply: the outcome of a request.
type Reply uint8

// Wire values, as the SOCKS4 document assigns them (in decimal).
const (
	CmdConnect Command = 1
	CmdBind    Command = 2

	Granted           Reply = 90 // request granted
	Rejected          Reply = 91 // request rejected or failed
	IdentdUnreachable Reply = 92 // rejected: the server cannot connect to identd on the client
	IdentdMismatch    Reply = 93 // rejected: the client and identd report different user ids
)

// String returns the command's name, CONNECT or BIND, or its number.
func (c Command) String() string {
	switch c {
	case CmdConnect:
		return "CONNECT"
	case CmdBind:
		return "BIND"
	}
	return "command " + strconv.Itoa(int(c))
}

// String returns what the reply code means, as the SOCKS4 document words
// it, or its number.
func (r Reply) String() string {
	switch r {
	case Granted:
		return "request granted"
	case Rejected:
		return "request rejected or failed"
	case IdentdUnreachable:
		return "request rejected: cannot connect to identd on the client"
	case IdentdMismatch:
		return "request rejected: client and identd report different user ids"
	}
	return "reply " + strconv.Itoa(int(r))
}
