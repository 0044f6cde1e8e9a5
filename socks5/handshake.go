package socks5

import (
	"context"
	"encoding"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/sockstap/sockstap/internal/deadline"
)

// A Session is the server's side of a connection once the client has
// authenticated and made its request, and before the server replies.
type Session struct {
	Request Request    // the client's request
	Method  AuthMethod // the method the client authenticated with
	User    string     // the identity the method established, if any

	// Stream is where the session goes on: the connection the handshake
	// ran on, or the authentication method's wrapper around it. Replies
	// and data travel over it.
	Stream io.ReadWriter
}

// Reply sends the reply to the request: its code, and the bound address
// (the zero Addr sends 0.0.0.0:0). For BIND, call it twice: once when
// listening, once when the expected host has connected.
func (s *Session) Reply(code Reply, bound Addr) error {
	return writeMessage(s.Stream, Response{Reply: code, Addr: bound})
}

// ServerHandshake runs the server's side of the handshake on rw, up to the
// request: it reads the client's greeting, selects the first of methods
// (in the order given) that the client offers, runs its subnegotiation and
// reads the request. With no methods it accepts [NoAuth] only.
//
// It reads nothing past the request, so whatever the client sent after it
// is left on rw. When no method fits, or the greeting offers none, it
// answers [AuthNoAcceptable] and returns an error matching
// [ErrNoAcceptableMethod]; when the request has an address type the
// protocol does not define it answers [AddrTypeNotSupported], and when it
// is otherwise malformed [GeneralFailure]. The request's command is not
// checked: answering a command the program does not serve with
// [CommandNotSupported] is the caller's part, through [Session.Reply].
//
// When rw has a SetDeadline method (a net.Conn does), ctx bounds the whole
// handshake; otherwise ctx is only checked at its end. A context that has
// ended is an error, and an error comes with a nil Session.
func ServerHandshake(ctx context.Context, rw io.ReadWriter, methods []ServerMethod) (s *Session, err error) {
	release := deadline.Bind(ctx, rw)
	defer func() {
		if err = release(err); err != nil {
			s = nil
		}
	}()

	g, err := ReadGreeting(rw)
	if err != nil {
		if errors.Is(err, ErrNoAcceptableMethod) { // it offers no method
			writeMessage(rw, MethodSelection{Method: AuthNoAcceptable})
		}
		return nil, err
	}
	m := selectMethod(methods, g.Methods)
	if m == nil {
		writeMessage(rw, MethodSelection{Method: AuthNoAcceptable})
		return nil, ErrNoAcceptableMethod
	}
	if err := writeMessage(rw, MethodSelection{Method: m.Method()}); err != nil {
		return nil, err
	}
	auth, err := m.Verify(ctx, rw)
	if err != nil {
		return nil, fmt.Errorf("socks5: %v authentication: %w", m.Method(), err)
	}
	s = &Session{Method: m.Method(), User: auth.User, Stream: rw}
	if auth.Stream != nil {
		s.Stream = auth.Stream
	}
	s.Request, err = ReadRequest(s.Stream)
	if err != nil {
		if errors.Is(err, ErrMalformed) {
			s.Reply(ReplyFor(err), Addr{})
		}
		return nil, err
	}
	return s, nil
}

var defaultServerMethods = []ServerMethod{NoAuth{}}

func selectMethod(methods []ServerMethod, offered []AuthMethod) ServerMethod {
	if len(methods) == 0 {
		methods = defaultServerMethods
	}
	for _, m := range methods {
		if slices.Contains(offered, m.Method()) {
			return m
		}
	}
	return nil
}

