package httpgate

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// A framingError is a request whose framing is ambiguous: a proxy that
// forwarded it would let the client and whoever reads the stream next
// disagree about where the request ends (request smuggling, RFC 9112,
// section 11.2).
type framingError struct{ reason string }

func (e *framingError) Error() string { return "httpgate: request framing: " + e.reason }

// framedConn is a client connection whose reads follow HTTP/1.1 request
// framing (RFC 9112, section 6), head by head and body by body, to stop a
// request whose framing net/http would accept but a careful proxy must
// refuse: Transfer-Encoding beside Content-Length, which net/http resolves
// quietly for Transfer-Encoding and leaves no trace of in the request a
// handler gets; a Transfer-Encoding whose last coding is not chunked; a
// Transfer-Encoding in an HTTP/1.0 request. The read that would deliver
// such a request's head delivers instead a request of its own making
// (method badFramingMethod), which the gateway answers 400 with the
// reason; then the connection reads as ended. (A read error would do
// too, but net/http takes one that comes while a request is served for
// the client gone, and cancels that request.)
//
// The parsing stops for good after a CONNECT or a request with Upgrade,
// whose connection may turn into a tunnel; a handler that serves such a
// request without taking the connection over closes it after the response
// (see [framedConn.Following]).
type framedConn struct {
	net.Conn
	p       framer
	pending []byte // what is left to read of the request made in place of a bad one
	ended   bool   // the stream reads as ended
	bad     atomic.Pointer[framingError]
	off     atomic.Bool // the parser stopped; read by handlers
	wb      writeBound  // see writebound.go
}

// badFramingMethod is the method of the request that takes the place of
// one with bad framing; badFramingRequest is all of it.
const (
	badFramingMethod  = "X-HTTPGATE-BAD-FRAMING"
	badFramingRequest = badFramingMethod + " / HTTP/1.1\r\nHost: bad-framing.invalid\r\nConnection: close\r\n\r\n"
)

// newFramedConn follows c's request framing, with heads of at most
// maxHead bytes, and bounds each write to c by bound, when it is
// positive, while the gateway serves c (see writeBound).
func newFramedConn(c net.Conn, maxHead int, bound time.Duration) *framedConn {
	return &framedConn{Conn: c, p: framer{maxHead: maxHead, first: true}, wb: writeBound{d: bound}}
}

// Read reads from the connection, following the framing of what it reads.
func (c *framedConn) Read(b []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(b, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	if c.ended {
		return 0, io.EOF
	}
	n, err := c.Conn.Read(b)
	if n == 0 || c.p.state == stateOff {
		return n, err
	}
	good, ferr := c.p.feed(b[:n])
	if c.p.state == stateOff {
		c.off.Store(true)
	}
	if ferr != nil {
		c.bad.Store(ferr.(*framingError))
		c.ended = true
		c.pending = []byte(badFramingRequest)
		if good > 0 {
			return good, nil
		}
		return c.Read(b)
	}
	return n, err
}

// badFraming returns why the request made in place of a bad one was
// made, or nil.
func (c *framedConn) badFraming() *framingError { return c.bad.Load() }

// Following reports whether the connection's framing is still followed:
// false once a CONNECT or an upgrade was read.
func (c *framedConn) Following() bool { return !c.off.Load() }

// NetConn returns the connection c wraps.
func (c *framedConn) NetConn() net.Conn { return c.Conn }

// The framer's states: where in the stream the next byte is.
const (
	stateHead      = iota // a request's head, line by line
	stateBody             // a body of known length: remain bytes
	stateChunkSize        // a chunk-size line
	stateChunkData        // a chunk's data: remain bytes
	stateChunkEnd         // the CRLF after a chunk's data
	stateTrailer          // the trailer section's lines
	stateOff              // no longer followed
)

// maxChunkLine bounds a chunk-size line, as net/http does.
const maxChunkLine = 4096

// framer follows the request framing of a stream fed to it in pieces.
type framer struct {
	maxHead int // the most bytes a head or a trailer section may have

	state  int
	line   []byte // the part of a line that an earlier piece ended in
	remain int64  // bytes of a body or a chunk still to come
	size   int    // bytes of the current head or trailer section so far

	// The head being read.
	first       bool // the request line comes next
	http10      bool // the request is HTTP/1.0 (or older)
	tunnel      bool // CONNECT, or a request with Upgrade
	cl, te      []string
	last        *[]string // the field a folded line continues, if followed
	startedHere bool      // the head began in the piece being fed
	start       int       // where in that piece
}

// feed follows p, the next bytes of the stream. On a request whose framing
// is wrong it returns an error, and good: how many bytes of p come before
// that request's head.
func (f *framer) feed(p []byte) (good int, err error) {
	f.startedHere = false
	i := 0
	for i < len(p) && f.state != stateOff {
		switch f.state {
		case stateBody, stateChunkData:
			n := int(min(f.remain, int64(len(p)-i)))
			i += n
			f.remain -= int64(n)
			if f.remain == 0 {
				if f.state == stateBody {
					f.state = stateHead
				} else {
					f.state = stateChunkEnd
				}
			}
			continue
		}
		// The states that read lines.
		j := bytes.IndexByte(p[i:], '\n')
		if f.state == stateHead && f.first && len(f.line) == 0 && !f.startedHere && f.size == 0 {
			f.startedHere, f.start = true, i
		}
		if j < 0 {
			if err := f.grow(len(p) - i); err != nil {
				return f.good(), err
			}
			f.line = append(f.line, p[i:]...)
			break
		}
		if err := f.grow(j + 1); err != nil {
			return f.good(), err
		}
		line := p[i : i+j+1]
		if len(f.line) > 0 {
			f.line = append(f.line, line...)
			line = f.line
		}
		i += j + 1
		err := f.endLine(line)
		f.line = f.line[:0]
		if err != nil {
			return f.good(), err
		}
	}
	return len(p), nil
}

// good is how many bytes of the piece being fed come before the head in
// which an error was found.
func (f *framer) good() int {
	if f.startedHere {
		return f.start
	}
	return 0
}

// grow counts n more bytes of a line and checks the bounds.
func (f *framer) grow(n int) error {
	switch f.state {
	case stateChunkSize, stateChunkEnd:
		if len(f.line)+n > maxChunkLine {
			return &framingError{"chunk line too long"}
		}
	default:
		f.size += n
		if f.size > f.maxHead {
			return &framingError{"header section too large"}
		}
	}
	return nil
}

// endLine handles a whole line, its line feed included.
func (f *framer) endLine(line []byte) error {
	switch f.state {
	case stateHead:
		return f.headLine(trimEOL(line))
	case stateTrailer:
		if len(trimEOL(line)) == 0 {
			f.state, f.size, f.startedHere = stateHead, 0, false
		}
		return nil
	case stateChunkEnd:
		if string(line) != "\r\n" {
			return &framingError{"chunk data not followed by CRLF"}
		}
		f.state = stateChunkSize
		return nil
	case stateChunkSize:
		if len(line) < 2 || line[len(line)-2] != '\r' || bytes.IndexByte(line, '\r') != len(line)-2 {
			return &framingError{"chunk-size line not ended by CRLF"}
		}
		n, ok := parseChunkSize(line[:len(line)-2])
		if !ok {
			return &framingError{"invalid chunk size"}
		}
		if n == 0 {
			f.state, f.size = stateTrailer, 0
		} else {
			f.state, f.remain = stateChunkData, int64(n)
		}
	}
	return nil
}

// headLine handles a line of a head, its end of line removed.
func (f *framer) headLine(line []byte) error {
	switch {
	case f.first:
		if len(line) == 0 { // empty lines before a request line are ignored
			f.size = 0
			return nil
		}
		f.first = false
		method, rest, _ := bytes.Cut(line, []byte(" "))
		i := bytes.LastIndexByte(rest, ' ')
		version := string(rest[i+1:])
		major, minor, ok := http.ParseHTTPVersion(version)
		f.http10 = ok && major == 1 && minor == 0 || ok && major == 0
		f.tunnel = string(method) == "CONNECT"
		return nil
	case len(line) == 0:
		return f.endHead()
	case line[0] == ' ' || line[0] == '\t': // obs-fold: continues the field before
		if f.last != nil && len(*f.last) > 0 {
			v := *f.last
			v[len(v)-1] += " " + string(bytes.TrimSpace(line))
		}
		return nil
	}
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
		return &framingError{"malformed header field"}
	}
	f.last = nil
	switch { // the value is copied out only for the fields kept
	case equalFold(name, "content-length"):
		f.cl = append(f.cl, string(bytes.TrimSpace(value)))
		f.last = &f.cl
	case equalFold(name, "transfer-encoding"):
		f.te = append(f.te, string(bytes.TrimSpace(value)))
		f.last = &f.te
	case equalFold(name, "upgrade"):
		f.tunnel = true
	}
	return nil
}

