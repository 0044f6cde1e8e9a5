package listener

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sockstap/sockstap/socks4"
)

// Defaults of SOCKS4's identd check (Config.Identd).
const (
	DefaultIdentdPort    = 113 // RFC 1413's
	DefaultIdentdTimeout = 5 * time.Second
)

// maxIdentLine is the longest reply line read from an identd, its end of
// line aside: RFC 1413 lets a client give up after 1000 characters
// without one.
const maxIdentLine = 1000

// maxIdentToken is the longest token (an operating system, a character
// set, an error type) RFC 1413 allows.
const maxIdentToken = 64

var (
	// errIdentdClosed is an identd that closed the query's connection
	// before its reply's end of line: RFC 1413 gives it the meaning of
	// "ERROR : UNKNOWN-ERROR".
	errIdentdClosed = errors.New("identd closed the connection without a reply")

	// errIdentLong is a reply line longer than maxIdentLine.
	errIdentLong = errors.New("identd reply longer than 1000 bytes")
)

// identify checks a SOCKS4 request's USERID with the identd of the
// client's host, as Config.Identd says (which says which answer is 92 and
// which 93): it returns nil when identd confirms the user, or when there
// is nothing to check (the check is off, or the request is SOCKS5), and
// otherwise a refusal, a *denied carrying SOCKS4's code.
func (s *session) identify() error {
	l := s.l
	if !l.cfg.Identd || s.req.Version != 4 {
		return nil
	}
	client, ok := tcpAddrPort(s.conn.RemoteAddr())
	local, ok2 := tcpAddrPort(s.conn.LocalAddr())
	if !ok || !ok2 {
		return identRefusal(socks4.IdentdUnreachable, "no TCP/IP addresses to ask identd about")
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.identdTimeout())
	defer cancel()
	rep, err := queryIdentd(ctx, local, client, l.identdPort())
	switch {
	case errors.Is(err, errIdentdClosed):
		return identRefusal(socks4.IdentdMismatch, "identd closed without a reply")
	case err != nil:
		return identRefusal(socks4.IdentdUnreachable, "no answer from identd: "+err.Error())
	case rep.errorType != "":
		return identRefusal(socks4.IdentdMismatch, "identd answered ERROR : "+rep.errorType)
	case rep.user != s.req.User:
		return identRefusal(socks4.IdentdMismatch, fmt.Sprintf("identd names the user %q", rep.user))
	}
	return nil
}

// identRefusal is identify's refusal: a policy's, so that the session is
// denied, with SOCKS4's code and reason.
func identRefusal(code socks4.Reply, reason string) error {
	return &denied{&socks4.ReplyError{Reply: code, Err: Deny(reason)}}
}

func (l *Listener) identdPort() uint16 {
	if l.cfg.IdentdPort != 0 {
		return l.cfg.IdentdPort
	}
	return DefaultIdentdPort
}

func (l *Listener) identdTimeout() time.Duration {
	if l.cfg.IdentdTimeout > 0 {
		return l.cfg.IdentdTimeout
	}
	return DefaultIdentdTimeout
}

// tcpAddrPort returns a's address when a is a *net.TCPAddr, with an
// IPv4-mapped address made IPv4.
func tcpAddrPort(a net.Addr) (netip.AddrPort, bool) {
	ta, ok := a.(*net.TCPAddr)
	if !ok || ta == nil {
		return netip.AddrPort{}, false
	}
	ap := ta.AddrPort()
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	return ap, ap.Addr().IsValid()
}

// queryIdentd asks the identd at port on client's host who owns the
// connection from client to local, from local's address, within ctx,
// and returns its reply, which is for that port pair.
func queryIdentd(ctx context.Context, local, client netip.AddrPort, port uint16) (identReply, error) {
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(local.Addr(), 0))}
	c, err := d.DialContext(ctx, "tcp", netip.AddrPortFrom(client.Addr(), port).String())
	if err != nil {
		return identReply{}, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := fmt.Fprintf(c, "%d, %d\r\n", client.Port(), local.Port()); err != nil {
		return identReply{}, err
	}
	line, err := readIdentLine(c)
	if err != nil {
		return identReply{}, err
	}
	rep, err := parseIdentReply(line)
	if err != nil {
		return identReply{}, err
	}
	if rep.serverPort != client.Port() || rep.clientPort != local.Port() {
		return identReply{}, fmt.Errorf("identd replied for the ports %d, %d, not %d, %d",
			rep.serverPort, rep.clientPort, client.Port(), local.Port())
	}
	return rep, nil
}

// readIdentLine reads an identd's reply line from r, and returns it
// without its end of line (CR LF, or LF alone). Whatever follows the line
// is ignored.
func readIdentLine(r io.Reader) ([]byte, error) {
	buf := make([]byte, 0, maxIdentLine+2)
	for {
		n, err := r.Read(buf[len(buf):cap(buf)])
		seen := len(buf)
		buf = buf[:seen+n]
		if i := bytes.IndexByte(buf[seen:], '\n'); i >= 0 {
			line := buf[:seen+i]
			return bytes.TrimSuffix(line, []byte{'\r'}), nil
		}
		switch {
		case len(buf) == cap(buf):
			return nil, errIdentLong
		case err == io.EOF:
			return nil, errIdentdClosed
		case err != nil:
			return nil, err
		}
	}
}

