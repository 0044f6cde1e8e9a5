package listener

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/socks5"
)

// Listener is a net.Listener that serves SOCKS clients beside the
// program's own: [Listener.Accept] returns the connections that are not
// SOCKS and the SOCKS streams the program taps, while the listener relays,
// refuses or fails the rest itself.
type Listener struct {
	ln  net.Listener
	cfg Config

	authRequired bool                  // the SOCKS5 methods do not include "no authentication"
	methodsWait  bool                  // a SOCKS5 method other than socks5.NoAuth, which may wait on its context
	methods      []socks5.ServerMethod // Config.Methods under the brake on guessing
	auth         *authGuard            // the brake; nil when off
	relayDialer  proxy.ContextDialer

	ready chan net.Conn // connections for Accept

	// ctx ends when the listener stops serving (Close or Shutdown): it
	// bounds handshakes, policy calls and dials. relayCtx ends when relays
	// must end too (Close, or Shutdown's context).
	ctx, relayCtx       context.Context
	cancel, cancelRelay context.CancelFunc

	stopOnce sync.Once
	stopped  chan struct{} // closed by stop: Accept returns acceptErr

	epoch time.Time // the start of the handshake limits' clock

	mu        sync.Mutex
	acceptErr error
	conns     map[*tracked]struct{}
	hs        handshakes         // under way
	perClient map[netip.Addr]int // handshakes under way by clientKey

	wg sync.WaitGroup // the accept loop and every connection's goroutine
}

// tracked is a connection the listener holds.
type tracked struct {
	conn     net.Conn
	target   net.Conn // the relay's other end, once dialed
	relaying bool
}

// Wrap returns a listener that accepts on ln and serves SOCKS 4, 4a and 5
// clients as cfg says; a nil cfg is the zero Config. It starts serving at
// once. Closing the returned listener closes ln.
func Wrap(ln net.Listener, cfg *Config) *Listener {
	l := &Listener{
		ln:        ln,
		cfg:       cfg.withDefaults(),
		ready:     make(chan net.Conn),
		epoch:     time.Now(),
		stopped:   make(chan struct{}),
		conns:     make(map[*tracked]struct{}),
		perClient: make(map[netip.Addr]int),
	}
	// One rule, the handshake's: no methods, nil or empty, offer
	// "no authentication" only.
	l.authRequired = len(l.cfg.Methods) > 0
	for _, m := range l.cfg.Methods {
		if m.Method() == 0 {
			l.authRequired = false
		}
		if _, ok := m.(socks5.NoAuth); !ok {
			l.methodsWait = true
		}
	}
	l.methods = l.cfg.Methods
	if l.methodsWait && !l.cfg.AuthLimit.off() {
		l.auth = newAuthGuard(l.cfg.AuthLimit, l.cfg.Logger, l.now)
		l.methods = l.auth.guardMethods(l.cfg.Methods)
	}
	if l.cfg.Dialer != nil {
		l.relayDialer = l.dialer()
	}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.relayCtx, l.cancelRelay = context.WithCancel(context.Background())
	l.wg.Go(l.serve)
	return l
}

// Accept waits for and returns the next connection that is the program's
// to serve: one that is not SOCKS, or a tapped SOCKS stream; both are
// [*Conn]s. Once Close or Shutdown has begun it returns [net.ErrClosed],
// always, and closes a connection that was on its way; when the wrapped
// listener fails for good, its error.
func (l *Listener) Accept() (net.Conn, error) {
	// select picks at random among ready cases: the stop is looked at
	// first, and again once a connection has come.
	if l.isStopped() {
		return nil, l.stopErr()
	}
	select {
	case c := <-l.ready:
		if l.isStopped() {
			c.Close()
			return nil, l.stopErr()
		}
		return c, nil
	case <-l.stopped:
		return nil, l.stopErr()
	}
}

// stopErr is what Accept returns once the listener has stopped.
func (l *Listener) stopErr() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.acceptErr
}

