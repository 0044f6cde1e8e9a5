package listener

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/internal/peek"
	"github.com/sockstap/sockstap/internal/relay"
	"github.com/sockstap/sockstap/socks5"
)

// readAhead is the size of the buffer a connection is read through while it
// is sniffed and its handshake runs, and the most Tap's peek returns.
const readAhead = 512

// handle serves one accepted connection: sniff its first byte, then hand it
// to Accept or run SOCKS on it.
func (l *Listener) handle(t *tracked) {
	growStack(0)
	c := t.conn
	s := &session{l: l, t: t, conn: c}
	relayed := false // a relay's goroutines took the connection over
	defer func() {
		if p := recover(); p != nil {
			c.Close()
			l.logPanic(c, p)
			l.endHandshake(&s.hs) // if it was one
		}
		if !relayed { // a relay lets go of its connection when it ends
			l.untrack(t)
		}
	}()

	s.in = progressReader{r: c, l: l, at: &s.hs.progress}
	br := bufio.NewReaderSize(&s.in, readAhead)
	c.SetReadDeadline(time.Now().Add(l.cfg.SniffTimeout))
	first, err := br.Peek(1)
	c.SetReadDeadline(time.Time{})
	if err != nil && err != io.EOF && !isTimeout(err) {
		c.Close()
		return
	}
	if len(first) == 0 || first[0] != 4 && first[0] != 5 {
		l.deliver(&Conn{Conn: peek.FromReader(c, br)})
		return
	}

	s.br, s.start = br, time.Now()
	s.hs.conn = c
	s.hs.key = clientKey(ipOf(c.RemoteAddr()))
	l.startHandshake(&s.hs)
	err = s.handshake(first[0])
	if l.endHandshake(&s.hs) {
		c.Close()
		s.decision, s.reason, s.cause = "drop", "stalled handshake shed: too many handshakes", nil
		s.log()
		return
	}
	if err != nil {
		s.handshakeFailed(err)
		return
	}
	relayed = s.dispatch()
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

// A session is a SOCKS connection after its first byte.
type session struct {
	l     *Listener
	t     *tracked
	conn  net.Conn      // the client's connection
	br    *bufio.Reader // reads conn through the handshake
	start time.Time

	in progressReader // what br reads: conn, noting when bytes come
	hs handshake      // the handshake, as the limits see it

	// Set by the brake on guessing: why it refused to check the client's
	// credentials, or that it counted a failure after others.
	authRefused string
	authRepeat  bool

	// After the handshake:
	req  *Request
	data net.Conn      // the tunnel's inside: conn, or a method's stream over it
	rd   *bufio.Reader // reads data; what it buffered is the client's, to replay
	// reply answers the request: err nil for success, or why not; it
	// returns the code sent.
	reply   func(err error, bound socks5.Addr) (fmt.Stringer, error)
	replied bool

	peekUntil time.Time

	target net.Conn    // the relay's other end
	ended  atomic.Bool // the relay's end, or a panic on its goroutines, has ended the session

	// The log record's values.
	decision, reason string
	code             fmt.Stringer
	cause            error
	up, down         int64
	quiet            bool // logged at Debug level
}

// rwPair is the stream a handshake runs on: reads through the read-ahead
// buffer, writes straight to the connection.
type rwPair struct {
	io.Reader
	io.Writer
}

// handshake runs the SOCKS handshake of the version that first names, up
// to the request, within HandshakeTimeout.
func (s *session) handshake(version byte) error {
	l := s.l
	s.conn.SetDeadline(time.Now().Add(l.cfg.HandshakeTimeout))
	defer s.conn.SetDeadline(time.Time{})
	// The connection's deadline bounds the handshake's reads and writes,
	// and closing the listener closes the connection. A method of the
	// program's may also wait on its context: only then does the
	// handshake need a context with the deadline, which costs a timer.
	ctx := l.ctx
	if version == 5 && l.methodsWait {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
		defer cancel()
		if l.auth != nil { // the brake on guessing finds the client here
			ctx = context.WithValue(ctx, sessionKey{}, s)
		}
	}
	rw := &rwPair{s.br, s.conn}
	if version == 5 {
		return s.handshake5(ctx, rw)
	}
	return s.handshake4(ctx, rw)
}

// handshakeFailed closes the connection of a handshake that failed with
// err, and logs why.
func (s *session) handshakeFailed(err error) {
	s.cause = err
	switch {
	case s.authRefused != "":
		s.decision, s.reason, s.quiet = "deny", s.authRefused, true
	case errors.Is(err, socks5.ErrAuthFailed):
		s.decision, s.reason, s.quiet = "deny", "authentication failed", s.authRepeat
	case errors.Is(err, socks5.ErrNoAcceptableMethod):
		s.decision, s.reason = "deny", "no acceptable authentication method"
	default:
		s.decision = "fail"
	}
	s.conn.Close()
	s.log()
}

func (s *session) handshake5(ctx context.Context, rw *rwPair) error {
	sess, err := socks5.ServerHandshake(ctx, rw, s.l.methods)
	if err != nil {
		return err
	}
	s.req = &Request{
		Version:       5,
		Command:       sess.Request.Command,
		Target:        sess.Request.Addr,
		User:          sess.User,
		Method:        sess.Method,
		Authenticated: sess.Method != socks5.AuthNone,
		Client:        s.conn.RemoteAddr(),
		Local:         s.conn.LocalAddr(),
	}
	s.data, s.rd = s.conn, s.br
	if sess.Stream != io.ReadWriter(rw) {
		sc := &streamConn{Conn: s.conn, rw: sess.Stream}
		s.data, s.rd = sc, bufio.NewReaderSize(sc, readAhead)
	}
	s.reply = func(err error, bound socks5.Addr) (fmt.Stringer, error) {
		code := reply5(err)
		return code, sess.Reply(code, bound)
	}
	return nil
}

// reply5 is the SOCKS5 reply code for err: a policy's denial is "not
// allowed", unless the policy chose a code of its own.
func reply5(err error) socks5.Reply {
	_, coded := errors.AsType[*socks5.ReplyError](err)
	if _, ok := errors.AsType[*denied](err); ok && !coded {
		return socks5.NotAllowed
	}
	return socks5.ReplyFor(err)
}

// streamConn is the client's connection read and written through the
// stream an authentication method wrapped around it.
type streamConn struct {
	net.Conn
	rw io.ReadWriter
}

func (c *streamConn) Read(p []byte) (int, error)  { return c.rw.Read(p) }
func (c *streamConn) Write(p []byte) (int, error) { return c.rw.Write(p) }

// dispatch serves the request's command, and reports whether a relay has
// taken the connection over. Commands join here.
func (s *session) dispatch() (relayed bool) {
	switch s.req.Command {
	case socks5.CmdConnect:
		return s.connect()
	default:
		s.refuse(&socks5.ReplyError{Reply: socks5.CommandNotSupported}, "command not supported")
		return false
	}
}

// denied is a policy's refusal on its way to the client.
type denied struct{ err error }

func (d *denied) Error() string { return d.err.Error() }
func (d *denied) Unwrap() error { return d.err }

// policy asks the configured policy about r.
func (l *Listener) policy(ctx context.Context, r *Request) error {
	var err error
	switch {
	case l.cfg.Policy != nil:
		err = l.cfg.Policy(ctx, r)
	case l.authRequired && !r.Authenticated:
		err = Deny("authentication required, and " + r.VersionString() + " cannot authenticate")
	default:
		err = DefaultPolicy(ctx, r)
	}
	if err != nil {
		return &denied{err}
	}
	return nil
}

func (s *session) connect() (relayed bool) {
	l := s.l
	var err error
	if l.cfg.Policy != nil {
		ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
		err = l.policy(ctx, s.req)
		cancel()
	} else {
		// The built-in policy looks at the request and nothing else: it
		// needs no deadline, and a context with one costs a timer.
		err = l.policy(l.ctx, s.req)
	}
	if err != nil {
		s.refuse(err, "")
		return false
	}
	tap := l.cfg.Dialer == nil
	if l.cfg.Tap != nil {
		tap = l.cfg.Tap(s.req, s.peek)
	}
	switch {
	case s.cause != nil: // the reply a peek sent failed
		s.conn.Close()
		s.decision = "fail"
		s.log()
	case tap:
		s.tap()
	case l.cfg.Dialer == nil:
		s.refuse(&denied{Deny("no relay configured")}, "")
	default:
		return s.relay()
	}
	return false
}

// refuse answers the request with err's code, closes the connection and
// logs the refusal.
func (s *session) refuse(err error, reason string) {
	s.decision = "fail"
	if d, ok := errors.AsType[*denied](err); ok {
		s.decision, reason = "deny", d.err.Error()
		if dn, ok := errors.AsType[*Denial](err); ok {
			reason = dn.Reason
		}
	} else {
		s.cause = err
	}
	s.reason = reason
	s.sendReply(err, socks5.Addr{})
	s.conn.Close()
	s.log()
}

// sendReply answers the request, once, within HandshakeTimeout.
func (s *session) sendReply(err error, bound socks5.Addr) error {
	if s.replied {
		return nil
	}
	s.replied = true
	s.conn.SetWriteDeadline(time.Now().Add(s.l.cfg.HandshakeTimeout))
	defer s.conn.SetWriteDeadline(time.Time{})
	code, werr := s.reply(err, bound)
	s.code = code
	if werr != nil && s.cause == nil {
		s.cause = werr
	}
	return werr
}

// peek is Tap's: it opens the tunnel and returns the first n bytes the
// client sends inside it, or fewer once PeekTimeout has passed.
func (s *session) peek(n int) []byte {
	if err := s.sendReply(nil, localAddr(s.conn)); err != nil {
		return nil
	}
	n = min(max(n, 0), readAhead)
	if s.peekUntil.IsZero() {
		s.peekUntil = time.Now().Add(s.l.cfg.PeekTimeout)
	}
	s.conn.SetReadDeadline(s.peekUntil)
	b, _ := s.rd.Peek(n)
	s.conn.SetReadDeadline(time.Time{})
	return b
}

// localAddr is c's local address, or the zero Addr (sent as 0.0.0.0:0)
// when c does not know it.
func localAddr(c net.Conn) socks5.Addr {
	a, _ := socks5.AddrFromNet(c.LocalAddr())
	return a
}

// addrString is a's String, or "unknown" for a nil address, which a
// net.Conn returns for an address it does not know.
func addrString(a net.Addr) string {
	if a == nil {
		return "unknown"
	}
	return a.String()
}

// logPanic logs a panic recovered on one of the listener's goroutines,
// serving c (nil for the accept loop's). A Logger that panics in turn is
// ignored: a goroutine that recovers must not panic again.
func (l *Listener) logPanic(c net.Conn, p any) {
	defer func() { recover() }()
	client := "unknown"
	if c != nil {
		client = addrString(c.RemoteAddr())
	}
	l.cfg.Logger.Error("socks panic", "client", client,
		"cause", fmt.Sprint(p), "stack", string(debug.Stack()))
}

// tap hands the tunnel's inside to Accept.
func (s *session) tap() {
	if err := s.sendReply(nil, localAddr(s.conn)); err != nil {
		s.conn.Close()
		s.decision = "fail"
		s.log()
		return
	}
	s.decision = "tap"
	c := &Conn{Conn: peek.FromReader(s.data, s.rd), req: s.req}
	if !s.l.deliver(c) {
		s.cause = net.ErrClosed
	}
	s.log()
}

// dialer returns the dialer relays use: Config.Dialer, or, when that is a
// *net.Dialer, a copy that asks the policy about each address it connects
// to.
func (l *Listener) dialer() proxy.ContextDialer {
	nd, ok := l.cfg.Dialer.(*net.Dialer)
	if !ok {
		return l.cfg.Dialer
	}
	d := *nd
	control, controlCtx := nd.Control, nd.ControlContext
	d.Control = nil
	d.ControlContext = func(ctx context.Context, network, address string, rc syscall.RawConn) error {
		if r, ok := FromContext(ctx); ok {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return err
			}
			dr := *r
			dr.DialedIP = ap.Addr().Unmap()
			if err := l.policy(ctx, &dr); err != nil {
				return err
			}
		}
		switch {
		case controlCtx != nil:
			return controlCtx(ctx, network, address, rc)
		case control != nil:
			return control(network, address, rc)
		}
		return nil
	}
	return &d
}

