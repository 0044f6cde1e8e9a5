package listener

import (
	"context"
	"net"
	"time"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/internal/peek"
	"github.com/sockstap/sockstap/internal/relay"
	"github.com/sockstap/sockstap/socks5"
)

// connect serves CONNECT: it taps the stream (hands its inside to
// Accept) or relays it to its target, as Config.Tap decides, having
// peeked at it if Tap asks.
func (s *session) connect() {
	l := s.l
	tap := l.cfg.Dialer == nil
	if l.cfg.Tap != nil {
		tap = l.cfg.Tap(s.req, s.peek)
	}
	switch {
	case s.rec.Cause != nil: // the reply a peek sent failed
		s.fail(nil)
	case tap:
		s.tap()
	case l.cfg.Dialer == nil:
		s.refuse(&denied{Deny("no relay configured")}, "")
	default:
		s.relay()
	}
}

// peek is Tap's: it opens the tunnel and returns the first n bytes the
// client sends inside it, or fewer once PeekTimeout has passed.
func (s *session) peek(n int) []byte {
	if s.replies == 0 && s.reply(nil, localAddr(s.conn)) != nil {
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

// tap hands the tunnel's inside to Accept.
func (s *session) tap() {
	if s.replies == 0 && s.reply(nil, localAddr(s.conn)) != nil {
		s.fail(nil)
		return
	}
	s.rec.Decision = DecisionTap
	s.kept = true // the program's, once delivered; closed by deliver if not
	c := &Conn{Conn: peek.FromReader(s.data, s.rd), req: s.req, remote: s.client}
	s.dropReader()
	if s.l.deliver(s.t, c) {
		s.l.tapped.Add(1)
	} else {
		s.rec.Cause = net.ErrClosed
	}
	s.end()
}

// relay dials the target, answers, and starts copying both ways on
// goroutines of its own, which end the session.
func (s *session) relay() {
	l := s.l
	d := l.cfg.Dialer
	if l.dialCheck(s.req) {
		d = l.relayDialer
	}
	dialStart := time.Now()
	target, err := s.dial(d)
	s.rec.Dial = time.Since(dialStart)
	if err != nil {
		if s.replies > 0 { // a peek has answered: too late for a code
			s.fail(err)
			return
		}
		s.refuse(err, "dial failed")
		return
	}
	// The target is the session's from here: Close and Shutdown close it,
	// and so does the session's end. The connection counts as a relay
	// before its client hears that it is one: a Shutdown in between would
	// otherwise close it as a handshake.
	if !s.t.add(target) || !l.startRelay(s.t) {
		s.fail(net.ErrClosed)
		return
	}
	if s.replies == 0 && s.reply(nil, localAddr(target)) != nil {
		s.fail(nil)
		return
	}
	s.splice(target, DecisionRelay)
}

// splice relays between the client and target, both ways, on goroutines
// of their own, which end the session once both ways have ended: CONNECT's
// relay, and BIND's once its peer has come. target must be the session's
// already (s.t.add) and the session a relay (startRelay), and the client
// answered; decision is the record's.
func (s *session) splice(target net.Conn, decision Decision) {
	l := s.l
	// What the client sent ahead of the reply goes first; without it,
	// the relay has the tunnel as it is.
	client := s.data
	if s.rd.Buffered() > 0 {
		client = peek.FromReader(s.data, s.rd)
	}
	// The handshake's reader, its buffer and its reply are done with: a
	// relay, which may stay idle for long, holds none of them.
	s.dropReader()
	s.data, s.replyFn = nil, nil
	s.rec.Decision = decision
	// The relay copies on goroutines of its own, and this one ends: it
	// would keep the handshake's and the dial's frames on its stack for
	// as long as the relay lasts.
	//
	// Close, and Shutdown when its context ends, close the relays'
	// connections themselves (closeConns): the relay needs no context,
	// whose AfterFunc would cost a registration with relayCtx each.
	relay.Start(context.Background(), client, target, max(l.cfg.IdleTimeout, 0), s.spawn, s.relayEnded)
}

// dial connects through d to the request's target, within DialTimeout,
// and gives up when the listener stops serving (l.ctx). The dial's
// context carries the request, so that the dialer can tell whom it dials
// for (FromContext): to pick an egress address or an upstream per user
// or per client.
func (s *session) dial(d proxy.ContextDialer) (net.Conn, error) {
	l := s.l
	deadline := time.Now().Add(l.cfg.DialTimeout)
	if nd, ok := d.(*net.Dialer); ok && nd.ControlContext == nil && s.req.Target.Name == "" {
		return nd.DialContext(&dialContext{l.ctx, s.req, deadline}, "tcp", s.req.Target.String())
	}
	ctx, cancel := context.WithDeadline(NewContext(l.ctx, s.req), deadline)
	defer cancel()
	return d.DialContext(ctx, "tcp", s.req.Target.String())
}

// dialContext is the context of a relay's dial through a *net.Dialer of
// an IP address with no ControlContext, where only package net sees the
// context: it is the listener's, which Close ends, with the request, and
// a deadline that package net keeps itself (the connect's write
// deadline), where context.WithDeadline would also start a timer to end
// Done. Its Done does not end at the deadline: any other dialer, or a
// name to resolve, gets a context.WithDeadline.
//
// It spares a relay 7 allocations and 5 to 6 µs of a 67 µs loopback
// dial, the target's accept included (BenchmarkRelayDial, in
// bench_test.go: context=timer against context=deadline). TestRelayDialEnds
// checks that the dial still ends at the deadline, and on Close.
type dialContext struct {
	context.Context // the listener's: Done and Err
	req             *Request
	deadline        time.Time
}

func (c *dialContext) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *dialContext) Value(key any) any {
	if key == (requestKey{}) {
		return c.req
	}
	return c.Context.Value(key)
}

// relayEnded ends the session of a relay that has ended, unless a panic
// on one of its goroutines has.
func (s *session) relayEnded(res relay.Result) {
	if !s.claim() {
		return
	}
	s.t.closedAll() // the relay has closed both its ends
	s.traffic.bytesUp.Store(res.Up)
	s.traffic.bytesDown.Store(res.Down)
	s.rec.Cause = res.Err
	if err := s.l.relayCtx.Err(); err != nil && res.Err != nil {
		s.rec.Cause = err // closed by Close or Shutdown, not by a failure of its own
	}
	s.finish()
}
