package listener

import (
	"cmp"
	"io"
	"net"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"
)

// The handshake limits shed the stalled, never the fast: see
// Config.MaxHandshakes for the rules. They are applied when a handshake
// starts, under the listener's mutex, and cost a list insertion and a
// map increment until a limit is reached.

// handshake is a SOCKS handshake under way, as the limits see it.
type handshake struct {
	conn net.Conn
	key  netip.Addr // its client, as MaxHandshakesPerClient counts it

	// start is when it began and progress when it last read bytes, on the
	// listener's clock (Listener.now).
	start    int64
	progress atomic.Int64

	// Guarded by the listener's mutex:
	listed     bool // in the list of handshakes under way
	shed       bool // closed by the limits to make room
	prev, next *handshake
}

// handshakes is the list of handshakes under way, oldest first.
type handshakes struct {
	head, tail *handshake
	n          int
}

func (hs *handshakes) push(h *handshake) {
	h.prev, h.next, h.listed = hs.tail, nil, true
	if hs.tail != nil {
		hs.tail.next = h
	} else {
		hs.head = h
	}
	hs.tail = h
	hs.n++
}

func (hs *handshakes) remove(h *handshake) {
	if h.prev != nil {
		h.prev.next = h.next
	} else {
		hs.head = h.next
	}
	if h.next != nil {
		h.next.prev = h.prev
	} else {
		hs.tail = h.prev
	}
	h.prev, h.next, h.listed = nil, nil, false
	hs.n--
}

// now is the listener's clock: monotonic nanoseconds since Wrap.
func (l *Listener) now() int64 { return int64(time.Since(l.epoch)) }

// clientKey is the key of a client address for the per-client limits: the
// IPv4 address, or the IPv6 address's /64, which one host or one site
// commonly holds whole.
func clientKey(ip netip.Addr) netip.Addr {
	if ip.Is6() && !ip.Is4In6() {
		p, _ := ip.Prefix(64)
		return p.Addr()
	}
	return ip.Unmap()
}

// startHandshake counts h, a handshake whose first byte has just come, and
// sheds the handshakes the limits say must make room: it closes them, and
// their goroutines find them shed when they end theirs.
func (l *Listener) startHandshake(h *handshake) {
	now := l.now()
	h.start = now
	h.progress.Store(now)
	l.mu.Lock()
	l.hs.push(h)
	l.perClient[h.key]++
	var victims []*handshake
	if max := l.cfg.MaxHandshakesPerClient; max > 0 && l.perClient[h.key] > max {
		victims = l.shedSlow(h.key, now, max, victims)
	}
	if max := l.cfg.MaxHandshakes; max > 0 && l.hs.n > max {
		victims = l.shedSilent(l.hs.n-max, h, victims)
	}
	l.mu.Unlock()
	for _, v := range victims {
		v.conn.Close()
	}
}

// endHandshake stops counting h, and reports whether the limits shed it.
func (l *Listener) endHandshake(h *handshake) (shed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if h.listed {
		l.unlist(h)
	}
	return h.shed
}

func (l *Listener) unlist(h *handshake) {
	l.hs.remove(h)
	if l.perClient[h.key]--; l.perClient[h.key] <= 0 {
		delete(l.perClient, h.key)
	}
}

// shedSlow sheds the slow handshakes of client key beyond max, the
// longest silent first, appending them to victims.
func (l *Listener) shedSlow(key netip.Addr, now int64, max int, victims []*handshake) []*handshake {
	grace := int64(l.cfg.HandshakeGrace)
	var slow []*handshake
	for h := l.hs.head; h != nil; h = h.next {
		if h.key == key && now-h.start >= grace {
			slow = append(slow, h)
		}
	}
	if len(slow) <= max {
		return victims
	}
	return l.shed(slow, len(slow)-max, victims)
}

// shedSilent sheds the n longest-silent handshakes other than h, appending
// them to victims.
func (l *Listener) shedSilent(n int, h *handshake, victims []*handshake) []*handshake {
	if n == 1 { // the usual case: one came, one goes
		var v *handshake
		for o := l.hs.head; o != nil; o = o.next {
			if o != h && (v == nil || o.progress.Load() < v.progress.Load()) {
				v = o
			}
		}
		if v == nil {
			return victims
		}
		return l.shed([]*handshake{v}, 1, victims)
	}
	all := make([]*handshake, 0, l.hs.n)
	for o := l.hs.head; o != nil; o = o.next {
		if o != h {
			all = append(all, o)
		}
	}
	return l.shed(all, min(n, len(all)), victims)
}

// shed sheds the n of candidates, oldest first, that have been silent
// longest; ties go to the older.
func (l *Listener) shed(candidates []*handshake, n int, victims []*handshake) []*handshake {
	if n < len(candidates) {
		slices.SortStableFunc(candidates, func(a, b *handshake) int {
			return cmp.Compare(a.progress.Load(), b.progress.Load())
		})
	}
	for _, v := range candidates[:n] {
		v.shed = true
		l.unlist(v)
		victims = append(victims, v)
	}
	return victims
}

// progressReader reads a handshake's connection and notes when bytes came.
type progressReader struct {
	r  io.Reader
	l  *Listener
	at *atomic.Int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.at.Store(p.l.now())
	}
	return n, err
}
