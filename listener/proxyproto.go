package listener

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// ProxyProtocol says which senders, such as an L4 balancer (HAProxy, a
// cloud load balancer), may open a connection with a PROXY protocol
// header, version 1 or 2 (HAProxy's "send-proxy" and "send-proxy-v2"), to
// tell the listener whose connection it is. The client the header
// declares is then the one the policy, the limits per client, the logs and
// [Request.Client] see, and the one [Conn.RemoteAddr] returns.
//
// The header is read before anything else, with a deadline and a size
// limit of its own. A header from a sender that is not trusted is refused:
// the connection is closed, since anyone could claim any address with it.
type ProxyProtocol struct {
	// Trusted are the networks of the senders whose headers are believed,
	// matched against the address the connection comes from. IPv4 prefixes
	// match IPv4 senders, also those seen as IPv4-mapped IPv6 addresses.
	// Empty trusts nobody: every header is refused.
	Trusted []netip.Prefix

	// Required refuses a connection from a trusted sender that does not
	// open with a header. When false, such a connection is the sender's
	// own, served as if the listener read no PROXY protocol at all.
	Required bool

	// Timeout bounds the wait for a trusted sender's header, from the
	// connection's acceptance; a balancer sends it at once. When Required
	// is false, a sender silent for SniffTimeout has no header. Zero means
	// 5 seconds.
	Timeout time.Duration

	// MaxHeaderBytes is the largest header accepted, in bytes; a longer
	// one is refused. A version 1 header is at most 107 bytes; a version 2
	// header is 16 bytes, an address block (12 bytes for IPv4, 36 for
	// IPv6) and the sender's TLVs. Zero means 1024. The parser accepts no
	// more than 4112 whatever the value.
	MaxHeaderBytes int
}

// PROXY protocol defaults.
const (
	DefaultProxyHeaderTimeout = 5 * time.Second
	DefaultMaxProxyHeader     = 1024
)

// The reasons a connection is refused for its PROXY protocol header.
var (
	errProxyUntrusted = errors.New("PROXY protocol header from an untrusted sender")
	errProxyMissing   = errors.New("no PROXY protocol header from a sender that must send one")
	errProxyTooLong   = errors.New("PROXY protocol header too long")
	errProxyFamily    = errors.New("PROXY protocol header for a connection that is not TCP over IPv4 or IPv6")

	// errNoProxyHeader says the stream does not start with a header's
	// signature; nothing of it was read.
	errNoProxyHeader = errors.New("no PROXY protocol header")
)

// The signatures a header opens with: version 1's is text, version 2's
// twelve bytes that no text protocol starts with.
var (
	proxySigV1 = []byte("PROXY")
	proxySigV2 = []byte("\r\n\r\n\x00\r\nQUIT\n")
)

// proxyV2Fixed is the size of a version 2 header before its address
// block: the signature, version and command, family, and length.
// proxyV1Max is the longest version 1 header, its line ending included.
const (
	proxyV2Fixed = 16
	proxyV1Max   = 107
)

// A proxyHeader is what a PROXY protocol header declared.
type proxyHeader struct {
	version int
	// source is the client's address and port; the zero AddrPort for a
	// connection the sender opened itself (version 2's LOCAL command,
	// version 1's UNKNOWN), for which the connection's own endpoints hold.
	source netip.AddrPort
	size   int // bytes the header took
}

func (p *ProxyProtocol) timeout() time.Duration {
	if p.Timeout > 0 {
		return p.Timeout
	}
	return DefaultProxyHeaderTimeout
}

func (p *ProxyProtocol) maxHeader() int {
	if p.MaxHeaderBytes > 0 {
		return p.MaxHeaderBytes
	}
	return DefaultMaxProxyHeader
}

// trusts reports whether p believes headers from ip.
func (p *ProxyProtocol) trusts(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, pfx := range p.Trusted {
		if pfx.Contains(ip) {
			return true
		}
	}
	return false
}

