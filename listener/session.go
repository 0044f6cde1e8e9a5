package listener

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/sockstap/sockstap/socks4"
	"github.com/sockstap/sockstap/socks5"
)

// A session is a SOCKS connection after its first byte: its handshake,
// SOCKS4's or SOCKS5's, up to the request; then the command dispatch
// serves; then its end (end, in record.go), once, with its record.
//
// A command's serve function (see dispatch.go) has the session's
// request, its stream (data, rd), its replies (reply), the resources it
// holds (t.add), the goroutines it starts (spawn), what it moved
// (traffic) and its record (rec); it ends the session with end, refuse
// or fail, at once or from a goroutine it started.
type session struct {
	l      *Listener
	t      *tracked
	conn   net.Conn      // the client's connection
	client net.Addr      // the client's address: conn's, or a PROXY protocol header's
	br     *bufio.Reader // reads conn through the handshake

	in progressReader // what br reads: conn, noting when bytes come
	hs handshake      // the handshake, as the limits see it

	// Set by the brake on guessing: why it refused to check the client's
	// credentials, or that it counted a failure after others.
	authRefused string
	authRepeat  bool

	// After the handshake:
	req  *Request      // &request, once the handshake has read it
	data net.Conn      // the tunnel's inside: conn, or a method's stream over it
	rd   *bufio.Reader // reads data; what it buffered is the client's, to replay
	// replyFn sends a reply in the request's version: the handshake's
	// session.
	replyFn replier
	replies int // replies sent

	// Held in the session, which is allocated anyway, rather than each
	// in an allocation of its own: the request, and the stream the
	// handshake runs on.
	request Request
	rw      rwPair

	peekUntil time.Time // the end of Tap's peek

	// Its end:
	rec     Record      // the record, filled in as the session goes
	traffic traffic     // what it moved, added into the record at its end
	quiet   bool        // the record is logged at Debug level
	kept    bool        // the connection is the program's: the end does not close it
	ended   atomic.Bool // end has run
}

// serve runs the session of the version that first names.
func (s *session) serve(version byte) {
	l := s.l
	s.rec.Start = time.Now()
	s.rec.Client = s.client
	s.hs.conn = s.conn
	s.hs.key = clientKey(ipOf(s.rec.Client))
	s.t.state.Store(stateHandshake)
	l.startHandshake(&s.hs)
	err := s.handshake(version)
	s.rec.Handshake = time.Since(s.rec.Start)
	if l.endHandshake(&s.hs) {
		s.dropReader()
		s.rec.Decision, s.rec.Reason = DecisionDrop, "stalled handshake shed: too many handshakes"
		s.end()
		return
	}
	if err != nil {
		s.dropReader()
		s.handshakeFailed(err)
		return
	}
	s.dispatch()
}

// dropReader lets go of the handshake's read-ahead buffer, once what it
// buffered has been copied out (peek.FromReader) or is not wanted. It
// goes back to the pool when nothing else can read through it or hold
// its bytes: the tunnel is the connection itself, not an authentication
// method's stream over the buffer (nor a handshake's that failed while a
// method may have had one), and Tap's peek has returned none of them.
func (s *session) dropReader() {
	br := s.br
	plain := s.rd == br || s.rd == nil && !s.l.methodsWait
	if br != nil && plain && s.peekUntil.IsZero() {
		s.rw = rwPair{}
		putReader(br)
	}
	s.br, s.rd = nil, nil
}

// recoverPanic, deferred on the connection's goroutine, recovers a panic:
// it logs it, and ends the session, or closes the connection if it was
// not one yet.
func (s *session) recoverPanic() {
	p := recover()
	if p == nil {
		return
	}
	l := s.l
	l.logPanic(s.client, p)
	l.endHandshake(&s.hs)     // if one is counted
	if s.rec.Start.IsZero() { // still sniffing
		closeQuietly(s.conn)
		l.untrack(s.t)
		return
	}
	s.t.closeAll(s.kept)
	if s.claim() {
		s.rec.Decision, s.rec.Cause = DecisionFail, fmt.Errorf("panic: %v", p)
		s.finishSafely()
	}
}

// spawn starts f on a goroutine of the listener's, which Close waits for,
// and which recovers a panic: it logs it and ends the session, if f has
// not, closing its connection and resources. relay.Start's spawn is this.
func (s *session) spawn(f func()) {
	// Not wg.Go, whose closure would be a second one per goroutine.
	s.l.wg.Add(1)
	go func() {
		defer s.l.wg.Done()
		defer s.recoverSpawned()
		f()
	}()
}

// recoverSpawned is spawn's recover.
func (s *session) recoverSpawned() {
	p := recover()
	if p == nil {
		return
	}
	s.l.logPanic(s.client, p)
	s.t.closeAll(s.kept)
	if s.claim() {
		s.rec.Cause = fmt.Errorf("panic: %v", p)
		s.finishSafely()
	}
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
	s.rw = rwPair{s.br, s.conn}
	if version == 5 {
		return s.handshake5(ctx, &s.rw)
	}
	return s.handshake4(ctx, &s.rw)
}

