// Package deadline ties a connection's deadline to a context, so that a
// blocking handshake on the connection ends when the context does.
package deadline

import (
	"context"
	"errors"
	"net"
	"os"
	"time"
)

// A Setter is a connection whose reads and writes a deadline can cut short;
// every net.Conn is one.
type Setter interface {
	SetDeadline(t time.Time) error
}

// past is a deadline that has always passed.
var past = time.Unix(1, 0)

// Bind makes ctx bound the reads and writes on c until the returned release
// is called: c's deadline becomes ctx's deadline, and cancelling ctx
// interrupts any blocked call. When c is not a [Setter], or ctx can never
// end, Bind changes nothing and ctx is only checked by release.
//
// A deadline c had before is replaced, and release leaves c with none:
// callers that keep deadlines of their own set them after release, or pass
// a reader and writer without SetDeadline.
//
// release takes the error the guarded work returned, clears the deadline
// Bind set, and returns the error to report: the context's error, wrapped
// around the work's own, when the context ended during the work.
func Bind(ctx context.Context, c any) (release func(err error) error) {
	s, ok := c.(Setter)
	if !ok || ctx.Done() == nil {
		return func(err error) error { return withContext(ctx, err) }
	}
	if d, ok := ctx.Deadline(); ok {
		s.SetDeadline(d)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		s.SetDeadline(past)
		close(fired)
	})
	return func(err error) error {
		if !stop() {
			<-fired // the deadline was cut short: wait until it is, before clearing it
		}
		s.SetDeadline(time.Time{})
		return withContext(ctx, err)
	}
}

// withContext returns err, or an error that wraps both ctx's error and err
// when ctx has ended.
//
// A connection whose deadline is ctx's may time out a moment before ctx's
// own timer fires: a timeout at or after ctx's deadline is ctx's deadline
// exceeded, whether or not ctx has noticed yet.
func withContext(ctx context.Context, err error) error {
	cerr := ctx.Err()
	if cerr == nil && errors.Is(err, os.ErrDeadlineExceeded) {
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			cerr = context.DeadlineExceeded
		}
	}
	switch {
	case cerr == nil:
		return err
	case err == nil:
		return cerr
	}
	return &ctxError{ctx: cerr, err: err}
}

type ctxError struct{ ctx, err error }

func (e *ctxError) Error() string   { return e.ctx.Error() + ": " + e.err.Error() }
func (e *ctxError) Unwrap() []error { return []error{e.ctx, e.err} }

// IsTimeout reports whether err is a timeout: a net.Error whose Timeout
// is true, which a passed deadline and a context's DeadlineExceeded both
// are. It is the one test of the packages for it.
func IsTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}
