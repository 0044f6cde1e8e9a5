package listener

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// A logged is one record a capturing handler received.
type logged struct {
	ctx   context.Context
	level slog.Level
	msg   string
	attrs map[string]slog.Value
}

// capture is a slog.Handler that keeps every record, at every level.
type capture struct {
	mu      sync.Mutex
	records []logged
	changed chan struct{}
}

func newCapture() *capture { return &capture{changed: make(chan struct{}, 1)} }

func (c *capture) Enabled(context.Context, slog.Level) bool { return true }
func (c *capture) WithAttrs([]slog.Attr) slog.Handler       { return c }
func (c *capture) WithGroup(string) slog.Handler            { return c }

func (c *capture) Handle(ctx context.Context, r slog.Record) error {
	l := logged{ctx: ctx, level: r.Level, msg: r.Message, attrs: map[string]slog.Value{}}
	r.Attrs(func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value
		return true
	})
	c.mu.Lock()
	c.records = append(c.records, l)
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
	return nil
}

// all returns the records kept so far with message msg.
func (c *capture) all(msg string) []logged {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []logged
	for _, l := range c.records {
		if l.msg == msg {
			out = append(out, l)
		}
	}
	return out
}

// wait returns the first record with message msg, waiting for it at most
// sockstest.Timeout.
func (c *capture) wait(t *testing.T, msg string) logged {
	t.Helper()
	return c.waitFor(t, msg, "", "")
}

// waitFor returns the first record with message msg whose attribute key
// is value (any record, when key is empty), waiting for it at most
// sockstest.Timeout.
func (c *capture) waitFor(t *testing.T, msg, key, value string) logged {
	t.Helper()
	deadline := time.After(sockstest.Timeout)
	for {
		for _, l := range c.all(msg) {
			if key == "" || l.attrs[key].String() == value {
				return l
			}
		}
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("no %q record with %s=%q in time", msg, key, value)
		}
	}
}

// failOnce is a listener whose first Accept fails with a temporary error.
type failOnce struct {
	net.Listener
	once sync.Once
}

func (l *failOnce) Accept() (net.Conn, error) {
	var err error
	l.once.Do(func() { err = &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE} })
	if err != nil {
		return nil, err
	}
	return l.Listener.Accept()
}

// panicky is a policy that panics for one target port, and allows the rest.
func panicky(_ context.Context, r *Request) error {
	if r.Target.Port == 666 {
		panic("policy gone mad")
	}
	return nil
}

// events runs, on a listener with cfg, what makes the listener log: an
// accept that fails, a session (tapped), and a panic in the policy.
func events(t *testing.T, cfg *Config) *world {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	w := &world{t: t, l: Wrap(&failOnce{Listener: ln}, cfg)}
	t.Cleanup(func() { w.l.Close() })
	_, _, err = w.connect5("tapped.test:80")
	require.NoError(t, err)
	a, err := w.l.Accept()
	require.NoError(t, err)
	a.Close()
	_, _, err = w.connect5("panic.test:666")
	require.Error(t, err)
	return w
}

// TestQuietByDefault: with no Logger, the listener writes no record per
// session, while its own events (a failed accept, a panic) go to
// slog.Default(), with their causes as values.
func TestQuietByDefault(t *testing.T) {
	def := newCapture()
	prev := slog.Default()
	slog.SetDefault(slog.New(def))
	t.Cleanup(func() { slog.SetDefault(prev) })

	events(t, &Config{Policy: panicky})
	accept := def.wait(t, "socks accept")
	assert.Equal(t, slog.LevelWarn, accept.level)
	cause, ok := accept.attrs["cause"].Any().(error)
	require.True(t, ok, "cause %v is not an error", accept.attrs["cause"])
	assert.ErrorIs(t, cause, syscall.EMFILE)
	p := def.wait(t, "socks panic")
	assert.Equal(t, "policy gone mad", p.attrs["cause"].Any())
	assert.Empty(t, def.all("socks"), "a session's record written without a Logger")
}

// TestLoggerGetsEverything: with a Logger, the records of sessions and the
// listener's events go to it, not to slog.Default(); a record's cause is
// an error, and its context carries the session's request.
func TestLoggerGetsEverything(t *testing.T) {
	def := newCapture()
	prev := slog.Default()
	slog.SetDefault(slog.New(def))
	t.Cleanup(func() { slog.SetDefault(prev) })

	mine := newCapture()
	events(t, &Config{Policy: panicky, Logger: slog.New(mine)})
	mine.wait(t, "socks accept")
	mine.wait(t, "socks panic")
	tap := mine.waitFor(t, "socks", "decision", "tap")
	r, ok := FromContext(tap.ctx)
	require.True(t, ok, "the record's context carries no request")
	assert.Equal(t, "tapped.test:80", r.Target.String())
	fail := mine.waitFor(t, "socks", "decision", "fail")
	cause, _ := fail.attrs["cause"].Any().(error)
	require.Error(t, cause, "the panicked session's record has an error for cause: %v", fail)
	assert.Empty(t, def.all("socks accept"))
	assert.Empty(t, def.all("socks panic"))
	assert.Empty(t, def.all("socks"))
}

// TestServeLogsWithItsContext: Serve's records carry the values of the
// context it was given.
func TestServeLogsWithItsContext(t *testing.T) {
	type key struct{}
	mine := newCapture()
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "trace-42"))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, &Config{Logger: slog.New(mine)}) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	c, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(sockstest.Timeout))
	_, _, err = socks5.ClientHandshake(context.Background(), c,
		socks5.Request{Command: socks5.CmdConnect, Addr: socks5.Addr{Name: "unreachable.invalid", Port: 9}})
	require.Error(t, err)
	rec := mine.wait(t, "socks")
	assert.Equal(t, "trace-42", rec.ctx.Value(key{}))
	assert.NoError(t, rec.ctx.Err(), "the record's context ends with Serve's")
	_, ok := FromContext(rec.ctx)
	assert.True(t, ok)
}
