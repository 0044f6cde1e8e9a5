package listener

import (
	"bufio"
	"io"
	"sync"
	"time"

	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/internal/peek"
)

// readAhead is the size of the buffer a connection is read through while it
// is sniffed and its handshake runs, and the most Tap's peek returns.
const readAhead = 512

// handle serves one accepted connection on a goroutine of its own: it
// sniffs the first byte, then hands the connection to Accept, or runs a
// SOCKS session on it. It is one of the listener's goroutines, which
// Close waits for: it calls wg.Done as it returns.
func (l *Listener) handle(t *tracked) {
	defer l.wg.Done()
	growStack(0)
	c := t.conn
	s := &session{l: l, t: t, conn: c}
	defer s.recoverPanic()

	s.in = progressReader{r: c, l: l, at: &s.hs.progress}
	br := newReader(&s.in)
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
	if err != nil && err != io.EOF && !deadline.IsTimeout(err) {
		c.Close()
		l.untrack(t)
		return
	}
	if len(first) == 0 || first[0] != 4 && first[0] != 5 {
		conn := &Conn{Conn: peek.FromReader(c, br), remote: s.client} // a copy of what br holds
		putReader(br)
		if !l.deliver(t, conn) {
			l.untrack(t)
		}
		return
	}
	s.br = br
	s.serve(first[0])
}

// readers holds read-ahead buffers that connections have given back: a
// connection needs one while it is sniffed and handshakes, a few round
// trips, and a relay none at all.
var readers sync.Pool

// newReader returns a read-ahead buffer of readAhead bytes reading r.
func newReader(r io.Reader) *bufio.Reader {
	if br, ok := readers.Get().(*bufio.Reader); ok {
		br.Reset(r)
		return br
	}
	return bufio.NewReaderSize(r, readAhead)
}

// putReader gives br back for another connection to use. Nothing may
// read through br, nor hold a slice of its buffer, afterwards: what it
// buffered must have been copied out first (peek.FromReader copies it).
func putReader(br *bufio.Reader) {
	br.Reset(nil)
	readers.Put(br)
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
