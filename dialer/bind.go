package dialer

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/socks4"
	"github.com/sockstap/sockstap/socks5"
)

// Listen asks the proxy to accept one connection for the program, with the
// BIND command: address, "host:port", is the peer expected to connect,
// which the proxy may check (a port of 0 leaves the port open to any).
// network is "tcp", "tcp4" or "tcp6", and address's name is resolved as
// for [Dialer.DialContext].
//
// The listener is a *[BindListener]. Its Addr is where the proxy listens,
// to be told to the peer (as FTP's PORT command tells it); Accept returns
// the peer's connection once it has connected. ctx bounds the request and
// the proxy's first reply, not the wait for the peer: bound that with
// [BindListener.SetDeadline].
//
// A failure is a [*net.OpError] whose Op is "bind".
func (d *Dialer) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	c, bound, err := d.request(ctx, cmdBind, network, address)
	if err != nil {
		return nil, err
	}
	target, _ := socks5.ParseAddr(address)
	if bound.IP.IsValid() && bound.IP.IsUnspecified() {
		ip, err := d.proxyIP(ctx, c)
		if err != nil {
			c.Close()
			return nil, d.opError(cmdBind.op, network, target, err)
		}
		bound.IP = ip
	}
	return &BindListener{d: d, network: network, target: target, addr: netAddr(bound, "tcp"), conn: c}, nil
}

// A BindListener is the proxy's side of a BIND: it accepts the one
// connection the proxy awaits for the program. It implements
// [net.Listener].
type BindListener struct {
	d       *Dialer
	network string
	target  socks5.Addr
	addr    net.Addr
	conn    net.Conn // the control connection, which becomes the peer's

	accepting sync.Mutex // one Accept at a time
	mu        sync.Mutex
	accepted  bool
	closed    bool
}

// errAcceptedOnce is the error of Accept after the one connection.
var errAcceptedOnce = errors.New("dialer: a BIND listener accepts one connection, and has")

// Addr returns the address the proxy listens on for the peer: a
// *[net.TCPAddr], or a [socks5.Addr] when the proxy named it. An
// unspecified address in the proxy's reply, which stands for the proxy's
// own, is replaced by the proxy's address.
func (l *BindListener) Addr() net.Addr { return l.addr }

// Accept waits for the peer to connect to the proxy (the proxy's second
// reply) and returns its connection, whose RemoteAddr is the peer's
// address as the proxy reports it. Data then flows on the connection that
// carried the request: the connection returned is that one. Accept
// succeeds once; afterwards, and after Close, it returns an error. A
// deadline passed ([BindListener.SetDeadline]) is a timeout error, after
// which Accept may be called again.
func (l *BindListener) Accept() (net.Conn, error) {
	l.accepting.Lock()
	defer l.accepting.Unlock()
	l.mu.Lock()
	closed, accepted := l.closed, l.accepted
	l.mu.Unlock()
	switch {
	case closed:
		return nil, l.acceptError(net.ErrClosed)
	case accepted:
		return nil, l.acceptError(errAcceptedOnce)
	}

	r := &countingReader{r: l.conn}
	rw := struct {
		io.Reader
		io.Writer
	}{r, l.conn}
	var peer socks5.Addr
	var err error
	if v, _, _ := l.d.Scheme.version(); v == 4 {
		var ap netip.AddrPort
		ap, err = socks4.AwaitBind(context.Background(), rw)
		peer = socks5.AddrFromAddrPort(ap)
	} else {
		peer, err = socks5.AwaitBind(context.Background(), rw)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, l.acceptError(net.ErrClosed)
	}
	if err != nil {
		if deadline.IsTimeout(err) && r.n == 0 {
			return nil, l.acceptError(err) // nothing read: Accept may wait again
		}
		l.closed = true
		l.conn.Close()
		return nil, l.acceptError(err)
	}
	l.accepted = true
	l.conn.SetDeadline(time.Time{})
	return &bindConn{Conn: l.conn, peer: netAddr(peer, "tcp")}, nil
}

func (l *BindListener) acceptError(err error) error {
	if deadline.IsTimeout(err) {
		err = &timeoutError{err}
	}
	return l.d.opError("accept", l.network, l.target, err)
}

// Close closes the control connection, which ends the BIND on the proxy,
// unless Accept has returned it as the peer's connection: that one is then
// the caller's to close. An Accept under way returns.
func (l *BindListener) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	if l.accepted {
		return nil
	}
	return l.conn.Close()
}

// SetDeadline sets the time after which Accept stops waiting for the peer
// and returns a timeout error; the zero time waits without end.
func (l *BindListener) SetDeadline(t time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.accepted {
		return nil
	}
	return l.conn.SetReadDeadline(t)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// bindConn is the peer's connection through a BIND: the control
// connection, with the peer's address for RemoteAddr.
type bindConn struct {
	net.Conn
	peer net.Addr
}

// RemoteAddr returns the peer's address, as the proxy reported it.
func (c *bindConn) RemoteAddr() net.Addr { return c.peer }

// NetConn returns the connection to the proxy, which carries the peer's
// data (*net.TCPConn by default).
func (c *bindConn) NetConn() net.Conn { return c.Conn }

// ReadFrom and WriteTo let io.Copy reach the TCP connection's own, which
// splice in the kernel.
func (c *bindConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

func (c *bindConn) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := c.Conn.(io.WriterTo); ok {
		return wt.WriteTo(w)
	}
	return io.Copy(w, struct{ io.Reader }{c.Conn})
}

// CloseWrite shuts down the writing side, when the connection can.
func (c *bindConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// CloseRead shuts down the reading side, when the connection can.
func (c *bindConn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return errors.ErrUnsupported
}

// netAddr returns a as a *net.TCPAddr or *net.UDPAddr (network "tcp" or
// "udp") when it is an IP address, and as itself when it is a name.
func netAddr(a socks5.Addr, network string) net.Addr {
	ap, ok := a.AddrPort()
	switch {
	case !ok:
		return a
	case network == "udp":
		return net.UDPAddrFromAddrPort(ap)
	}
	return net.TCPAddrFromAddrPort(ap)
}
