// Package socks5 implements the SOCKS version 5 protocol, RFC 1928, with
// username/password authentication, RFC 1929: its messages, and the client's
// and the server's side of the handshake.
//
// The package is pure wire format: it reads from an [io.Reader] and writes
// to an [io.Writer], starts no goroutine of its own, opens no socket and
// keeps no global state. Each message has a Read function that consumes
// exactly the message's bytes, never more, so that data a client sends
// right behind its request stays on the connection, and an AppendBinary
// method that encodes it into a caller's buffer without allocating.
//
// [ServerHandshake] and [ClientHandshake] run the two sides of a
// connection's negotiation: method selection, the chosen method's
// subnegotiation, the request and the reply. Authentication methods are
// pluggable: [ServerMethod] and [ClientMethod] are what a program implements
// to add GSS-API (RFC 1961) or a private method; [NoAuth], [UserPassServer]
// and [UserPassClient] are built in.
//
// A request that fails is a [*ReplyError] carrying its [Reply] code, on both
// sides: the client returns it when the server refuses, and [ReplyFor] maps
// the error of a failed dial to the code a server should answer.
//
// Besides RFC 1928's commands, [CmdResolve] and [CmdResolvePTR] name Tor's
// extensions, so that a program can serve or send them.
package socks5
