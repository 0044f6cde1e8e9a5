package socks4

import (
	"context"
	"encoding"
	"errors"
	"io"
	"net/netip"

	"github.com/sockstap/sockstap/internal/deadline"
)

// A Session is the server's side of a connection once the client has made
// its request, and before the server replies.
type Session struct {
	Request Request // the client's request

	// User is the user id the client claims, Request.User. Nothing has
	// verified it: checking it, against the program's rules or the
	// client's identd (RFC 1413), is the caller's part, answered with
	// [IdentdUnreachable] or [IdentdMismatch] when identd says no.
	User string

	// Stream is the connection the handshake ran on. Replies and data
	// travel over it.
	Stream io.ReadWriter
}

// Reply sends the reply to the request: its code, and an address and port
// (the zero AddrPort sends 0.0.0.0:0). The client ignores them in the reply
// to a CONNECT. For BIND, call Reply twice: once listening, with the
// address the server listens on, and once the expected host has connected,
// with that host's address; a host other than the expected one gets
// [Rejected]. An IPv6 address cannot be sent and is an error.
func (s *Session) Reply(code Reply, addr netip.AddrPort) error {
	return writeMessage(s.Stream, Response{Reply: code, Port: addr.Port(), IP: addr.Addr()})
}

// ServerHandshake runs the server's side of the handshake on rw: it reads
// the client's request, version byte included (a caller that sniffed the
// first byte replays it).
//
// It reads nothing past the request, so whatever the client sent after it
// is left on rw. When the request is malformed it answers [Rejected] and
// returns the error, which matches [ErrMalformed]. The request's command is
// not checked, nor is the user id: answering what the program does not
// serve or allow is the caller's part, through [Session.Reply].
//
// When rw has a SetDeadline method (a net.Conn does), ctx bounds the
// handshake; otherwise ctx is only checked at its end.
func ServerHandshake(ctx context.Context, rw io.ReadWriter) (_ *Session, err error) {
	release := deadline.Bind(ctx, rw)
	defer func() { err = release(err) }()

	req, err := ReadRequest(rw)
	if err != nil {
		if errors.Is(err, ErrMalformed) {
			writeMessage(rw, Response{Reply: Rejected})
		}
		return nil, err
	}
	return &Session{Request: req, User: req.User, Stream: rw}, nil
}

// ClientHandshake runs the client's side of the handshake on rw: it sends
// req and reads the reply. It returns the reply's address and port: for
// BIND, the address the server listens on for the expected host, where
// 0.0.0.0 stands for the server's own address; for CONNECT, whatever the
// server sent, which the protocol says to ignore.
//
// A reply of [Rejected], [IdentdUnreachable] or [IdentdMismatch] is
// returned as a [*ReplyError]. The server is not trusted: a version other
// than 0, a reply code the protocol does not define or a short reply is an
// error. A request that cannot be encoded (an IPv6 address, a host name
// over [MaxNameLen] bytes) is an error before anything is sent. Nothing is
// read past the reply; for BIND, read the second reply with [AwaitBind].
//
// When rw has a SetDeadline method (a net.Conn does), ctx bounds the whole
// handshake; otherwise ctx is only checked at its end.
func ClientHandshake(ctx context.Context, rw io.ReadWriter, req Request) (bound netip.AddrPort, err error) {
	release := deadline.Bind(ctx, rw)
	defer func() {
		if err = release(err); err != nil {
			bound = netip.AddrPort{}
		}
	}()

	if err := writeMessage(rw, req); err != nil {
		return netip.AddrPort{}, err
	}
	return readReply(rw)
}

// AwaitBind reads the second reply to a BIND request from rw: it comes when
// a host has connected to the bound address, and carries that host's
// address. A failure, such as a host other than the expected one, is a
// [*ReplyError].
//
// When rw has a SetDeadline method, ctx bounds the wait.
func AwaitBind(ctx context.Context, rw io.ReadWriter) (peer netip.AddrPort, err error) {
	release := deadline.Bind(ctx, rw)
	defer func() {
		if err = release(err); err != nil {
			peer = netip.AddrPort{}
		}
	}()
	return readReply(rw)
}

// readReply reads a reply and turns a failure into a *ReplyError.
func readReply(r io.Reader) (netip.AddrPort, error) {
	resp, err := ReadResponse(r)
	if err != nil {
		return netip.AddrPort{}, err
	}
	switch resp.Reply {
	case Granted:
		return netip.AddrPortFrom(resp.IP, resp.Port), nil
	case Rejected, IdentdUnreachable, IdentdMismatch:
		return netip.AddrPort{}, &ReplyError{Reply: resp.Reply}
	}
	return netip.AddrPort{}, malformed("reply code %d is not one of 90 to 93", resp.Reply)
}

// A message is a Request or a Response.
type message interface {
	encoding.BinaryAppender
	size() int // the encoding's length, when it can be encoded
}

// writeMessage encodes m into a buffer of its size, which escapes through
// w.Write, and writes it with a single Write.
func writeMessage(w io.Writer, m message) error {
	b, err := m.AppendBinary(make([]byte, 0, m.size()))
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}
