package listener

import (
	"context"
	"net"
	"net/netip"
	"strconv"

	"github.com/sockstap/sockstap/socks4"
	"github.com/sockstap/sockstap/socks5"
)

// A Request is what a SOCKS client asked for, and who asked: what the
// policy, the tap decision and the logs see, and what a tapped connection
// carries to the program.
type Request struct {
	// Version is 4 (SOCKS4 and SOCKS4a) or 5.
	Version int

	// Command is the request's command, as its code was sent. SOCKS4's
	// CONNECT and BIND have the same codes as SOCKS5's; a SOCKS4 request
	// with any other code is refused (91) before the policy is asked.
	// CommandString names it in the request's version.
	Command socks5.Command

	// Target is the destination: an IP address, or a name (SOCKS4a,
	// SOCKS5) that the proxy resolves, and a port.
	Target socks5.Addr

	// User is who the client is: for SOCKS5 the identity its
	// authentication method established, for SOCKS4 the USERID it sent,
	// which nothing has verified.
	User string

	// Method is the SOCKS5 authentication method the client used;
	// [socks5.AuthNone] for SOCKS4.
	Method socks5.AuthMethod

	// Authenticated reports whether User was proven: a SOCKS5 method other
	// than [socks5.AuthNone] succeeded.
	Authenticated bool

	// Client is the client's address, Local the address it connected to.
	Client, Local net.Addr

	// DialedIP is set when the policy is asked at dial time: the address a
	// relay is about to connect to, after resolution. It is the zero
	// netip.Addr when the request arrives.
	DialedIP netip.Addr
}

// ClientIP returns the client's IP address, or the zero netip.Addr when the
// client's address is not an IP address.
func (r *Request) ClientIP() netip.Addr {
	return ipOf(r.Client)
}

// DestIP returns the destination address as far as it is known: DialedIP
// when set, else the target's IP address, else the zero netip.Addr (a name
// not yet resolved).
func (r *Request) DestIP() netip.Addr {
	if r.DialedIP.IsValid() {
		return r.DialedIP.Unmap()
	}
	if r.Target.Name == "" {
		return r.Target.IP.Unmap()
	}
	return netip.Addr{}
}

// VersionString returns "socks4", "socks4a" or "socks5".
func (r *Request) VersionString() string {
	switch {
	case r.Version == 4 && r.Target.Name != "":
		return "socks4a"
	case r.Version == 4:
		return "socks4"
	case r.Version == 5:
		return "socks5"
	}
	return "socks" + strconv.Itoa(r.Version)
}

// CommandString returns the request's command as its version names it:
// for SOCKS5 the command's name (socks5.Command's String), for SOCKS4
// CONNECT, BIND, or "command N" for a code SOCKS4 does not have.
func (r *Request) CommandString() string {
	if r.Version == 4 {
		return socks4.Command(r.Command).String()
	}
	return r.Command.String()
}

func ipOf(a net.Addr) netip.Addr {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort().Addr().Unmap()
	case nil:
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

type requestKey struct{}

// NewContext returns a copy of ctx that carries r.
func NewContext(ctx context.Context, r *Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// FromContext returns the request ctx carries, if any.
func FromContext(ctx context.Context) (*Request, bool) {
	r, ok := ctx.Value(requestKey{}).(*Request)
	return r, ok
}

// ConnContext returns ctx carrying the request of c when c is a tapped
// SOCKS stream, and ctx itself otherwise. Its signature is that of
// [net/http.Server.ConnContext], so that handlers find the request with
// [FromContext]:
//
//	srv := &http.Server{Handler: h, ConnContext: listener.ConnContext}
func ConnContext(ctx context.Context, c net.Conn) context.Context {
	if r := RequestOf(c); r != nil {
		return NewContext(ctx, r)
	}
	return ctx
}

// RequestOf returns the request of a connection returned by
// [Listener.Accept] when it is a tapped SOCKS stream, and nil otherwise.
func RequestOf(c net.Conn) *Request {
	if tc, ok := c.(*Conn); ok {
		return tc.req
	}
	return nil
}
