package listener

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync/atomic"
	"time"
)

// A Decision is how a SOCKS session ended up being served.
type Decision uint8

// Decisions. The zero Decision is not one a record carries.
const (
	DecisionRelay     Decision = iota + 1 // CONNECT relayed to its target
	DecisionTap                           // CONNECT handed to Accept, the program's to serve
	DecisionDeny                          // refused: by the policy, by authentication, by the brake on guessing
	DecisionFail                          // failed: a bad handshake, a dial that failed, a command not served
	DecisionDrop                          // closed unanswered by the handshake limits
	DecisionBind                          // BIND: listened for the peer, and relayed it
	DecisionAssociate                     // UDP ASSOCIATE: relayed datagrams
	DecisionResolve                       // RESOLVE or RESOLVE_PTR (Tor): answered with a name or an address
)

// String returns the decision as the log record's "decision" says it:
// relay, tap, deny, fail, drop, bind, associate, resolve.
func (d Decision) String() string {
	switch d {
	case DecisionRelay:
		return "relay"
	case DecisionTap:
		return "tap"
	case DecisionDeny:
		return "deny"
	case DecisionFail:
		return "fail"
	case DecisionDrop:
		return "drop"
	case DecisionBind:
		return "bind"
	case DecisionAssociate:
		return "associate"
	case DecisionResolve:
		return "resolve"
	}
	return fmt.Sprintf("decision %d", uint8(d))
}

// moves reports whether a session so decided moves data: its record
// always says how many bytes.
func (d Decision) moves() bool {
	return d == DecisionRelay || d == DecisionBind || d == DecisionAssociate
}

// A Record is the account of one SOCKS session, made when it ends: the
// listener's log record is written from it, and Config.OnRecord receives
// it, so that a program counts, bills or alerts without parsing logs.
type Record struct {
	// Client is the client's address; nil when its connection does not
	// know it.
	Client net.Addr

	// Request is what the client asked for; nil when the session ended
	// before a request was read (a failed or dropped handshake).
	Request *Request

	// Decision is how the session was served.
	Decision Decision

	// Reason says why a session was denied, failed or dropped, when there
	// is more to say than Cause: the policy's reason, "command not
	// supported".
	Reason string

	// Reply is the last reply code sent to the client: a socks5.Reply or
	// a socks4.Reply, by Request.Version; nil when none was sent.
	Reply fmt.Stringer

	// Bytes moved from the client to the far end (up) and back (down);
	// for UDP ASSOCIATE, the datagrams' payloads.
	BytesUp, BytesDown int64

	// Datagrams relayed each way, for UDP ASSOCIATE.
	DatagramsUp, DatagramsDown int64

	// Start is when the session began: its first byte was seen.
	Start time.Time

	// Handshake is how long the handshake took, from Start to the
	// request read (or to its failure).
	Handshake time.Duration

	// Dial is how long a relay's dial of its target took, name
	// resolution included, whether it succeeded or not; zero when the
	// session dialed nothing.
	Dial time.Duration

	// Duration is how long the session lasted.
	Duration time.Duration

	// Cause is the error that ended the session, if any: why a handshake
	// or a dial failed, why a relay ended early (the listener's Close or
	// Shutdown among them: net.ErrClosed, or the context's error).
	Cause error
}

// traffic is what a session moved, counted by whichever goroutines move
// it, and read into the record at its end.
type traffic struct {
	bytesUp, bytesDown         atomic.Int64
	datagramsUp, datagramsDown atomic.Int64
}

// end ends the session, once, whoever calls it: it closes the client's
// connection (unless the program has it, s.kept) and every resource the
// session opened, lets go of the connection, and makes the session's
// record: the log record, and Config.OnRecord's.
func (s *session) end() {
	if s.claim() {
		s.finish()
	}
}

// claim reports whether the caller is the one to end the session: the
// first to ask. Goroutines that may end a session at the same time (a
// relay's two) claim it before they write its record, then finish it.
func (s *session) claim() bool { return s.ended.CompareAndSwap(false, true) }

// finish ends a session the caller has claimed; see end.
func (s *session) finish() {
	s.t.closeAll(s.kept)
	s.l.untrack(s.t)
	r := &s.rec
	r.Duration = time.Since(r.Start)
	r.Request = s.req
	r.BytesUp += s.traffic.bytesUp.Load()
	r.BytesDown += s.traffic.bytesDown.Load()
	r.DatagramsUp += s.traffic.datagramsUp.Load()
	r.DatagramsDown += s.traffic.datagramsDown.Load()
	s.log()
	if hook := s.l.cfg.OnRecord; hook != nil {
		s.l.callOnRecord(hook, r)
	}
}

// finishSafely is finish on a goroutine that has recovered a panic
// already: a panic in it is not let out.
func (s *session) finishSafely() {
	defer func() { recover() }()
	s.finish()
}

// callOnRecord calls the program's hook, and recovers and logs a panic in
// it.
func (l *Listener) callOnRecord(hook func(*Record), r *Record) {
	defer func() {
		if p := recover(); p != nil {
			l.logPanic(r.Client, p)
		}
	}()
	hook(r)
}

// log writes the session's log record.
func (s *session) log() {
	logger := s.l.cfg.Logger
	if logger == nil {
		return
	}
	level := slog.LevelInfo
	if s.quiet || s.req == nil && (s.rec.Decision == DecisionFail || s.rec.Decision == DecisionDrop) {
		level = slog.LevelDebug // not even a request, or a repeat: noise, scanners, floods, guessers
	}
	if logger.Enabled(s.l.logCtx, level) {
		writeLog(s.l.logCtx, logger, level, &s.rec)
	}
}

// writeLog builds the log record of r and writes it. It is a function of
// its own, with the record's attributes on its stack, so that log's frame
// is small when the level is off: log is called at a relay's end, on a
// goroutine whose stack is only what copying needs.
//
//go:noinline
func writeLog(ctx context.Context, logger *slog.Logger, level slog.Level, r *Record) {
	attrs := make([]slog.Attr, 0, 16)
	attrs = append(attrs, slog.String("client", addrString(r.Client)))
	if q := r.Request; q != nil {
		attrs = append(attrs,
			slog.String("user", q.User),
			slog.String("version", q.VersionString()),
			slog.String("cmd", q.CommandString()),
			slog.String("target", q.Target.String()))
	}
	attrs = append(attrs, slog.String("decision", r.Decision.String()))
	if r.Reason != "" {
		attrs = append(attrs, slog.String("reason", r.Reason))
	}
	if r.Reply != nil {
		attrs = append(attrs, slog.String("reply", r.Reply.String()))
	}
	if r.Decision.moves() || r.BytesUp != 0 || r.BytesDown != 0 {
		attrs = append(attrs, slog.Int64("bytes_up", r.BytesUp), slog.Int64("bytes_down", r.BytesDown))
	}
	if r.DatagramsUp != 0 || r.DatagramsDown != 0 {
		attrs = append(attrs, slog.Int64("datagrams_up", r.DatagramsUp), slog.Int64("datagrams_down", r.DatagramsDown))
	}
	attrs = append(attrs, slog.Duration("duration", r.Duration))
	if r.Cause != nil {
		attrs = append(attrs, slog.Any("cause", r.Cause))
	}
	if r.Request != nil {
		ctx = NewContext(ctx, r.Request)
	}
	logger.LogAttrs(ctx, level, "socks", attrs...)
}
