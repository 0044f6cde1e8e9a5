package httpgate

import (
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// stallError is why a body was cut off: its sender (upstream, for a
// response; the client, for a request) sent nothing of it for the
// gateway's BodyIdleTimeout. It is a timeout (net.Error).
type stallError struct {
	idle   time.Duration
	client bool // the client's request body, not upstream's response body
}

func (e *stallError) Error() string {
	if e.client {
		return "httpgate: the client sent nothing of the request body for " + e.idle.String()
	}
	return "httpgate: upstream sent nothing of the response body for " + e.idle.String()
}

// Timeout reports true: the error is one of waiting.
func (e *stallError) Timeout() bool { return true }

// Temporary reports false.
func (e *stallError) Temporary() bool { return false }

// stallBody is a body each of whose reads may wait at most idle: when
// nothing comes for that long, abort is called, which must end the read
// under way (cancel the request, close the connection, set a deadline),
// and the read, and every one after it, returns a *stallError. The clock
// runs only while a read waits, so a receiver slow to take what was read
// does not count against the sender.
type stallBody struct {
	io.ReadCloser
	idle   time.Duration
	client bool // see stallError
	abort  func()
	closed func() // called once the body is closed, if not nil

	timer   *time.Timer
	stalled atomic.Bool
}

// watchBody returns upstream's response body with its reads bounded by
// idle, or body itself when idle is not positive. abort is called when a
// read waits too long; closing the returned body stops the clock, and
// then calls closed, if it is not nil and idle is positive. A nil body is
// taken for an empty one.
func watchBody(body io.ReadCloser, idle time.Duration, abort, closed func()) io.ReadCloser {
	if body == nil {
		body = http.NoBody
	}
	if idle > 0 {
		return newStallBody(&stallBody{ReadCloser: body, idle: idle, abort: abort, closed: closed})
	}
	return body
}

// watchRequestBody is watchBody for the client's request body. It
// returns the watching body too, nil when idle is not positive, to ask
// whether it stalled: ending its read may fail the request in other ways
// first (the server cancels the request's context when a read from its
// client fails).
func watchRequestBody(body io.ReadCloser, idle time.Duration, abort func()) (io.ReadCloser, *stallBody) {
	if idle <= 0 {
		return body, nil
	}
	b := newStallBody(&stallBody{ReadCloser: body, idle: idle, client: true, abort: abort})
	return b, b
}

// newStallBody gives b its timer, stopped. (Made here, not at the first
// read: Close, which stops it, may come from another goroutine.)
func newStallBody(b *stallBody) *stallBody {
	b.timer = time.AfterFunc(b.idle, b.fire)
	b.timer.Stop()
	return b
}

func (b *stallBody) fire() {
	b.stalled.Store(true)
	b.abort()
}

func (b *stallBody) Read(p []byte) (int, error) {
	if b.stalled.Load() {
		return 0, &stallError{b.idle, b.client}
	}
	b.timer.Reset(b.idle)
	n, err := b.ReadCloser.Read(p)
	// The timer was armed by this read alone: if Stop finds it gone, it
	// fired while the read waited.
	if !b.timer.Stop() {
		b.stalled.Store(true)
		return n, &stallError{b.idle, b.client}
	}
	return n, err
}

// stall returns why the body stalled, or nil when it did not.
func (b *stallBody) stall() *stallError {
	if b == nil || !b.stalled.Load() {
		return nil
	}
	return &stallError{b.idle, b.client}
}

// Close stops the clock and closes the body.
func (b *stallBody) Close() error {
	b.timer.Stop()
	err := b.ReadCloser.Close()
	if b.closed != nil {
		b.closed()
	}
	return err
}