// endHead decides the framing of the body after a head (RFC 9112, section
// 6.3), or finds it faulty.
func (f *framer) endHead() error {
	cl, te, http10, tunnel := f.cl, f.te, f.http10, f.tunnel
	f.cl, f.te, f.last, f.http10, f.tunnel, f.first, f.size = nil, nil, nil, false, false, true, 0
	switch {
	case len(te) > 0:
		if http10 {
			return &framingError{"Transfer-Encoding in an HTTP/1.0 request"}
		}
		if len(cl) > 0 {
			return &framingError{"both Transfer-Encoding and Content-Length"}
		}
		var lastCoding string
		for _, v := range te {
			for c := range strings.SplitSeq(v, ",") {
				if c = strings.TrimSpace(c); c != "" {
					lastCoding = c
				}
			}
		}
		if !strings.EqualFold(lastCoding, "chunked") {
			return &framingError{"Transfer-Encoding does not end in chunked"}
		}
		f.state = stateChunkSize
	case len(cl) > 0:
		n, ok := parseContentLength(cl)
		if !ok {
			return &framingError{"invalid or conflicting Content-Length"}
		}
		if n > 0 {
			f.state, f.remain = stateBody, n
		}
	}
	if tunnel {
		f.state = stateOff
	}
	f.startedHere = false // the next head starts after this one
	return nil
}

// parseContentLength returns the length that every Content-Length value,
// and every element of a value's list, agrees on.
func parseContentLength(values []string) (int64, bool) {
	var n int64 = -1
	for _, v := range values {
		for e := range strings.SplitSeq(v, ",") {
			e = strings.TrimSpace(e)
			if e == "" || len(e) > 18 {
				return 0, false
			}
			var m int64
			for _, c := range []byte(e) {
				if c < '0' || c > '9' {
					return 0, false
				}
				m = m*10 + int64(c-'0')
			}
			if n >= 0 && m != n {
				return 0, false
			}
			n = m
		}
	}
	return n, n >= 0
}

// parseChunkSize reads a chunk-size, its extensions and trailing blanks
// ignored, as net/http does.
func parseChunkSize(b []byte) (uint64, bool) {
	b, _, _ = bytes.Cut(b, []byte(";"))
	b = bytes.TrimRight(b, " \t")
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var n uint64
	for _, c := range b {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		n = n<<4 | uint64(c)
	}
	return n, true
}

func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

func equalFold(b []byte, s string) bool {
	return len(b) == len(s) && strings.EqualFold(string(b), s)
}
