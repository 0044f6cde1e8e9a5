package socks4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unsafe"
)

// Each message type has a Read function that consumes exactly the
// message's bytes from an io.Reader, never more, so that whatever the peer
// sent after it (optimistic data) is still there for the next reader; and
// an AppendBinary method that appends its encoding to a caller's buffer
// ([encoding.BinaryAppender]).
//
// The user id and the host name end with a NUL rather than being preceded
// by their length, so the Read functions read them one byte at a time, up
// to a limit: through ReadByte when the reader is an io.ByteReader (a
// bufio.Reader, a bytes.Reader), one byte per Read call otherwise. A
// request is read into a buffer of its own, which its strings share: one
// allocation for a request of ordinary size (a user id and a host name of
// up to 255 bytes each), a few more for a longer user id, whose buffer
// grows to at most [MaxRequestLen] bytes. With an io.ByteReader a reply
// costs no allocation; with any other reader, one buffer.

// MaxUserLen is the longest user id a request can carry, its NUL not
// counted. The SOCKS4 document sets no limit, and clients send long ones
// (tokens, user@host): 4 KiB holds them, and bounds the memory a request
// takes while it is read (see [MaxRequestLen]).
const MaxUserLen = 4096

// MaxNameLen is the longest host name a SOCKS4a request can carry, its NUL
// not counted: the longest name DNS, and SOCKS5, can carry.
const MaxNameLen = 255

// MaxRequestLen is the longest request there is, 4,361 bytes: the most
// [ReadRequest] reads, and the largest buffer it holds, for one request.
const MaxRequestLen = headerLen + MaxUserLen + 1 + MaxNameLen + 1

// Message sizes.
const (
	headerLen   = 1 + 1 + 2 + 4 // VN, CD, DSTPORT, DSTIP
	responseLen = 1 + 1 + 2 + 4 // VN, CD, DSTPORT, DSTIP

	// firstBufLen is the buffer a request is first read into: room for a
	// user id and a host name of 255 bytes each.
	firstBufLen = headerLen + 255 + 1 + MaxNameLen + 1
)

// Request is the client's request: a command, its destination and the
// client's user id. When Host is set the request is a SOCKS4a request: it
// carries the name for the server to resolve, and IP is ignored.
type Request struct {
	Command Command
	Port    uint16     // DSTPORT
	IP      netip.Addr // DSTIP, an IPv4 address, when Host is empty
	Host    string     // SOCKS4a: the destination's name, 1 to 255 bytes, no NUL
	User    string     // USERID: up to MaxUserLen bytes, no NUL; may be empty
}

// Response is the server's reply to a [Request]: the reply code, and a port
// and address whose meaning depends on the command. The client ignores them
// in the reply to a CONNECT; the first reply to a BIND carries the address
// the server listens on (0.0.0.0 standing for the server's own address),
// the second the address of the host that connected.
type Response struct {
	Reply Reply
	Port  uint16     // DSTPORT
	IP    netip.Addr // DSTIP, an IPv4 address; the zero Addr is sent as 0.0.0.0
}

// Target returns the request's destination as "host:port": the SOCKS4a
// host name, or the IP address. The host is empty when the request has
// neither.
func (q Request) Target() string {
	host := q.Host
	if host == "" && q.IP.IsValid() {
		host = q.IP.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(int(q.Port)))
}

// AddrPort returns the destination's IP address and port, and false when
// the request carries a SOCKS4a host name or no address.
func (q Request) AddrPort() (netip.AddrPort, bool) {
	if q.Host != "" || !q.IP.IsValid() {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(q.IP, q.Port), true
}

var (
	errNoAddr    = errors.New("no destination: neither an IPv4 address nor a host name")
	errIPv6      = errors.New("IPv6 addresses cannot travel in SOCKS4")
	errAddr4a    = errors.New("DSTIP 0.0.0.x with x other than 0 marks a SOCKS4a request: set Host to the name instead")
	errLongUser  = fmt.Errorf("user id longer than %d bytes", MaxUserLen)
	errNULUser   = errors.New("user id contains a NUL byte")
	errLongName  = fmt.Errorf("host name longer than %d bytes", MaxNameLen)
	errNULName   = errors.New("host name contains a NUL byte")
	errEmptyName = malformed("request: empty host name")
	addr4aMarker = [4]byte{0, 0, 0, 1} // DSTIP of a SOCKS4a request we encode
)

// ipv4 returns the four bytes of a, an IPv4 address or an IPv4-mapped IPv6
// address.
func ipv4(a netip.Addr) ([4]byte, error) {
	a = a.Unmap()
	switch {
	case a.Is4():
		return a.As4(), nil
	case a.IsValid():
		return [4]byte{}, errIPv6
	}
	return [4]byte{}, errNoAddr
}

// is4a reports whether ip, a request's DSTIP, is 0.0.0.x with x other
// than 0, which marks a SOCKS4a request.
func is4a(ip [4]byte) bool {
	return ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] != 0
}