// relay dials the target, answers, and starts copying both ways; it
// reports whether the relay started.
func (s *session) relay() (started bool) {
	l := s.l
	// The built-in policy, asked about the request's IP address, has
	// nothing new to say about the same address at dial time: only a
	// name, or the program's policy, needs the dialer that asks again.
	d := l.cfg.Dialer
	if l.cfg.Policy != nil || s.req.Target.Name != "" {
		d = l.relayDialer
	}
	// The dial's context carries the request, so that the dialer can tell
	// whom it dials for (FromContext): to pick an egress address or an
	// upstream per user or per client.
	ctx, cancel := context.WithTimeout(NewContext(l.ctx, s.req), l.cfg.DialTimeout)
	target, err := d.DialContext(ctx, "tcp", s.req.Target.String())
	cancel()
	if err != nil {
		if s.replied {
			s.cause = err
			s.decision = "fail"
			s.conn.Close()
			s.log()
			return false
		}
		s.refuse(err, "dial failed")
		return false
	}
	// The connection counts as a relay before its client hears that it
	// is one: a Shutdown in between would otherwise close it as a
	// handshake.
	bound := localAddr(target)
	s.target = target
	if !l.startRelay(s.t, target) || s.sendReply(nil, bound) != nil {
		target.Close()
		s.conn.Close()
		s.decision = "fail"
		s.log()
		return false
	}
	client := peek.FromReader(s.data, s.rd)
	// The handshake's reader, its buffer and its reply are done with: a
	// relay, which may stay idle for long, holds none of them.
	s.br, s.rd, s.data, s.reply = nil, nil, nil, nil
	idle := max(l.cfg.IdleTimeout, 0)
	s.decision = "relay"
	// The relay copies on goroutines of its own, and this one ends: it
	// would keep the handshake's and the dial's frames on its stack for
	// as long as the relay lasts.
	//
	// Close, and Shutdown when its context ends, close the relays'
	// connections themselves (closeConns): the relay needs no context,
	// whose AfterFunc would cost a registration with relayCtx each.
	relay.Start(context.Background(), client, target, idle, s.spawn, s.relayEnded)
	return true
}

