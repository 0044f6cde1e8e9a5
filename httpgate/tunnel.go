package httpgate

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/textproto"
	"strings"
	"time"

	"github.com/sockstap/sockstap/internal/peek"
	"github.com/sockstap/sockstap/internal/relay"
)

// connect serves a forward-proxy CONNECT: it dials the target, answers
// 200, and relays both ways, half-close included, until both ends are
// done.
func (ex *exchange) connect() {
	ctx := ex.context()
	target, err := ex.g.dial(ctx, "tcp", ex.target)
	if err != nil {
		ex.upstreamError(err)
		return
	}
	client, brw, err := ex.hijack()
	if err != nil {
		target.Close()
		ex.err = err
		return
	}
	ex.w.status = http.StatusOK
	client.SetWriteDeadline(time.Now().Add(ex.st.dialTimeout))
	_, err = fmt.Fprintf(client, "HTTP/1.1 200 Connection established\r\nVia: %s %s\r\n\r\n",
		viaVersion(ex.r.ProtoMajor, ex.r.ProtoMinor), ex.st.via)
	client.SetWriteDeadline(time.Time{})
	if err != nil {
		client.Close()
		target.Close()
		ex.err = err
		return
	}
	ex.tunnel(client, brw.Reader, target, nil)
}

// upgrade serves a request that turns its connection into something else:
// one with Upgrade (a WebSocket, say), or a CONNECT inside a tapped stream,
// which goes to the SOCKS target like any other request there. It sends
// the request on a connection of its own and, when the answer switches
// protocols (101; 2xx to a CONNECT), relays both ways; otherwise it passes
// the answer on and closes the client's connection.
func (ex *exchange) upgrade() {
	r := ex.r
	ctx := ex.context()
	conn, err := ex.g.dial(ctx, "tcp", ex.target)
	if err != nil {
		ex.upstreamError(err)
		return
	}
	isConnect := r.Method == http.MethodConnect
	out := ex.outgoing(ctx, true)
	rht := ex.st.rht
	conn.SetDeadline(time.Now().Add(rht))
	bw := bufio.NewWriter(conn)
	err = out.Write(bw)
	if err == nil {
		err = bw.Flush()
	}
	br := bufio.NewReader(conn)
	var resp *http.Response
	for err == nil {
		resp, err = http.ReadResponse(br, out)
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		ex.informational(resp.StatusCode, textproto.MIMEHeader(resp.Header))
	}
	if err != nil {
		conn.Close()
		ex.upstreamError(err)
		return
	}
	conn.SetDeadline(time.Time{})
	switched := resp.StatusCode == http.StatusSwitchingProtocols && !isConnect ||
		isConnect && resp.StatusCode/100 == 2
	if !switched {
		ex.w.Header().Set("Connection", "close")
		resp.Body = watchBody(resp.Body, ex.st.bodyIdle, func() { conn.Close() }, nil)
		ex.respond(resp, nil)
		conn.Close()
		return
	}
	upg := resp.Header.Get("Upgrade")
	if !isConnect && !hasToken(r.Header["Upgrade"], protocolName(upg)) {
		conn.Close()
		ex.fail(http.StatusBadGateway, fmt.Sprintf("upstream switched to %q, which the client did not ask for", upg), nil)
		return
	}
	h := resp.Header
	removeHopHeaders(h)
	if !isConnect {
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", upg)
	}
	ex.st.addVia(h, resp.ProtoMajor, resp.ProtoMinor)
	var ahead []byte
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		ahead = bytes.Clone(b)
	}
	client, brw, err := ex.hijack()
	if err != nil {
		conn.Close()
		ex.err = err
		return
	}
	ex.w.status = resp.StatusCode
	var head bytes.Buffer
	fmt.Fprintf(&head, "HTTP/1.1 %03d %s\r\n", resp.StatusCode, http.StatusText(resp.StatusCode))
	h.Write(&head)
	head.WriteString("\r\n")
	client.SetWriteDeadline(time.Now().Add(rht))
	_, err = client.Write(head.Bytes())
	client.SetWriteDeadline(time.Time{})
	if err != nil {
		client.Close()
		conn.Close()
		ex.err = err
		return
	}
	ex.tunnel(client, brw.Reader, conn, ahead)
}

// protocolName is the first protocol of an Upgrade value, without its
// version: "websocket" of "websocket/13, h2c".
func protocolName(v string) string {
	first, _, _ := strings.Cut(v, ",")
	name, _, _ := strings.Cut(strings.TrimSpace(first), "/")
	return name
}

// hijack takes the client's connection over from the server, with no
// deadline left on it, for a tunnel; the tunnel is counted among its
// server's (see tunnels) until the exchange ends. It fails when the server
// is closing its tunnels.
func (ex *exchange) hijack() (net.Conn, *bufio.ReadWriter, error) {
	if ex.fc != nil {
		ex.fc.boundWrites(false) // a tunnel's bounds are its own
	}
	c, brw, err := http.NewResponseController(ex.w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	ex.closed = true
	if ts := tunnelsOf(ex.r.Context()); ts != nil {
		if !ts.start() {
			c.Close()
			return nil, nil, errShutdown
		}
		ex.tunnels = ts
	}
	c.SetDeadline(time.Time{})
	return c, brw, nil
}

// tunnel relays client, after the bytes the server read ahead of it (br),
// and target, after targetAhead, until both directions have ended.
func (ex *exchange) tunnel(client net.Conn, br *bufio.Reader, target net.Conn, targetAhead []byte) {
	var ahead []byte
	if n := br.Buffered(); n > 0 {
		b, _ := br.Peek(n)
		ahead = bytes.Clone(b)
	}
	var tc net.Conn = target
	if len(targetAhead) > 0 {
		tc = peek.NewConn(target, targetAhead)
	}
	ctx := context.Background()
	if ex.tunnels != nil {
		ctx = ex.tunnels.ctx // ends when the server closes its tunnels
	}
	res := relay.Run(ctx, peek.NewConn(rawConn(client), ahead), tc, ex.st.idle)
	ex.up += res.Up
	ex.down += res.Down
	switch {
	case res.Err == nil || errors.Is(res.Err, net.ErrClosed):
	case errors.Is(res.Err, context.Canceled) && ctx.Err() != nil:
		ex.err, ex.reason = errShutdown, "closed: the server shut down"
	default:
		ex.err = res.Err
	}
}

// rawConn strips from c the wrappers that hold no bytes of their own any
// more, so that a relay reaches the TCP connection (and splice).
func rawConn(c net.Conn) net.Conn {
	for {
		switch w := c.(type) {
		case *framedConn:
			c = w.Conn
		case interface {
			Buffered() []byte
			NetConn() net.Conn
		}:
			if len(w.Buffered()) > 0 {
				return c
			}
			c = w.NetConn()
		default:
			return c
		}
	}
}