// read reads the PROXY protocol header that c opens with, through br, as
// p says, and returns the client's address: the one the header declares,
// or c's own remote address when there is none or it declares none.
// header reports whether a header was read. A connection from a sender
// not trusted has its header refused, and one without a header refused
// when p requires one: read then returns an error, and the caller closes
// c.
//
// silentUntil is when a connection that has sent nothing counts as
// silent (the sniff's deadline): read waits no longer than that for the
// first byte, unless the sender is trusted and must send a header. It
// leaves c without a read deadline.
func (p *ProxyProtocol) read(c net.Conn, br *bufio.Reader, silentUntil time.Time) (client net.Addr, header bool, err error) {
	remote := c.RemoteAddr()
	trusted := p.trusts(ipOf(remote))
	headerUntil := time.Now().Add(p.timeout())
	deadline := silentUntil
	if trusted && p.Required {
		deadline = headerUntil
	}
	c.SetReadDeadline(deadline)
	defer c.SetReadDeadline(time.Time{})
	if !trusted {
		// Only a signature is looked for, which takes no longer than the
		// sniff would wait for its byte: a header is refused unread.
		if hasProxySignature(br) {
			return nil, false, errProxyUntrusted
		}
		return remote, false, nil
	}
	// Once a signature is in, the rest of the header has until Timeout.
	h, err := readProxyHeader(br, p.maxHeader(), func() { c.SetReadDeadline(headerUntil) })
	switch {
	case errors.Is(err, errNoProxyHeader):
		if p.Required {
			return nil, false, errProxyMissing
		}
		return remote, false, nil
	case err != nil:
		return nil, false, err
	case !h.source.IsValid():
		return remote, true, nil
	}
	return net.TCPAddrFromAddrPort(h.source), true, nil
}

// proxyRefused ends the session of a connection refused for its PROXY
// protocol header, or for the lack of one: err says why. A refusal of the
// sender is a denial; a header that does not parse, a failure.
func (s *session) proxyRefused(err error) {
	r := &s.rec
	r.Start = time.Now()
	r.Client = s.client
	switch {
	case errors.Is(err, errProxyUntrusted), errors.Is(err, errProxyMissing):
		r.Decision, r.Reason = DecisionDeny, err.Error()
	default:
		r.Decision, r.Cause = DecisionFail, err
	}
	s.end()
}

// hasProxySignature reports whether br starts with a PROXY protocol
// header's signature, reading no more than the signature's length and
// consuming nothing. A stream that ends or stalls before the signature is
// complete has none.
func hasProxySignature(br *bufio.Reader) bool {
	b, _ := br.Peek(1)
	if len(b) == 0 {
		return false
	}
	sig := proxySigV1
	if b[0] == proxySigV2[0] {
		sig = proxySigV2
	} else if b[0] != proxySigV1[0] {
		return false
	}
	b, _ = br.Peek(len(sig))
	return bytes.Equal(b, sig)
}

// readProxyHeader reads the PROXY protocol header that br starts with, of
// at most max bytes, with the parser of github.com/pires/go-proxyproto.
// Its v0.15.0: v0.16.0's parser is the same code (v1.go, v2.go, header.go
// and tlv.go are identical; it changes Conn.WriteTo, unused here), but its
// go.mod asks for Go 1.26.9, newer than the project's toolchain. Both have
// the fixes of the package's advisories (CVE-2021-23351, CVE-2021-23409).
// When br does not start with a header's complete signature, it returns
// errNoProxyHeader and has consumed nothing. started, when not nil, is
// called once the signature has been seen, before the rest is read.
//
// After an error other than errNoProxyHeader, br is in no known place:
// the connection is done with.
func readProxyHeader(br *bufio.Reader, max int, started func()) (proxyHeader, error) {
	if !hasProxySignature(br) {
		return proxyHeader{}, errNoProxyHeader
	}
	if started != nil {
		started()
	}
	var h proxyHeader
	if b, _ := br.Peek(len(proxySigV1)); bytes.Equal(b, proxySigV1) {
		// A version 1 header is a line of at most 107 bytes that the
		// parser takes only when it arrived whole, in what br has
		// buffered.
		h.version = 1
		limit := min(max, proxyV1Max)
		buffered, _ := br.Peek(br.Buffered())
		end := bytes.IndexByte(buffered, '\n')
		if end >= limit || end < 0 && len(buffered) >= limit {
			return proxyHeader{}, errProxyTooLong
		}
		h.size = end + 1
	} else {
		h.version = 2
		fixed, err := br.Peek(proxyV2Fixed)
		if err != nil {
			return proxyHeader{}, fmt.Errorf("PROXY protocol header: %w", noEOF(err))
		}
		h.size = proxyV2Fixed + int(binary.BigEndian.Uint16(fixed[14:]))
		if h.size > max {
			return proxyHeader{}, errProxyTooLong
		}
	}
	ph, err := proxyproto.Read(br)
	if err != nil {
		return proxyHeader{}, fmt.Errorf("PROXY protocol header: %w", noEOF(err))
	}
	if ph.Command.IsLocal() {
		return h, nil
	}
	src, _, ok := ph.TCPAddrs()
	if !ok || src == nil {
		return proxyHeader{}, errProxyFamily
	}
	ip, ok := netip.AddrFromSlice(src.IP)
	if !ok {
		return proxyHeader{}, errProxyFamily
	}
	h.source = netip.AddrPortFrom(ip.Unmap(), uint16(src.Port))
	return h, nil
}

// noEOF turns the end of the stream inside a header into the error it is.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}