// spawn starts one of the relay's goroutines, which recovers a panic: it
// logs it, closes the relay's two connections, ends the session if it has
// not ended, and lets its connection go.
func (s *session) spawn(f func()) {
	s.l.wg.Go(func() {
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			s.l.logPanic(s.conn, p)
			s.conn.Close()
			s.target.Close()
			if !s.ended.Swap(true) {
				s.cause = fmt.Errorf("panic: %v", p)
				s.logSafely()
			}
			s.l.untrack(s.t)
		}()
		f()
	})
}

// relayEnded logs the end of the session's relay and lets its connection
// go.
func (s *session) relayEnded(res relay.Result) {
	if s.ended.Swap(true) {
		return // a panic on the other goroutine ended it
	}
	s.up, s.down, s.cause = res.Up, res.Down, res.Err
	if err := s.l.relayCtx.Err(); err != nil && res.Err != nil {
		s.cause = err // closed by Close or Shutdown, not by a failure of its own
	}
	s.log()
	s.l.untrack(s.t)
}

// logSafely is log on a goroutine that has recovered a panic already.
func (s *session) logSafely() {
	defer func() { recover() }()
	s.log()
}

// log writes the session's record.
func (s *session) log() {
	logger := s.l.cfg.Logger
	level := slog.LevelInfo
	if s.quiet || s.req == nil && (s.decision == "fail" || s.decision == "drop") {
		level = slog.LevelDebug // not even a request, or a repeat: noise, scanners, floods, guessers
	}
	if logger.Enabled(context.Background(), level) {
		s.writeLog(logger, level)
	}
}

