// Package relay copies between two connections in both directions, the way
// a proxy does once its handshake is over: half-close travels through, an
// idle connection is closed, and between two TCP connections the kernel
// moves the bytes (splice on Linux) through a pipe borrowed only while
// bytes move, so that an idle relay holds no descriptor but its two
// sockets.
package relay

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sockstap/sockstap/internal/deadline"
)

// An Unwrapper is a connection wrapper that hands over the bytes it has read
// ahead and the connection it wraps, so that the copy after those bytes
// runs on the raw connection.
type Unwrapper interface {
	Unwrap() (buffered []byte, raw net.Conn)
}

// ErrIdle is the cause of a relay closed because nothing moved either way
// for the idle timeout.
var ErrIdle = errors.New("relay idle")

// Result is what a relay moved, and why it ended.
type Result struct {
	Up   int64 // bytes from client to target
	Down int64 // bytes from target to client

	// Err is why the relay ended early: [ErrIdle], the context's error, or
	// the first error of a copy. It is nil when both directions ended with
	// their sender closing.
	Err error
}

// Run copies client to target and target to client until both directions
// have ended, then closes both connections. When one side closes its write
// side, the other's is closed too (TCP half-close), and the opposite
// direction goes on. Bytes a wrapper read ahead (an [Unwrapper]) are sent
// first.
//
// idle, when positive, closes the relay once no byte has moved in either
// direction for that long. ctx ending closes it at once.
func Run(ctx context.Context, client, target net.Conn, idle time.Duration) Result {
	r := newRelay(ctx, client, target, idle)
	var wg sync.WaitGroup
	wg.Go(func() { r.copy(&r.down) })
	r.copy(&r.up)
	wg.Wait()
	return r.finish()
}

// Start is [Run] on goroutines of their own: it has spawn start one for
// each direction (spawn is a WaitGroup's Go, say, or a go statement) and
// returns at once. When both directions have ended and both connections
// are closed, the last of the two calls done with the result.
//
// Its goroutines begin with nothing on their stacks but the copy, where the
// caller's goroutine would keep its own frames for as long as the relay
// lasts: a relay that stays idle for long holds less.
func Start(ctx context.Context, client, target net.Conn, idle time.Duration, spawn func(func()), done func(Result)) {
	r := newRelay(ctx, client, target, idle)
	r.done = done
	r.running.Store(2)
	spawn(func() { r.copy(&r.up); r.end() })
	spawn(func() { r.copy(&r.down); r.end() })
}

// noStop is the stop of a relay whose context cannot end.
func noStop() bool { return true }

func newRelay(ctx context.Context, client, target net.Conn, idle time.Duration) *relay {
	r := &relay{idle: idle}
	var upFirst, downFirst []byte
	if u, ok := client.(Unwrapper); ok {
		upFirst, client = u.Unwrap()
	}
	if u, ok := target.(Unwrapper); ok {
		downFirst, target = u.Unwrap()
	}
	r.client, r.target = client, target
	r.up.init(client, target, upFirst, &r.down)
	r.down.init(target, client, downFirst, &r.up)
	if cr, tr := rawTCP(client), rawTCP(target); cr != nil && tr != nil {
		r.up.spliced, r.down.spliced = true, true
		r.up.sp.init(client, target, cr, tr)
		r.down.sp.init(target, client, tr, cr)
	}
	r.stop = noStop
	if ctx.Done() != nil {
		r.stop = context.AfterFunc(ctx, func() {
			if !r.up.done.Load() || !r.down.done.Load() {
				r.fail(ctx.Err())
			}
		})
	}
	return r
}

// end ends a direction started by Start; the last to end finishes.
func (r *relay) end() {
	if r.running.Add(-1) == 0 {
		r.done(r.finish())
	}
}

// finish closes both connections, once both directions have ended, and
// returns the result.
func (r *relay) finish() Result {
	r.stop()
	r.close()
	res := Result{Up: r.up.n.Load(), Down: r.down.n.Load()}
	if p := r.err.Load(); p != nil {
		res.Err = *p
	}
	return res
}

type relay struct {
	idle           time.Duration
	client, target net.Conn
	up, down       direction
	once           sync.Once
	err            atomic.Pointer[error]
	stop           func() bool // stops the context's AfterFunc

	// For Start: the directions still copying, and what to call after.
	running atomic.Int32
	done    func(Result)

	// probe is the question a direction that found itself idle, and the
	// other idle by its record, put to the other by cutting its copy short.
	probe atomic.Pointer[probe]
}

// probe is a direction's question to the other: has anything moved?
type probe struct {
	from *direction
	at   time.Time
}

// direction is one way of the relay.
type direction struct {
	src, dst net.Conn
	rf       io.ReaderFrom // copies src to dst: dst's own ReadFrom if it has one
	sp       splicer       // or splices src to dst, when both are TCP (Linux)
	spliced  bool          // sp, not rf
	first    []byte        // bytes read ahead from src, sent before the copy
	other    *direction
	n        atomic.Int64
	moved    atomic.Int64 // when a byte last moved (or the copy began), in UnixNano
	done     atomic.Bool  // the copy has ended
}

