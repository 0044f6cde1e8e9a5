package sockstest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// Logs records what a logger logs, for tests to wait on and look into.
type Logs struct {
	mu      sync.Mutex
	records []map[string]string
	changed chan struct{} // closed and replaced at each record
}

// NewLogger returns a logger, at every level, that records into the
// returned Logs.
func NewLogger() (*slog.Logger, *Logs) {
	l := &Logs{changed: make(chan struct{})}
	return slog.New(&logHandler{logs: l}), l
}

// All returns the records so far: each a map from key to value as text,
// with the message under "msg" and the level under "level".
func (l *Logs) All() []map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]string(nil), l.records...)
}

// Wait returns the first record for which match is true, waiting for it
// at most Timeout; it fails the test when none comes.
func (l *Logs) Wait(t testing.TB, match func(map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.After(Timeout)
	for {
		l.mu.Lock()
		for _, r := range l.records {
			if match(r) {
				l.mu.Unlock()
				return r
			}
		}
		changed := l.changed
		l.mu.Unlock()
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("sockstest: no matching log record in time; records: %v", l.All())
			return nil
		}
	}
}

// WaitN returns the first n records for which match is true, waiting for
// them at most Timeout; it fails the test when they do not come.
func (l *Logs) WaitN(t testing.TB, n int, match func(map[string]string) bool) []map[string]string {
	t.Helper()
	deadline := time.After(Timeout)
	for {
		l.mu.Lock()
		var found []map[string]string
		for _, r := range l.records {
			if match(r) {
				found = append(found, r)
			}
		}
		changed := l.changed
		l.mu.Unlock()
		if len(found) >= n {
			return found[:n]
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("sockstest: %d of %d matching log records in time; records: %v", len(found), n, l.All())
			return nil
		}
	}
}

// Key returns a matcher for Wait: a record whose key has value.
func Key(key, value string) func(map[string]string) bool {
	return func(r map[string]string) bool { return r[key] == value }
}

type logHandler struct {
	logs  *Logs
	attrs []slog.Attr
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message, "level": r.Level.String()}
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	l := h.logs
	l.mu.Lock()
	l.records = append(l.records, m)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	return nil
}

func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &logHandler{logs: h.logs, attrs: append(append([]slog.Attr(nil), h.attrs...), attrs...)}
}

func (h *logHandler) WithGroup(string) slog.Handler { return h }