// writeLog builds the record and writes it. It is a function of its own,
// with the record's attributes on its stack, so that log's frame is small
// when the level is off: log is called at a relay's end, on a goroutine
// whose stack is only what copying needs.
//
//go:noinline
func (s *session) writeLog(logger *slog.Logger, level slog.Level) {
	attrs := make([]slog.Attr, 0, 14)
	attrs = append(attrs, slog.String("client", addrString(s.conn.RemoteAddr())))
	if r := s.req; r != nil {
		attrs = append(attrs,
			slog.String("user", r.User),
			slog.String("version", r.VersionString()),
			slog.String("cmd", r.Command.String()),
			slog.String("target", r.Target.String()))
	}
	attrs = append(attrs, slog.String("decision", s.decision))
	if s.reason != "" {
		attrs = append(attrs, slog.String("reason", s.reason))
	}
	if s.code != nil {
		attrs = append(attrs, slog.String("reply", s.code.String()))
	}
	if s.decision == "relay" {
		attrs = append(attrs, slog.Int64("bytes_up", s.up), slog.Int64("bytes_down", s.down))
	}
	attrs = append(attrs, slog.Duration("duration", time.Since(s.start)))
	if s.cause != nil {
		attrs = append(attrs, slog.String("cause", s.cause.Error()))
	}
	logger.LogAttrs(context.Background(), level, "socks", attrs...)
}

func isTimeout(err error) bool {
	ne, ok := errors.AsType[net.Error](err)
	return ok && ne.Timeout()
}
