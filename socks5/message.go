package socks5

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"unsafe"
)

// Each message type has a Read function that consumes exactly the
// message's bytes from an io.Reader, never more, so that whatever the peer
// sent after it (optimistic data) is still there for the next reader; and
// an AppendBinary method that appends its encoding to a caller's buffer
// ([encoding.BinaryAppender]). Read functions allocate once per message.

// Greeting is the client's first message: the version and the
// authentication methods it offers (RFC 1928, section 3).
type Greeting struct {
	Methods []AuthMethod // 1 to 255 methods
}

// MethodSelection is the server's answer to a [Greeting]: the method it
// chose, or [AuthNoAcceptable].
type MethodSelection struct {
	Method AuthMethod
}

// UserPassRequest is the client's username/password subnegotiation message
// (RFC 1929). Its String method does not show the password.
type UserPassRequest struct {
	Username string // 1 to 255 bytes
	Password string // 1 to 255 bytes
}

// UserPassResponse is the server's answer to a [UserPassRequest]: Status 0
// means success, anything else failure, after which the server closes the
// connection.
type UserPassResponse struct {
	Status uint8
}

// UserPassVersion is the version byte of RFC 1929's subnegotiation.
const UserPassVersion = 0x01

// Request is the client's request: a command and its destination (RFC 1928,
// section 4).
type Request struct {
	Command Command
	Addr    Addr // DST.ADDR and DST.PORT
}

// Response is the server's reply to a [Request] (RFC 1928, section 6): the
// reply code and the bound address, BND.ADDR and BND.PORT, whose meaning
// depends on the command. A zero Addr is sent as 0.0.0.0:0.
type Response struct {
	Reply Reply
	Addr  Addr
}

// Datagram is a UDP datagram relayed through a UDP ASSOCIATE: the header
// (RSV, FRAG, the address) and the payload (RFC 1928, section 7).
type Datagram struct {
	Frag    uint8 // fragment number; 0 for a datagram that stands alone
	Addr    Addr  // DST.ADDR and DST.PORT
	Payload []byte
}

// Maximum encoded sizes.
const (
	maxGreetingLen = 2 + 255
	maxUserPassLen = 1 + 1 + 255 + 1 + 255
	maxRequestLen  = 4 + 1 + MaxNameLen + 2 // also a Response
)

// AppendBinary appends the greeting's encoding to b.
func (g Greeting) AppendBinary(b []byte) ([]byte, error) {
	if len(g.Methods) == 0 || len(g.Methods) > 255 {
		return b, errors.New("socks5: a greeting offers 1 to 255 methods")
	}
	b = append(b, Version, byte(len(g.Methods)))
	for _, m := range g.Methods {
		b = append(b, byte(m))
	}
	return b, nil
}

func (g Greeting) size() int { return 2 + len(g.Methods) }

// ReadGreeting reads a [Greeting] from r.
func ReadGreeting(r io.Reader) (Greeting, error) {
	m := msgReader{r: r, buf: make([]byte, maxGreetingLen), what: "greeting"}
	h, err := m.next(2)
	if err != nil {
		return Greeting{}, err
	}
	if h[0] != Version {
		return Greeting{}, malformed("greeting version %#02x", h[0])
	}
	if h[1] == 0 {
		return Greeting{}, errNoMethods
	}
	p, err := m.next(int(h[1]))
	if err != nil {
		return Greeting{}, err
	}
	// The methods are the reader's own buffer, seen as AuthMethods (a
	// uint8 type): no second allocation, and a capacity of their own
	// length, so an append copies rather than writes into the buffer.
	return Greeting{Methods: unsafe.Slice((*AuthMethod)(&p[0]), len(p))}, nil
}

// AppendBinary appends the method selection's encoding to b.
func (s MethodSelection) AppendBinary(b []byte) ([]byte, error) {
	return append(b, Version, byte(s.Method)), nil
}

func (MethodSelection) size() int { return 2 }

// ReadMethodSelection reads a [MethodSelection] from r.
func ReadMethodSelection(r io.Reader) (MethodSelection, error) {
	return readMethodSelection(r, make([]byte, 2))
}

// readMethodSelection reads a MethodSelection into buf, 2 bytes of the
// caller's.
func readMethodSelection(r io.Reader, buf []byte) (MethodSelection, error) {
	m := msgReader{r: r, buf: buf, what: "method selection"}
	p, err := m.next(2)
	if err != nil {
		return MethodSelection{}, err
	}
	if p[0] != Version {
		return MethodSelection{}, malformed("method selection version %#02x", p[0])
	}
	return MethodSelection{Method: AuthMethod(p[1])}, nil
}

