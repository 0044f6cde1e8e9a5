package listener

import (
	"bufio"
	"io"
	"time"

	"github.com/sockstap/sockstap/internal/peek"
)

// readAhead is the size of the buffer a connection is read through while it
// is sniffed and its handshake runs, and the most Tap's peek returns.
const readAhead = 512

// handle serves one accepted connection on a goroutine of its own: it
// sniffs the first byte, then hands the connection to Accept, or runs a
// SOCKS session on it.
func (l *Listener) handle(t *tracked) {
	growStack(0)
	c := t.conn
	s := &session{l: l, t: t, conn: c}
	defer s.recoverPanic()

	s.in = progressReader{r: c, l: l, at: &s.hs.progress}
	br := bufio.NewReaderSize(&s.in, readAhead)
	silentUntil := time.Now().Add(l.cfg.SniffTimeout)
	s.client = remoteAddr(c)
	if p := l.cfg.ProxyProtocol; p != nil {
		client, header, err := p.read(c, br, silentUntil)
		if err != nil {
			l.refused.Add(1)
			s.proxyRefused(err)
			return
		}
		s.client = client
		if header { // the sniff's wait starts after it
			silentUntil = time.Now().Add(l.cfg.SniffTimeout)
		}
	}
	c.SetReadDeadline(silentUntil)
	first, err := br.Peek(1)
	c.SetReadDeadline(time.Time{})
	if err != nil && err != io.EOF && !isTimeout(err) {
		c.Close()
		l.untrack(t)
		return
	}
	if len(first) == 0 || first[0] != 4 && first[0] != 5 {
		if !l.deliver(t, &Conn{Conn: peek.FromReader(c, br), remote: s.client}) {
			l.untrack(t)
		}
		return
	}
	s.br = br
	s.serve(first[0])
}

// growStack grows the goroutine's stack, while it is still shallow, to the
// size that serving a connection takes it to anyway: 8 KiB with Go 1.26,
// for a relay's dial is deep in package net. A stack grows by being copied
// to one twice its size, and the copy costs for every frame on it: once
// here, with a frame or two, rather than twice, inside the sniffing and
// inside the dial. Its result is only there to keep the frame.
//
//go:noinline
func growStack(i int) byte {
	var frame [4 << 10]byte
	return frame[i]
}