// ClientHandshake runs the client's side of the handshake on rw: it offers
// methods (in the order given; none offers [NoAuth] only), runs the
// subnegotiation of the one the server selects, sends req and reads the
// reply. It returns the reply's bound address and the stream the session
// goes on over: rw, or the authentication method's wrapper around it.
//
// A request that cannot be encoded (no address, a name longer than 255
// bytes) is an error before anything is sent. A reply other than
// [Succeeded] is returned as a [*ReplyError]. The server
// is not trusted: a method it selects that was not offered, a wrong version,
// a bad length or a malformed address are errors. Nothing is read past the
// reply; for BIND, read the second reply with [AwaitBind].
//
// When rw has a SetDeadline method (a net.Conn does), ctx bounds the whole
// handshake; otherwise ctx is only checked at its end.
func ClientHandshake(ctx context.Context, rw io.ReadWriter, req Request, methods ...ClientMethod) (bound Addr, stream io.ReadWriter, err error) {
	release := deadline.Bind(ctx, rw)
	defer func() {
		if err = release(err); err != nil {
			bound, stream = Addr{}, nil
		}
	}()

	if len(methods) == 0 {
		methods = defaultClientMethods
	}
	if len(methods) > 255 {
		return Addr{}, nil, errors.New("socks5: a greeting offers 1 to 255 methods")
	}
	// One buffer serves the whole handshake: the request, encoded first
	// so that one that cannot travel (no address, a name too long) is an
	// error before anything, credentials included, is sent; the greeting
	// beside it; then the method selection; then, over the request once it
	// is sent, the reply.
	buf := make([]byte, maxRequestLen+2+len(methods))
	reqBytes, err := req.AppendBinary(buf[:0:maxRequestLen])
	if err != nil {
		return Addr{}, nil, err
	}
	greeting := append(buf[maxRequestLen:maxRequestLen], Version, byte(len(methods)))
	for _, m := range methods {
		greeting = append(greeting, byte(m.Method()))
	}
	if _, err := rw.Write(greeting); err != nil {
		return Addr{}, nil, err
	}
	sel, err := readMethodSelection(rw, greeting[:2])
	if err != nil {
		return Addr{}, nil, err
	}
	if sel.Method == AuthNoAcceptable {
		return Addr{}, nil, ErrNoAcceptableMethod
	}
	i := slices.IndexFunc(methods, func(m ClientMethod) bool { return m.Method() == sel.Method })
	if i < 0 {
		return Addr{}, nil, malformed("server selected %v, which was not offered", sel.Method)
	}
	stream, err = methods[i].Authenticate(ctx, rw)
	if err != nil {
		return Addr{}, nil, fmt.Errorf("socks5: %v authentication: %w", sel.Method, err)
	}
	if _, err := stream.Write(reqBytes); err != nil {
		return Addr{}, nil, err
	}
	bound, err = readReply(stream, buf[:maxRequestLen])
	if err != nil {
		return Addr{}, nil, err
	}
	return bound, stream, nil
}

var defaultClientMethods = []ClientMethod{NoAuth{}}

// AwaitBind reads the second reply to a BIND request from the session's
// stream: it comes when a host has connected to the bound address, and
// carries that host's address. A failure is a [*ReplyError].
//
// When rw has a SetDeadline method, ctx bounds the wait.
func AwaitBind(ctx context.Context, rw io.ReadWriter) (peer Addr, err error) {
	release := deadline.Bind(ctx, rw)
	defer func() {
		if err = release(err); err != nil {
			peer = Addr{}
		}
	}()
	return readReply(rw, make([]byte, maxRequestLen))
}

// readReply reads a reply into buf, maxRequestLen bytes that the returned
// Addr may share, and turns a failure into a *ReplyError.
func readReply(r io.Reader, buf []byte) (Addr, error) {
	resp, err := readResponse(r, buf)
	if err != nil {
		return Addr{}, err
	}
	if resp.Reply != Succeeded {
		return Addr{}, &ReplyError{Reply: resp.Reply}
	}
	return resp.Addr, nil
}

// A message is a message that the handshakes write.
type message interface {
	encoding.BinaryAppender
	size() int // the encoding's length, at most; what AppendBinary needs
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
