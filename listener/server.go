package listener

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync"
	"time"
)

// ListenAndServe listens on the TCP address addr and serves SOCKS there, as
// [Serve] does.
func ListenAndServe(ctx context.Context, addr string, cfg *Config) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return Serve(ctx, ln, cfg)
}

// Serve is a plain SOCKS server on ln: it relays every request the policy
// allows, through cfg.Dialer or, when that is nil, a *net.Dialer, and
// closes the connections that are not SOCKS. cfg.Tap is not used. A
// connection that is not SOCKS but HTTP/1 (a client that took the port for
// an HTTP proxy) is first answered "501 Not Implemented", with a body that
// says the port speaks SOCKS.
//
// When ctx ends, Serve stops accepting, closes the connections that are
// not relays, lets the relays under way finish for cfg.DrainTimeout, then
// closes them, and returns nil; when the listener fails, it returns its
// error.
//
// When ln is a [*Listener] (Wrap's), Serve serves it as it is, with the
// Config it was made with, and cfg is not used: a program that wants the
// listener's [Listener.Stats] wraps ln itself. A stream the listener taps
// is then closed as the connections that are not SOCKS are.
func Serve(ctx context.Context, ln net.Listener, cfg *Config) error {
	l, ok := ln.(*Listener)
	if !ok {
		c := cfg.withDefaults()
		if c.Dialer == nil {
			c.Dialer = &net.Dialer{}
		}
		c.Tap = nil
		// The records carry the caller's context: its values, for a
		// handler that logs them, not its end, which is Serve's.
		l = wrap(ln, &c, func(l *Listener) { l.logCtx = context.WithoutCancel(ctx) })
	}
	drained := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(drained)
		dctx, cancel := context.WithTimeout(context.Background(), l.cfg.DrainTimeout)
		defer cancel()
		l.Shutdown(dctx)
	})
	defer stop()
	var answering sync.WaitGroup
	defer answering.Wait()
	slots := make(chan struct{}, maxNotSOCKS)
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				<-drained
				return nil
			}
			l.Close()
			return err
		}
		select {
		case slots <- struct{}{}:
			answering.Go(func() {
				defer func() { <-slots }()
				l.refuseNotSOCKS(ctx, conn)
			})
		default: // too many at once: closed unanswered
			conn.Close()
		}
	}
}

// maxNotSOCKS is how many connections that are not SOCKS Serve answers at
// once; it closes the others unanswered.
const maxNotSOCKS = 64

// notSOCKSBody is the body of the answer to HTTP sent to a SOCKS port.
const notSOCKSBody = "This port speaks SOCKS (4, 4a and 5), not HTTP: use it as a SOCKS proxy (socks5h://host:port), not as an HTTP proxy.\n"

// refuseNotSOCKS closes c, a connection of Serve's that is not SOCKS,
// after answering it "501 Not Implemented" when it sends an HTTP/1
// request. It reads the request's head first, and what follows the answer
// until the client closes, so that the close does not reset the
// connection under the answer; all within HandshakeTimeout, or until ctx
// ends.
func (l *Listener) refuseNotSOCKS(ctx context.Context, c net.Conn) {
	defer c.Close()
	defer func() {
		if p := recover(); p != nil {
			l.logPanic(remoteAddr(c), p)
		}
	}()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	c.SetDeadline(time.Now().Add(l.cfg.HandshakeTimeout))
	head := make([]byte, 0, 4096)
	for len(head) < cap(head) && !bytes.Contains(head, []byte("\r\n\r\n")) {
		n, err := c.Read(head[len(head):cap(head)])
		head = head[:len(head)+n]
		if len(head) >= len("OPTIONS ") && !isHTTP1(head) {
			return
		}
		if err != nil {
			break
		}
	}
	if !isHTTP1(head) {
		return
	}
	resp := "HTTP/1.1 501 Not Implemented\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: " + strconv.Itoa(len(notSOCKSBody)) + "\r\n" +
		"Connection: close\r\n\r\n"
	if !bytes.HasPrefix(head, []byte("HEAD ")) {
		resp += notSOCKSBody
	}
	if _, err := c.Write([]byte(resp)); err != nil {
		return
	}
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		buf := head[:cap(head)]
		for {
			if _, err := c.Read(buf); err != nil {
				return
			}
		}
	}
}

// isHTTP1 reports whether b begins an HTTP/1 request: IsHTTP, less the
// HTTP/2 preface, which an answer in HTTP/1 would not serve.
func isHTTP1(b []byte) bool {
	return IsHTTP(b) && !bytes.HasPrefix(b, []byte("PRI "))
}