// AppendBinary appends the request's encoding to b.
func (u UserPassRequest) AppendBinary(b []byte) ([]byte, error) {
	if u.Username == "" || len(u.Username) > 255 || u.Password == "" || len(u.Password) > 255 {
		return b, errors.New("socks5: username and password must be 1 to 255 bytes")
	}
	b = append(b, UserPassVersion, byte(len(u.Username)))
	b = append(b, u.Username...)
	b = append(b, byte(len(u.Password)))
	return append(b, u.Password...), nil
}

func (u UserPassRequest) size() int { return 3 + len(u.Username) + len(u.Password) }

// String returns the username, never the password.
func (u UserPassRequest) String() string {
	return "username " + u.Username + ", password redacted"
}

// GoString is String: %#v does not show the password either.
func (u UserPassRequest) GoString() string { return u.String() }

// ReadUserPassRequest reads a [UserPassRequest] from r.
func ReadUserPassRequest(r io.Reader) (UserPassRequest, error) {
	m := msgReader{r: r, buf: make([]byte, maxUserPassLen), what: "username/password request"}
	h, err := m.next(2)
	if err != nil {
		return UserPassRequest{}, err
	}
	if h[0] != UserPassVersion {
		return UserPassRequest{}, malformed("username/password version %#02x", h[0])
	}
	// An empty username or password breaks RFC 1929, but the lengths
	// still say where the request ends: it is read to its end, so that
	// a server answers it and closes with nothing left unread.
	user, err := m.next(int(h[1]) + 1)
	if err != nil {
		return UserPassRequest{}, err
	}
	pass, err := m.next(int(user[len(user)-1]))
	if err != nil {
		return UserPassRequest{}, err
	}
	switch {
	case h[1] == 0:
		return UserPassRequest{}, &protoError{msg: "empty username", also: errEmptyCredential}
	case len(pass) == 0:
		return UserPassRequest{}, &protoError{msg: "empty password", also: errEmptyCredential}
	}
	return UserPassRequest{Username: m.string(user[:len(user)-1]), Password: m.string(pass)}, nil
}

// AppendBinary appends the response's encoding to b.
func (u UserPassResponse) AppendBinary(b []byte) ([]byte, error) {
	return append(b, UserPassVersion, u.Status), nil
}

func (UserPassResponse) size() int { return 2 }

// ReadUserPassResponse reads a [UserPassResponse] from r.
func ReadUserPassResponse(r io.Reader) (UserPassResponse, error) {
	m := msgReader{r: r, buf: make([]byte, 2), what: "username/password response"}
	p, err := m.next(2)
	if err != nil {
		return UserPassResponse{}, err
	}
	if p[0] != UserPassVersion {
		return UserPassResponse{}, malformed("username/password response version %#02x", p[0])
	}
	return UserPassResponse{Status: p[1]}, nil
}

// AppendBinary appends the request's encoding to b. The address must be set.
func (q Request) AppendBinary(b []byte) ([]byte, error) {
	n := len(b)
	b = append(b, Version, byte(q.Command), 0)
	b, err := appendAddr(b, q.Addr)
	if err != nil {
		return b[:n], fmt.Errorf("socks5: request: %w", err)
	}
	return b, nil
}

// ReadRequest reads a [Request] from r.
func ReadRequest(r io.Reader) (Request, error) {
	cmd, a, err := readCodeAddr(r, make([]byte, maxRequestLen), "request")
	if err != nil {
		return Request{}, err
	}
	return Request{Command: Command(cmd), Addr: a}, nil
}

// readCodeAddr reads what a request and a reply are both made of: VER, a
// code (CMD, REP), RSV and an address; into buf, maxRequestLen bytes that
// nothing writes to afterwards, for a name shares its bytes.
func readCodeAddr(r io.Reader, buf []byte, what string) (byte, Addr, error) {
	m := msgReader{r: r, buf: buf, what: what}
	h, err := m.next(3)
	if err != nil {
		return 0, Addr{}, err
	}
	if h[0] != Version {
		return 0, Addr{}, malformed("%s version %#02x", what, h[0])
	}
	if h[2] != 0 {
		return 0, Addr{}, malformed("%s reserved byte %#02x", what, h[2])
	}
	a, err := m.addr()
	if err != nil {
		return 0, Addr{}, err
	}
	return h[1], a, nil
}

// AppendBinary appends the response's encoding to b.
func (p Response) AppendBinary(b []byte) ([]byte, error) {
	n := len(b)
	b = append(b, Version, byte(p.Reply), 0)
	a := p.Addr
	if a.IsZero() {
		a.IP = netip.IPv4Unspecified()
	}
	b, err := appendAddr(b, a)
	if err != nil {
		return b[:n], fmt.Errorf("socks5: reply: %w", err)
	}
	return b, nil
}