// Addr returns the wrapped listener's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close stops the listener at once: it closes the wrapped listener and
// every connection the listener holds (handshakes, relays, connections not
// yet accepted), and returns once all of the listener's goroutines have
// ended. Connections Accept has returned are the program's and stay open.
func (l *Listener) Close() error {
	err := l.stop(net.ErrClosed)
	l.cancelRelay()
	l.closeConns(true)
	l.wg.Wait()
	return err
}

// Shutdown stops the listener gracefully: it closes the wrapped listener
// and the connections that are not relays, then waits for the relays to
// end. When ctx ends first, it closes them and returns ctx's error.
func (l *Listener) Shutdown(ctx context.Context) error {
	err := l.stop(net.ErrClosed)
	l.closeConns(false)
	done := make(chan struct{})
	go func() {
		l.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return err
	case <-ctx.Done():
		l.cancelRelay()
		l.closeConns(true)
		<-done
		return ctx.Err()
	}
}

// stop stops accepting, once; Accept then returns err. It returns the
// error of closing the wrapped listener.
func (l *Listener) stop(err error) (closeErr error) {
	l.stopOnce.Do(func() {
		l.mu.Lock()
		l.acceptErr = err
		l.mu.Unlock()
		close(l.stopped)
		l.cancel()
		closeErr = l.ln.Close()
	})
	return closeErr
}

// closeConns closes the connections the listener holds: all of them, or
// all but the relays.
func (l *Listener) closeConns(relays bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for t := range l.conns {
		if t.relaying && !relays {
			continue
		}
		t.conn.Close()
		if t.target != nil {
			t.target.Close()
		}
	}
}

func (l *Listener) isStopped() bool {
	select {
	case <-l.stopped:
		return true
	default:
		return false
	}
}

// serve is the accept loop. A panic in it (in the wrapped listener's
// Accept, say) stops the listener: Accept then returns a [*PanicError].
func (l *Listener) serve() {
	defer func() {
		if p := recover(); p != nil {
			l.logPanic(nil, p)
			l.stop(&PanicError{Value: p})
		}
	}()
	var backoff time.Duration
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if l.isStopped() {
				return
			}
			if !temporary(err) {
				l.stop(err)
				return
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.cfg.Logger.Warn("socks accept", "cause", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-t.C:
			case <-l.stopped:
				t.Stop()
				return
			}
			continue
		}
		backoff = 0
		t := l.track(c)
		if t == nil {
			c.Close()
			continue
		}
		l.wg.Go(func() { l.handle(t) })
	}
}

// PanicError is what Accept returns once the accept loop has recovered a
// panic, which stops the listener.
type PanicError struct {
	Value any // what was passed to panic
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("listener: panic in the accept loop: %v", e.Value)
}

// temporary reports whether an accept error may pass: descriptors or
// buffers run out, a connection aborted before it was accepted.
func temporary(err error) bool {
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EINTR) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// track starts holding c, or returns nil when the listener is stopped or
// MaxConns are held.
func (l *Listener) track(c net.Conn) *tracked {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isStopped() || l.cfg.MaxConns > 0 && len(l.conns) >= l.cfg.MaxConns {
		return nil
	}
	t := &tracked{conn: c}
	l.conns[t] = struct{}{}
	return t
}

func (l *Listener) untrack(t *tracked) {
	l.mu.Lock()
	delete(l.conns, t)
	l.mu.Unlock()
}

// startRelay marks t as a relay to target, or reports false when relays
// are being closed.
func (l *Listener) startRelay(t *tracked, target net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.relayCtx.Err() != nil {
		return false
	}
	t.target = target
	t.relaying = true
	return true
}

// deliver hands c to Accept, or closes it when the listener stops first.
func (l *Listener) deliver(c net.Conn) bool {
	if l.isStopped() {
		c.Close()
		return false
	}
	select {
	case l.ready <- c:
		return true
	case <-l.stopped:
		c.Close()
		return false
	}
}
