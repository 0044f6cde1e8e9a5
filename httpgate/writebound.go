package httpgate

import (
	"net"
	"sync"
	"time"
)

// writeBound bounds each write to a client's connection by the gateway's
// ClientWriteTimeout, while the gateway serves the connection's requests:
// a write is given at least fifteen sixteenths of the bound, as the
// connection's write deadline is renewed, before a write, once a
// sixteenth of it has gone by. The deadline is the connection's, and
// outlives the exchange that set it: the next exchange, on a keep-alive
// connection, renews it only when it is due (renewing it, and net/http
// clearing it after each request, cost two timer operations per request:
// 0.2 us on their own, of the 40 us of CPU a cache hit takes in
// BenchmarkProxy/hit, and the runtime's upkeep of its timers besides).
// A write a while after the deadline was set, say once the connection
// has been idle, renews it first, so a deadline left from before never
// cuts a write short.
//
// The bound is in force from an exchange of the gateway's until a request
// that is not the gateway's (the Fallback's) or a tunnel takes the
// connection over; while someone has set a deadline of their own with
// SetWriteDeadline, that one is in force instead.
type writeBound struct {
	d time.Duration // the bound; 0 is none

	mu    sync.Mutex
	on    bool      // in force
	armed time.Time // when the deadline was set to armed+d; zero when it was not
	own   bool      // a deadline set through SetWriteDeadline is in force
}

// boundWrites puts the bound in force (on), or out of it, clearing the
// deadline it set, for the writes to c from now on. It reports whether
// the bound is in force: never when c has none.
func (c *framedConn) boundWrites(on bool) bool {
	b := &c.wb
	if b.d <= 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.on == on {
		return on
	}
	b.on = on
	if !on && !b.armed.IsZero() && !b.own {
		c.Conn.SetWriteDeadline(time.Time{})
	}
	b.armed = time.Time{}
	return on
}

// Write writes to the connection, within the bound when it is in force.
func (c *framedConn) Write(p []byte) (int, error) {
	if b := &c.wb; b.d > 0 {
		b.mu.Lock()
		// time.Since reads the monotonic clock only: half the cost of
		// time.Now, which only a renewal needs.
		if b.on && !b.own && (b.armed.IsZero() || time.Since(b.armed) >= b.d/16) {
			now := time.Now()
			if err := c.Conn.SetWriteDeadline(now.Add(b.d)); err == nil {
				b.armed = now
			}
		}
		b.mu.Unlock()
	}
	return c.Conn.Write(p)
}

// SetWriteDeadline sets a deadline of the caller's for writes, which is
// in force instead of the bound; a zero t ends it. Ending none leaves the
// bound in force: net/http clears the write deadline after each request.
func (c *framedConn) SetWriteDeadline(t time.Time) error {
	b := &c.wb
	if b.d <= 0 {
		return c.Conn.SetWriteDeadline(t)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if t.IsZero() && !b.own && b.on {
		return nil
	}
	b.own = !t.IsZero()
	b.armed = time.Time{}
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets the read deadline, and the write deadline as
// SetWriteDeadline does.
func (c *framedConn) SetDeadline(t time.Time) error {
	if c.wb.d <= 0 {
		return c.Conn.SetDeadline(t)
	}
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

var _ net.Conn = (*framedConn)(nil)
