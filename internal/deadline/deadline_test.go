package deadline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/deadline"
)

// wait bounds every wait in these tests: a test that goes wrong fails
// instead of hanging.
const wait = 10 * time.Second

// recorder is a Setter that records the deadlines it is given.
type recorder struct {
	mu    sync.Mutex
	calls []time.Time
}

func (r *recorder) SetDeadline(t time.Time) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, t)
	return nil
}

func (r *recorder) deadlines() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.calls...)
}

// readResult is what a Read in a goroutine of its own returned.
type readResult struct {
	n   int
	err error
}

func readAsync(c net.Conn, p []byte) <-chan readResult {
	ch := make(chan readResult, 1)
	go func() {
		n, err := c.Read(p)
		ch <- readResult{n, err}
	}()
	return ch
}

func await[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(wait):
		require.FailNow(t, "nothing happened in time")
		panic("unreachable")
	}
}

func TestCancelInterruptsBlockedRead(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	release := deadline.Bind(ctx, a)

	started := time.Now()
	res := readAsync(a, make([]byte, 1))
	select {
	case r := <-res:
		require.FailNow(t, "Read returned before the cancel", "n=%d err=%v", r.n, r.err)
	default:
	}
	cancel()
	r := await(t, res)
	assert.Less(t, time.Since(started), wait/2, "the cancel must end the Read at once")
	assert.Zero(t, r.n)
	require.Error(t, r.err)
	assert.ErrorIs(t, r.err, os.ErrDeadlineExceeded, "a cancel cuts the deadline short")

	err := release(r.err)
	assert.ErrorIs(t, err, context.Canceled, "release reports the context's error")
	assert.ErrorIs(t, err, os.ErrDeadlineExceeded, "and keeps the work's own")
}

func TestDeadlinePropagates(t *testing.T) {
	t.Run("to a Setter", func(t *testing.T) {
		var rec recorder
		d := time.Now().Add(time.Hour)
		ctx, cancel := context.WithDeadline(context.Background(), d)
		defer cancel()

		release := deadline.Bind(ctx, &rec)
		got := rec.deadlines()
		require.Len(t, got, 1)
		assert.True(t, got[0].Equal(d), "Bind sets the context's deadline: got %v, want %v", got[0], d)

		assert.NoError(t, release(nil))
		got = rec.deadlines()
		require.Len(t, got, 2)
		assert.True(t, got[1].IsZero(), "release clears the deadline, got %v", got[1])
	})

	t.Run("ends a blocked Read", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()

		release := deadline.Bind(ctx, a)
		r := await(t, readAsync(a, make([]byte, 1)))
		err := release(r.err)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.ErrorIs(t, err, os.ErrDeadlineExceeded)
	})

	// The connection's deadline and the context's timer are set for the
	// same instant, and the connection's may fire first: release must
	// still report the context's error, every time.
	t.Run("the context's error always", func(t *testing.T) {
		for i := range 50 {
			a, b := net.Pipe()
			ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
			release := deadline.Bind(ctx, a)
			_, err := a.Read(make([]byte, 1))
			err = release(err)
			cancel()
			a.Close()
			b.Close()
			if !assert.ErrorIs(t, err, context.DeadlineExceeded, "round %d", i) {
				break
			}
		}
	})
}

func TestReleaseClearsDeadline(t *testing.T) {
	t.Run("after a cancel", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		ctx, cancel := context.WithCancel(context.Background())
		release := deadline.Bind(ctx, a)
		cancel()
		_, err := a.Read(make([]byte, 1))
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
		require.ErrorIs(t, release(err), context.Canceled)

		// With the deadline cleared, a Read waits for data again.
		res := readAsync(a, make([]byte, 1))
		_, err = b.Write([]byte{'x'})
		require.NoError(t, err)
		r := await(t, res)
		assert.NoError(t, r.err)
		assert.Equal(t, 1, r.n)
	})

	t.Run("of a context that did not end", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(time.Hour))
		defer cancel()
		release := deadline.Bind(ctx, a)
		assert.NoError(t, release(nil))
		cancel() // after release, a cancel no longer touches the connection

		res := readAsync(a, make([]byte, 1))
		_, err := b.Write([]byte{'x'})
		require.NoError(t, err)
		r := await(t, res)
		assert.NoError(t, r.err)
	})

	t.Run("cancel after release is not seen", func(t *testing.T) {
		var rec recorder
		ctx, cancel := context.WithCancel(context.Background())
		release := deadline.Bind(ctx, &rec)
		assert.Empty(t, rec.deadlines(), "a context without a deadline sets none")
		assert.NoError(t, release(nil))
		cancel()
		got := rec.deadlines()
		require.Len(t, got, 1)
		assert.True(t, got[0].IsZero())
	})
}

// notSetter has a SetDeadline, but not a Setter's: Bind must not use it.
type notSetter struct{ called int }

func (n *notSetter) SetDeadline(time.Time) { n.called++ }

func TestNonSetterLeftAlone(t *testing.T) {
	for _, c := range []any{&notSetter{}, io.Discard, nil} {
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(time.Hour))
		release := deadline.Bind(ctx, c)
		workErr := errors.New("work failed")
		assert.Same(t, workErr, release(workErr), "a live context leaves the error as it is")
		assert.NoError(t, release(nil))

		cancel()
		err := release(workErr)
		assert.ErrorIs(t, err, context.Canceled, "release still checks the context")
		assert.ErrorIs(t, err, workErr)
		assert.ErrorIs(t, release(nil), context.Canceled)
		if n, ok := c.(*notSetter); ok {
			assert.Zero(t, n.called)
		}
	}
}

func TestBackgroundChangesNothing(t *testing.T) {
	var rec recorder
	release := deadline.Bind(context.Background(), &rec)
	workErr := errors.New("work failed")
	assert.Same(t, workErr, release(workErr))
	assert.Empty(t, rec.deadlines(), "a context that can never end sets no deadline")
}

func TestIsTimeout(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{context.DeadlineExceeded, true},
		{fmt.Errorf("dial: %w", context.DeadlineExceeded), true},
		{os.ErrDeadlineExceeded, true},
		{context.Canceled, false},
		{errors.New("other"), false},
		{nil, false},
	} {
		assert.Equal(t, tc.want, deadline.IsTimeout(tc.err), "%v", tc.err)
	}
}
