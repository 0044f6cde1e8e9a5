package listener

import (
	"net"

	"github.com/sockstap/sockstap/internal/peek"
)

// Conn is a connection that [Listener.Accept] returns: either one that is
// not SOCKS, with the byte sniffed from it given back first, or a tapped
// SOCKS stream, the tunnel's inside, whose first reads give back whatever
// the client sent through it while the listener looked at it.
//
// A Conn keeps the zero-copy paths of the connection it wraps: once its
// bytes read ahead are drained, ReadFrom and WriteTo are the wrapped
// connection's (splice for TCP on Linux).
type Conn struct {
	*peek.Conn
	req    *Request
	remote net.Addr // the client's address, as a PROXY protocol header declared it
}

// RemoteAddr returns the client's address: the one a PROXY protocol header
// declared (see [Config.ProxyProtocol]), or else the connection's own.
func (c *Conn) RemoteAddr() net.Addr {
	if c.remote != nil {
		return c.remote
	}
	return c.Conn.RemoteAddr()
}

// Request returns the SOCKS request of a tapped stream, or nil for a
// connection that is not SOCKS.
func (c *Conn) Request() *Request { return c.req }