func (p Response) size() int {
	switch {
	case p.Addr.Name != "":
		return 4 + 1 + len(p.Addr.Name) + 2
	case p.Addr.IP.Is6():
		return 4 + 16 + 2
	}
	return 4 + 4 + 2 // IPv4, or the zero Addr sent as 0.0.0.0:0
}

// ReadResponse reads a [Response] from r. A reply code other than
// [Succeeded] is not an error here: the Response carries it.
func ReadResponse(r io.Reader) (Response, error) {
	return readResponse(r, make([]byte, maxRequestLen))
}

// readResponse reads a Response into buf, as readCodeAddr does.
func readResponse(r io.Reader, buf []byte) (Response, error) {
	code, a, err := readCodeAddr(r, buf, "reply")
	if err != nil {
		return Response{}, err
	}
	return Response{Reply: Reply(code), Addr: a}, nil
}

// AppendBinary appends the datagram, header and payload, to b.
func (d Datagram) AppendBinary(b []byte) ([]byte, error) {
	n := len(b)
	b = append(b, 0, 0, d.Frag)
	b, err := appendAddr(b, d.Addr)
	if err != nil {
		return b[:n], fmt.Errorf("socks5: UDP header: %w", err)
	}
	return append(b, d.Payload...), nil
}

// ParseDatagram parses a UDP datagram received on a UDP ASSOCIATE relay.
// The payload is a slice of b, not a copy.
func ParseDatagram(b []byte) (Datagram, error) {
	m := msgReader{buf: b, what: "UDP header"}
	h, err := m.next(3)
	if err != nil {
		return Datagram{}, err
	}
	if h[0] != 0 || h[1] != 0 {
		return Datagram{}, malformed("UDP header reserved bytes %#02x%02x", h[0], h[1])
	}
	a, err := m.addr()
	if err != nil {
		return Datagram{}, err
	}
	return Datagram{Frag: h[2], Addr: a, Payload: b[m.n:len(b):len(b)]}, nil
}

// msgReader reads one message piece by piece: from r into buf when r is
// set, never reading past what the message needs; from buf itself when r
// is nil.
type msgReader struct {
	r    io.Reader
	buf  []byte
	n    int    // bytes of buf consumed
	what string // the message, for errors
}

// next returns the message's next n bytes.
func (m *msgReader) next(n int) ([]byte, error) {
	if m.n+n > len(m.buf) {
		if m.r == nil {
			return nil, malformed("%s truncated", m.what)
		}
		return nil, malformed("%s too long", m.what) // unreachable with the sizes above
	}
	p := m.buf[m.n : m.n+n]
	if m.r != nil {
		if _, err := io.ReadFull(m.r, p); err != nil {
			if err == io.EOF && m.n > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, &ioError{what: m.what, err: err}
		}
	}
	m.n += n
	return p, nil
}

// string returns p, a slice of the message, as a string. When the message
// was read into a buffer of the reader's own, which nothing writes to once
// read, the string shares its bytes and costs no allocation.
func (m *msgReader) string(p []byte) string {
	if m.r == nil || len(p) == 0 {
		return string(p)
	}
	return unsafe.String(&p[0], len(p))
}

// addr reads ATYP, an address and a port.
func (m *msgReader) addr() (Addr, error) {
	t, err := m.next(1)
	if err != nil {
		return Addr{}, err
	}
	var a Addr
	switch typ := AddrType(t[0]); typ {
	case AddrIPv4:
		p, err := m.next(4 + 2)
		if err != nil {
			return Addr{}, err
		}
		a.IP = netip.AddrFrom4([4]byte(p))
	case AddrIPv6:
		p, err := m.next(16 + 2)
		if err != nil {
			return Addr{}, err
		}
		a.IP = netip.AddrFrom16([16]byte(p))
	case AddrDomain:
		l, err := m.next(1)
		if err != nil {
			return Addr{}, err
		}
		if l[0] == 0 {
			return Addr{}, malformed("%s: empty domain name", m.what)
		}
		p, err := m.next(int(l[0]) + 2)
		if err != nil {
			return Addr{}, err
		}
		a.Name = m.string(p[:l[0]])
	default:
		return Addr{}, &protoError{msg: m.what + ": " + typ.String(), also: ErrAddrType}
	}
	a.Port = binary.BigEndian.Uint16(m.buf[m.n-2 : m.n])
	return a, nil
}

// ioError is a read that failed in the middle of a message.
type ioError struct {
	what string
	err  error
}

func (e *ioError) Error() string { return "socks5: reading " + e.what + ": " + e.err.Error() }
func (e *ioError) Unwrap() error { return e.err }