// check returns why q cannot be encoded, and its DSTIP.
func (q Request) check() ([4]byte, error) {
	switch {
	case len(q.User) > MaxUserLen:
		return [4]byte{}, errLongUser
	case strings.IndexByte(q.User, 0) >= 0:
		return [4]byte{}, errNULUser
	}
	if q.Host != "" {
		switch {
		case len(q.Host) > MaxNameLen:
			return [4]byte{}, errLongName
		case strings.IndexByte(q.Host, 0) >= 0:
			return [4]byte{}, errNULName
		}
		return addr4aMarker, nil
	}
	ip, err := ipv4(q.IP)
	if err == nil && is4a(ip) {
		err = errAddr4a
	}
	return ip, err
}

// AppendBinary appends the request's encoding to b: a SOCKS4a request,
// with DSTIP 0.0.0.1, when Host is set, a SOCKS4 request otherwise. An
// IPv4-mapped IPv6 address is sent as the IPv4 address it maps. It is an
// error, and b is returned unchanged, when the request has no address, an
// IPv6 address, an IP of the form 0.0.0.x reserved for SOCKS4a, or a user
// id or host name that is too long or contains a NUL. A host name is never
// resolved here.
func (q Request) AppendBinary(b []byte) ([]byte, error) {
	ip, err := q.check()
	if err != nil {
		return b, fmt.Errorf("socks4: request: %w", err)
	}
	b = append(b, Version, byte(q.Command))
	b = binary.BigEndian.AppendUint16(b, q.Port)
	b = append(b, ip[:]...)
	b = append(b, q.User...)
	b = append(b, 0)
	if q.Host != "" {
		b = append(b, q.Host...)
		b = append(b, 0)
	}
	return b, nil
}

func (q Request) size() int {
	n := headerLen + len(q.User) + 1
	if q.Host != "" {
		n += len(q.Host) + 1
	}
	return n
}

// ReadRequest reads a [Request] from r, consuming exactly its bytes.
//
// A request whose DSTIP is 0.0.0.x with x other than 0 is a SOCKS4a
// request: its host name is read and set as Host, and IP is left the zero
// Addr (x itself is not kept). Any other DSTIP, 0.0.0.0 included, is
// returned as IP; whether to connect to it is the caller's decision. The
// command is not checked: answering a command the program does not serve
// with [Rejected] is the caller's part.
//
// A wrong version, a user id over [MaxUserLen] bytes, a host name over
// [MaxNameLen] bytes or an empty host name is an error matching
// [ErrMalformed]. Reading stops at the first wrong byte: the version is
// checked before the rest of the request is read, and a field at the first
// byte over its limit. Host and User are as the client sent them: any byte
// but NUL.
func ReadRequest(r io.Reader) (Request, error) {
	buf := make([]byte, headerLen, firstBufLen)
	if err := readFull(r, buf[:1], 0, "request"); err != nil {
		return Request{}, err
	}
	if err := checkVersion(buf[0]); err != nil {
		return Request{}, err
	}
	if err := readFull(r, buf[1:headerLen], 1, "request"); err != nil {
		return Request{}, err
	}
	q, name := parseRequestHeader(buf[:headerLen])
	buf, err := readField(r, buf, MaxUserLen, "user id")
	if err != nil {
		return Request{}, err
	}
	userLen := len(buf) - headerLen - 1
	if name {
		n := len(buf)
		buf, err = readField(r, buf, MaxNameLen, "host name")
		if err != nil {
			return Request{}, err
		}
		if len(buf) == n+1 {
			return Request{}, errEmptyName
		}
	}
	if len(buf) > headerLen+1 {
		// buf is the request's own, and nothing writes to it once read:
		// the strings share its bytes.
		q.setStrings(unsafe.String(&buf[headerLen], len(buf)-headerLen), userLen, name)
	}
	return q, nil
}

