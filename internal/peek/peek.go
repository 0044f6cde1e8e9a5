// Package peek has the connection that gives back bytes read ahead of its
// reader: the bytes sniffed or read while handshaking are read again first,
// so nothing the peer sent is lost.
package peek

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
)

// Conn is a net.Conn whose first reads return bytes read ahead from it.
// Once those are drained it is the connection it wraps: [Conn.ReadFrom] and
// [Conn.WriteTo] reach the wrapped connection's, so copies stay zero-copy.
type Conn struct {
	net.Conn
	buf []byte
}

// NewConn returns c with buf to be read before c itself. It keeps buf.
func NewConn(c net.Conn, buf []byte) *Conn {
	return &Conn{Conn: c, buf: buf}
}

// FromReader returns c with the bytes br has buffered read before c itself,
// for a bufio.Reader that read from c. br must not be used afterwards.
func FromReader(c net.Conn, br *bufio.Reader) *Conn {
	n := br.Buffered()
	if n == 0 {
		return &Conn{Conn: c}
	}
	b, _ := br.Peek(n)
	return &Conn{Conn: c, buf: bytes.Clone(b)}
}

// Read reads the bytes read ahead first, then from the connection.
func (c *Conn) Read(p []byte) (int, error) {
	if len(c.buf) > 0 {
		n := copy(p, c.buf)
		c.buf = c.buf[n:]
		if len(c.buf) == 0 {
			c.buf = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// Buffered returns the bytes read ahead and not yet read again.
func (c *Conn) Buffered() []byte { return c.buf }

// Unwrap hands over the bytes read ahead and the wrapped connection; the
// caller takes over both and must not read from c again.
func (c *Conn) Unwrap() (buffered []byte, raw net.Conn) {
	b := c.buf
	c.buf = nil
	return b, c.Conn
}

// NetConn returns the wrapped connection.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// WriteTo writes the bytes read ahead to w, then copies the connection
// into w the way the wrapped connection does (splice for TCP on Linux).
func (c *Conn) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if len(c.buf) > 0 {
		m, err := w.Write(c.buf)
		n += int64(m)
		c.buf = c.buf[m:]
		if err != nil {
			return n, err
		}
		c.buf = nil
	}
	var m int64
	var err error
	if wt, ok := c.Conn.(io.WriterTo); ok {
		m, err = wt.WriteTo(w)
	} else {
		m, err = io.Copy(w, onlyReader{c.Conn})
	}
	return n + m, err
}

// ReadFrom copies r into the connection the way the wrapped connection
// does.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(onlyWriter{c.Conn}, r)
}

// CloseWrite shuts down the writing side, when the wrapped connection
// can; otherwise it returns [errors.ErrUnsupported].
func (c *Conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// CloseRead shuts down the reading side, when the wrapped connection can;
// otherwise it returns [errors.ErrUnsupported].
func (c *Conn) CloseRead() error {
	if cr, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return cr.CloseRead()
	}
	return errors.ErrUnsupported
}

// onlyReader and onlyWriter hide every method but Read or Write, so that
// io.Copy does not come back to the method that called it.
type onlyReader struct{ io.Reader }
type onlyWriter struct{ io.Writer }