func (d *direction) init(src, dst net.Conn, first []byte, other *direction) {
	d.src, d.dst, d.first, d.other = src, dst, first, other
	d.rf, _ = dst.(io.ReaderFrom)
	if d.rf == nil {
		d.rf = copier{dst}
	}
	d.moved.Store(time.Now().UnixNano())
}

func (r *relay) close() {
	r.once.Do(func() {
		r.client.Close()
		r.target.Close()
	})
}

// fail records the first error that ends the relay, and closes both
// connections.
func (r *relay) fail(err error) {
	r.err.CompareAndSwap(nil, &err)
	r.close()
}

func (r *relay) copy(d *direction) {
	defer d.done.Store(true)
	if len(d.first) > 0 {
		n, err := d.dst.Write(d.first)
		d.n.Add(int64(n))
		d.first = nil
		if err != nil {
			r.fail(err)
			return
		}
	}
	for {
		r.arm(d)
		err := d.transfer()
		switch {
		case err == nil:
			// The sender closed its write side: pass it on. A connection
			// that cannot half-close has no way to say it; and over one
			// without half-close (a pipe), EOF meant closed for good.
			// When the other direction has ended too, closing says it:
			// both peers have closed their write sides, so the closes
			// send FIN, not a reset, and a shutdown before them would be
			// a system call for nothing.
			if d.other.done.Load() {
				r.close()
			} else if cw, ok := d.dst.(interface{ CloseWrite() error }); !ok || cw.CloseWrite() != nil {
				r.close()
			}
			return
		case r.idle > 0 && deadline.IsTimeout(err) && r.err.Load() == nil:
			if r.timedOut(d) {
				r.fail(ErrIdle)
				return
			}
		case r.err.Load() != nil:
			return // the relay was ended; this is the echo of its closing
		default:
			r.fail(err)
			return
		}
	}
}

// transfer copies until the source's sender closes its write side (a nil
// error), an error, or the read deadline, counting what it moves.
func (d *direction) transfer() error {
	if d.spliced {
		return d.sp.copy(d) // counts as it goes
	}
	n, err := d.rf.ReadFrom(d.src)
	d.n.Add(n)
	if n > 0 {
		d.moved.Store(time.Now().UnixNano())
	}
	return err
}

// pending reports whether the direction's source has something to read
// (bytes, its end or an error), when it can tell: for a TCP source.
func (d *direction) pending() bool {
	if d.spliced {
		return d.sp.pending()
	}
	raw := rawTCP(d.src)
	return raw != nil && queued(raw)
}

// arm sets the direction's read deadline one idle period away.
//
// Only reads get deadlines. A splice that times out writing loses the
// bytes it has taken from the source and not yet written, so a write is
// never cut short: a writer stuck on a peer that does not read is found
// out by the other direction instead (see idleBoth).
func (r *relay) arm(d *direction) {
	if r.idle > 0 {
		d.src.SetReadDeadline(time.Now().Add(r.idle))
	}
}

// timedOut reports, for a direction whose copy has just returned on its
// read deadline, whether the relay has been idle for the idle timeout.
//
// Bytes waiting in the direction's source count as movement: a copy that
// runs late, its deadline passed before it could look, has not been idle,
// and must not call the relay idle on its stale record.
func (r *relay) timedOut(d *direction) bool {
	if d.pending() {
		d.moved.Store(time.Now().UnixNano())
	}
	return r.idleBoth(d)
}

// idleBoth reports, for a direction whose copy has just returned on its
// read deadline, whether the relay has been idle for the idle timeout.
//
// A direction's record may be stale: through ReadFrom a direction learns
// what it moved only when its copy returns, which it does at least once an
// idle period unless it is stuck writing (the splice path records each
// burst it writes, but a writer stuck on a peer that does not read records
// nothing either). A direction that has been idle for the
// timeout, and finds the other idle by its record, asks the other (cuts
// its read short). The other answers when it returns: if it has been idle
// too, the relay is idle; if not, it withdraws the question. A question
// left unanswered for two idle periods means the other is stuck writing
// to a peer that does not read, and the relay is idle as well.
func (r *relay) idleBoth(d *direction) bool {
	now := time.Now()
	limit := now.Add(-r.idle).UnixNano()
	quiet := d.moved.Load() <= limit
	p := r.probe.Load()
	o := d.other
	switch {
	case p != nil && p.from == o: // o asked: answer
		if quiet {
			return true
		}
		r.probe.CompareAndSwap(p, nil)
		return false
	case !quiet:
		if p != nil {
			r.probe.CompareAndSwap(p, nil) // d's own question is moot
		}
		return false
	case o.done.Load():
		return true
	case p != nil: // d's question stands
		return now.Sub(p.at) >= 2*r.idle
	case o.moved.Load() <= limit:
		if r.probe.CompareAndSwap(nil, &probe{from: d, at: now}) {
			o.src.SetReadDeadline(now)
		}
	}
	return false
}

// copier is the ReadFrom of a connection that has none: io.Copy's.
type copier struct{ w io.Writer }

func (c copier) ReadFrom(r io.Reader) (int64, error) { return io.Copy(c.w, r) }