// checkVersion checks a request's first byte, VN, before anything more is
// read: a client that is not speaking SOCKS4 (a SOCKS5 client's greeting
// is 3 bytes long) may be waiting for an answer, not sending 8 bytes.
func checkVersion(vn byte) error {
	if vn != Version {
		return malformed("request version %d, want %d", vn, Version)
	}
	return nil
}

// parseRequestHeader parses CD, DSTPORT and DSTIP, and reports whether a
// SOCKS4a host name follows the user id.
func parseRequestHeader(h []byte) (q Request, name bool) {
	q.Command = Command(h[1])
	q.Port = binary.BigEndian.Uint16(h[2:4])
	ip := [4]byte(h[4:8])
	if is4a(ip) {
		return q, true
	}
	q.IP = netip.AddrFrom4(ip)
	return q, false
}

// setStrings sets User and Host from s, the fields after the header: the
// user id, its NUL, and when name is set the host name and its NUL.
func (q *Request) setStrings(s string, userLen int, name bool) {
	q.User = s[:userLen]
	if name {
		q.Host = s[userLen+1 : len(s)-1]
	}
}

// AppendBinary appends the reply's encoding to b. An IPv6 address is an
// error, and b is returned unchanged.
func (p Response) AppendBinary(b []byte) ([]byte, error) {
	var ip [4]byte
	if p.IP.IsValid() {
		var err error
		if ip, err = ipv4(p.IP); err != nil {
			return b, fmt.Errorf("socks4: reply: %w", err)
		}
	}
	b = append(b, ReplyVersion, byte(p.Reply))
	b = binary.BigEndian.AppendUint16(b, p.Port)
	return append(b, ip[:]...), nil
}

func (Response) size() int { return responseLen }

// ReadResponse reads a [Response] from r, consuming exactly its 8 bytes.
// A version other than 0 is an error matching [ErrMalformed]; a reply code
// other than [Granted] is not an error here: the Response carries it. IP is
// always an IPv4 address, 0.0.0.0 included.
func ReadResponse(r io.Reader) (Response, error) {
	b := make([]byte, responseLen)
	if err := readFull(r, b, 0, "reply"); err != nil {
		return Response{}, err
	}
	return parseResponse(b)
}

func parseResponse(b []byte) (Response, error) {
	if b[0] != ReplyVersion {
		return Response{}, malformed("reply version %d, want %d", b[0], ReplyVersion)
	}
	return Response{
		Reply: Reply(b[1]),
		Port:  binary.BigEndian.Uint16(b[2:4]),
		IP:    netip.AddrFrom4([4]byte(b[4:8])),
	}, nil
}

// readFull fills p from r. done is how many bytes of the message were
// read before, what names the message.
func readFull(r io.Reader, p []byte, done int, what string) error {
	n, err := io.ReadFull(r, p)
	if err != nil {
		return readError(what, err, done+n)
	}
	return nil
}

// readField reads a NUL-terminated field of at most limit bytes from r,
// and returns buf with the field and its NUL appended; len(buf) is how
// many bytes of the message were read before. It reads no further than
// the NUL, or than the first byte over limit: a byte at a time, through
// ReadByte when r has it (a bufio.Reader, say), which is much cheaper
// than a Read each. buf grows when it must, to MaxRequestLen at most.
func readField(r io.Reader, buf []byte, limit int, field string) ([]byte, error) {
	br, _ := r.(io.ByteReader)
	for range limit + 1 {
		if len(buf) == cap(buf) {
			buf = append(make([]byte, 0, min(2*cap(buf), MaxRequestLen)), buf...)
		}
		done := len(buf)
		buf = buf[:done+1]
		if br != nil {
			c, err := br.ReadByte()
			if err != nil {
				return nil, readError("request", err, done)
			}
			buf[done] = c
		} else if err := readFull(r, buf[done:], done, "request"); err != nil {
			return nil, err
		}
		if buf[done] == 0 {
			return buf, nil
		}
	}
	return nil, malformed("request: %s longer than %d bytes", field, limit)
}

// readError is the error of a read that failed after done bytes of the
// message: an end of input in the middle of the message is unexpected.
func readError(what string, err error, done int) error {
	if err == io.EOF && done > 0 {
		err = io.ErrUnexpectedEOF
	}
	return &ioError{what: what, err: err}
}