// handshakeFailed ends the session of a handshake that failed with err.
func (s *session) handshakeFailed(err error) {
	r := &s.rec
	r.Cause = err
	switch {
	case s.authRefused != "":
		r.Decision, r.Reason, s.quiet = DecisionDeny, s.authRefused, true
	case errors.Is(err, socks5.ErrAuthFailed):
		r.Decision, r.Reason, s.quiet = DecisionDeny, "authentication failed", s.authRepeat
	case errors.Is(err, socks5.ErrNoAcceptableMethod):
		r.Decision, r.Reason = DecisionDeny, "no acceptable authentication method"
	default:
		r.Decision = DecisionFail
	}
	s.end()
}

func (s *session) handshake5(ctx context.Context, rw *rwPair) error {
	sess, err := socks5.ServerHandshake(ctx, rw, s.l.methods)
	if err != nil {
		return err
	}
	s.request = Request{
		Version:       5,
		Command:       sess.Request.Command,
		Target:        sess.Request.Addr,
		User:          sess.User,
		Method:        sess.Method,
		Authenticated: sess.Method != socks5.AuthNone,
		Client:        s.rec.Client,
		Local:         s.conn.LocalAddr(),
	}
	s.req = &s.request
	s.data, s.rd = s.conn, s.br
	if sess.Stream != io.ReadWriter(rw) {
		sc := &streamConn{Conn: s.conn, rw: sess.Stream}
		s.data, s.rd = sc, bufio.NewReaderSize(sc, readAhead)
	}
	s.replyFn = (*replier5)(sess)
	return nil
}

func (s *session) handshake4(ctx context.Context, rw *rwPair) error {
	sess, err := socks4.ServerHandshake(ctx, rw)
	if err != nil {
		return err
	}
	q := sess.Request
	target := socks5.Addr{Name: q.Host, Port: q.Port}
	if q.Host == "" {
		target.IP = q.IP
	}
	s.request = Request{
		Version: 4,
		// The code as sent: SOCKS4's CONNECT and BIND are SOCKS5's, and
		// dispatch refuses any other before it reaches a command.
		Command: socks5.Command(q.Command),
		Target:  target,
		User:    q.User,
		Method:  socks5.AuthNone,
		Client:  s.rec.Client,
		Local:   s.conn.LocalAddr(),
	}
	s.req = &s.request
	s.data, s.rd = s.conn, s.br
	s.replyFn = (*replier4)(sess)
	return nil
}

// A replier sends a reply to the request in its version: err nil for
// success, or why not; it returns the code sent.
type replier interface {
	reply(err error, bound socks5.Addr) (fmt.Stringer, error)
}

// replier5 and replier4 are the handshakes' sessions as repliers: a
// conversion, where a closure over them would cost an allocation.
type (
	replier5 socks5.Session
	replier4 socks4.Session
)

func (r *replier5) reply(err error, bound socks5.Addr) (fmt.Stringer, error) {
	code := reply5(err)
	return code, (*socks5.Session)(r).Reply(code, bound)
}

// reply sends bound as an IPv4 address, the only kind SOCKS4 has, and
// 0.0.0.0 for any other.
func (r *replier4) reply(err error, bound socks5.Addr) (fmt.Stringer, error) {
	code := socks4.ReplyFor(err)
	ap, _ := bound.AddrPort()
	if !ap.Addr().Is4() {
		ap = netip.AddrPort{}
	}
	return code, (*socks4.Session)(r).Reply(code, ap)
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

// reply sends a reply to the request, in its version: err nil for
// success, or why not (its reply code: see socks5.ReplyFor and
// socks4.ReplyFor; a policy's denial is "not allowed"), and bound as
// BND.ADDR and BND.PORT (SOCKS4 sends an IPv4 address only, 0.0.0.0 for
// any other). A session may reply more than once: BIND replies when it
// listens and again when the peer has come. Each reply is written within
// HandshakeTimeout; the record keeps the last code, and the first error
// of writing as its cause.
func (s *session) reply(err error, bound socks5.Addr) error {
	s.conn.SetWriteDeadline(time.Now().Add(s.l.cfg.HandshakeTimeout))
	defer s.conn.SetWriteDeadline(time.Time{})
	code, werr := s.replyFn.reply(err, bound)
	s.rec.Reply = code
	s.replies++
	if werr != nil && s.rec.Cause == nil {
		s.rec.Cause = werr
	}
	return werr
}

// refuse answers the request with err's reply code and ends the session:
// denied, when err is a policy's refusal (the policy's reason is the
// record's), and failed otherwise (err is the record's cause, reason its
// reason).
func (s *session) refuse(err error, reason string) {
	r := &s.rec
	r.Decision = DecisionFail
	if d, ok := errors.AsType[*denied](err); ok {
		r.Decision, reason = DecisionDeny, d.err.Error()
		if dn, ok := errors.AsType[*Denial](err); ok {
			reason = dn.Reason
		}
	} else if r.Cause == nil {
		r.Cause = err
	}
	r.Reason = reason
	s.reply(err, socks5.Addr{})
	s.end()
}

// fail ends the session as failed, with cause unless it has one already,
// and no reply: for a failure after the reply has gone.
func (s *session) fail(cause error) {
	s.rec.Decision = DecisionFail
	if s.rec.Cause == nil {
		s.rec.Cause = cause
	}
	s.end()
}