// identReply is an identd's reply to a query (RFC 1413, section 6).
type identReply struct {
	// The port pair the reply is for: the port on the identd's host (the
	// SOCKS client's), then the port on the host that asked (ours).
	serverPort, clientPort uint16

	// errorType is an ERROR reply's error type (INVALID-PORT, NO-USER,
	// HIDDEN-USER, UNKNOWN-ERROR, or one of identd's own beginning with
	// X); empty for a USERID reply.
	errorType string

	// A USERID reply's operating system, character set (empty when the
	// reply names none: US-ASCII) and user id.
	opsys, charset, user string
}

// malformedIdentError is the error of a reply that is not RFC 1413's.
type malformedIdentError struct{ why string }

func (e *malformedIdentError) Error() string { return "malformed identd reply: " + e.why }

func malformedIdent(why string) error { return &malformedIdentError{why} }

// parseIdentReply parses an identd's reply line, without its end of line,
// strictly, for it comes from whoever the client's host is:
//
//	<port> , <port> : USERID : <opsys> [, <charset>] : <user id>
//	<port> , <port> : ERROR : <error type>
//
// Ports are 1 to 5 digits, 1 to 65535; USERID, ERROR, the operating
// system, the character set and the error type are tokens of 1 to 64 of
// RFC 1413's token characters (letters, digits and some punctuation, no
// colon, comma or blank), the reply types in any case. Blanks (space and
// tab) may surround the separators, except after the colon before the
// user id: the user id is the rest of the line, less the blanks that
// follow that colon, of at least one byte, none of them NUL, CR or LF.
func parseIdentReply(line []byte) (identReply, error) {
	var r identReply
	if bytes.ContainsAny(line, "\x00\r\n") {
		return r, malformedIdent("NUL, CR or LF in the line")
	}
	ports, rest, ok := bytes.Cut(line, []byte{':'})
	if !ok {
		return r, malformedIdent("no colon after the port pair")
	}
	server, client, ok := bytes.Cut(ports, []byte{','})
	if !ok {
		return r, malformedIdent("no comma in the port pair")
	}
	var err error
	if r.serverPort, err = identPort(server); err != nil {
		return r, err
	}
	if r.clientPort, err = identPort(client); err != nil {
		return r, err
	}
	typ, rest, ok := bytes.Cut(rest, []byte{':'})
	if !ok {
		return r, malformedIdent("no colon after the reply type")
	}
	t, err := identToken(typ, "reply type")
	if err != nil {
		return r, err
	}
	switch strings.ToUpper(t) {
	case "ERROR":
		if r.errorType, err = identToken(rest, "error type"); err != nil {
			return r, err
		}
	case "USERID":
		field, user, ok := bytes.Cut(rest, []byte{':'})
		if !ok {
			return r, malformedIdent("no colon after the operating system")
		}
		opsys, charset, hasCharset := bytes.Cut(field, []byte{','})
		if r.opsys, err = identToken(opsys, "operating system"); err != nil {
			return r, err
		}
		if hasCharset {
			if r.charset, err = identToken(charset, "character set"); err != nil {
				return r, err
			}
		}
		user = bytes.TrimLeft(user, " \t")
		if len(user) == 0 {
			return r, malformedIdent("empty user id")
		}
		r.user = string(user)
	default:
		return r, malformedIdent("unknown reply type")
	}
	return r, nil
}

// identPort parses a port of the port pair: blanks, 1 to 5 digits whose
// value is 1 to 65535, blanks.
func identPort(b []byte) (uint16, error) {
	b = bytes.Trim(b, " \t")
	if len(b) == 0 || len(b) > 5 {
		return 0, malformedIdent("a port is not 1 to 5 digits")
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, malformedIdent("a port is not 1 to 5 digits")
		}
	}
	p, _ := strconv.Atoi(string(b))
	if p < 1 || p > 65535 {
		return 0, malformedIdent("a port is not 1 to 65535")
	}
	return uint16(p), nil
}

// identToken parses a token surrounded by blanks.
func identToken(b []byte, what string) (string, error) {
	b = bytes.Trim(b, " \t")
	if len(b) == 0 || len(b) > maxIdentToken {
		return "", malformedIdent(what + " is not 1 to 64 characters")
	}
	for _, c := range b {
		if !isIdentTokenChar(c) {
			return "", malformedIdent(what + " has a character tokens do not have")
		}
	}
	return string(b), nil
}

// identPunct is the punctuation RFC 1413 allows in a token, less the
// comma, which separates the operating system from the character set.
const identPunct = "-.!@#$%^&*()_=+<>/?\"'~`{}[];"

func isIdentTokenChar(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte(identPunct, c) >= 0
}
