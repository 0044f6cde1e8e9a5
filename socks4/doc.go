// Package socks4 implements the SOCKS version 4 protocol, as described in
// "SOCKS: A protocol for TCP proxy across firewalls" (Ying-Da Lee, NEC), and
// its extension SOCKS4a, "SOCKS 4A: A Simple Extension to SOCKS 4 Protocol"
// (Ying-Da Lee): its messages, and the client's and the server's side of the
// handshake.
//
// A SOCKS4 client asks the server to CONNECT to, or to BIND a port for a
// connection from, an IPv4 address and port, naming itself with a user id.
// The server answers with an 8-byte reply whose code grants the request
// ([Granted]) or rejects it ([Rejected], or one of the two codes about the
// client's identd, RFC 1413). A BIND gets two replies: one when the server
// listens, one when the expected host has connected. SOCKS4a lets the
// client send a host name instead of an address, for the server to resolve:
// a [Request] with Host set is a SOCKS4a request. IPv6 addresses cannot
// travel in either.
//
// The package is pure wire format: it reads from an [io.Reader] and writes
// to an [io.Writer], starts no goroutine of its own, opens no socket and
// keeps no global state. Each message has a Read function that consumes
// exactly the message's bytes, never more, so that data a client sends
// right behind its request stays on the connection, and an AppendBinary
// method that encodes it into a caller's buffer without allocating. The
// user id and the host name end with a NUL byte rather than a length, so
// they are read one byte at a time (through [io.ByteReader] when the reader
// has it) and at most [MaxUserLen] and [MaxNameLen] bytes long.
//
// [ServerHandshake] and [ClientHandshake] run the two sides of a
// connection's handshake; [Session.Reply] sends the server's answer and
// [AwaitBind] reads the second reply to a BIND. What the server makes of
// the request, including checking the user id against identd, is the
// caller's part.
//
// A request that fails is a [*ReplyError] carrying its [Reply] code, on both
// sides: the client returns it when the server refuses, and [ReplyFor] maps
// the error of a failed dial to the code a server should answer.
package socks4
