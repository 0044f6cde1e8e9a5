package listener

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"runtime/debug"
	"sync"
	"sync/atomic"
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

	authRequired bool                       // the SOCKS5 methods do not include "no authentication"
	methodsWait  bool                       // a SOCKS5 method other than socks5.NoAuth, which may wait on its context
	methods      []socks5.ServerMethod      // Config.Methods under the brake on guessing
	auth         *authGuard                 // the brake; nil when off
	relayDialer  proxy.ContextDialer        // Config.Dialer under the dial-time policy check (GuardDialer)
	commands     map[socks5.Command]command // the commands served: Config's choice from the table

	ready chan *tracked // connections for Accept

	// ctx ends when the listener stops serving (Close or Shutdown): it
	// bounds handshakes, policy calls and dials. relayCtx ends when relays
	// must end too (Close, or Shutdown's context).
	ctx, relayCtx       context.Context
	cancel, cancelRelay context.CancelFunc

	// logCtx is the context the listener's log records carry: Serve's
	// caller's, for Serve's own listener (its values, not its end).
	logCtx context.Context

	stopOnce sync.Once
	stopped  chan struct{} // closed by stop: Accept returns acceptErr
	draining atomic.Bool   // a Shutdown has begun: Close leaves the relays to it

	epoch time.Time // the start of the handshake limits' clock

	mu        sync.Mutex
	acceptErr error
	conns     map[*tracked]struct{}
	hs        handshakes         // under way
	perClient map[netip.Addr]int // handshakes under way by clientKey

	assoc associations // UDP associations under way (udp.go)

	wg sync.WaitGroup // the accept loop and every connection's goroutine

	accepted, refused, tapped atomic.Uint64 // Stats' counts
}

// tracked is a connection the listener holds, with every resource its
// session opened: Close and Shutdown close them all.
type tracked struct {
	conn     net.Conn
	out      net.Conn       // what Accept returns, when the connection is handed over
	relaying bool           // guarded by the listener's mutex
	state    atomic.Uint32  // a connState, until it relays (Stats)
	cmd      socks5.Command // its request's, once dispatched; read once relaying

	mu        sync.Mutex
	resources []io.Closer  // a relay's target, a BIND listener, a UDP socket
	first     [1]io.Closer // resources' first array: most sessions hold one at most
	closed    bool         // closeAll has run
	// connClosed reports that the connection and every resource are
	// closed already (a relay closes its two ends): closing them again
	// would only cost an error each.
	connClosed bool
}

// closedAll tells t that its connection and its resources are closed:
// a relay's end has closed them.
func (t *tracked) closedAll() {
	t.mu.Lock()
	t.closed, t.resources, t.connClosed = true, nil, true
	t.mu.Unlock()
}

// add holds r, a resource the connection's session opened, so that
// closing the connection (the session's end, Close, Shutdown) closes r
// too. It reports false, having closed r, when the connection is closed
// already: the session must then give up.
func (t *tracked) add(r io.Closer) bool {
	t.mu.Lock()
	if !t.closed {
		if t.resources == nil {
			t.resources = t.first[:0]
		}
		t.resources = append(t.resources, r)
		t.mu.Unlock()
		return true
	}
	t.mu.Unlock()
	closeQuietly(r)
	return false
}

// closeAll closes the connection, unless keepConn (it is the program's
// now), and every resource it holds. A Close that panics (a wrapper's)
// is recovered: the others are still closed.
func (t *tracked) closeAll(keepConn bool) {
	t.mu.Lock()
	if t.connClosed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	resources := t.resources
	t.resources = nil
	t.mu.Unlock()
	// The resources go first: a client that sees its connection closed
	// finds what the session held (a BIND's port) closed already.
	for _, r := range resources {
		closeQuietly(r)
	}
	if !keepConn {
		closeQuietly(t.conn)
	}
}

// closeQuietly closes c, and recovers a panic in its Close.
func closeQuietly(c io.Closer) {
	defer func() { recover() }()
	c.Close()
}

// Wrap returns a listener that accepts on ln and serves SOCKS 4, 4a and 5
// clients as cfg says; a nil cfg is the zero Config. It starts serving at
// once. Closing the returned listener closes ln. A nil method in
// cfg.Methods is a mistake Wrap panics on, rather than serve clients the
// program did not mean to.
func Wrap(ln net.Listener, cfg *Config) *Listener {
	return wrap(ln, cfg, nil)
}

// wrap is Wrap, with setup (when not nil) run on the listener before it
// starts serving: for tests.
func wrap(ln net.Listener, cfg *Config, setup func(*Listener)) *Listener {
	l := &Listener{
		ln:        ln,
		cfg:       cfg.withDefaults(),
		ready:     make(chan *tracked),
		epoch:     time.Now(),
		stopped:   make(chan struct{}),
		conns:     make(map[*tracked]struct{}),
		perClient: make(map[netip.Addr]int),
	}
	// One rule, the handshake's: no methods, nil or empty, offer
	// "no authentication" only.
	l.authRequired = len(l.cfg.Methods) > 0
	for i, m := range l.cfg.Methods {
		if v := reflect.ValueOf(m); !v.IsValid() || v.Kind() == reflect.Pointer && v.IsNil() {
			// Leaving it out would change who may connect: better say so
			// now than serve the wrong clients.
			panic(fmt.Sprintf("listener: Config.Methods[%d] is nil", i))
		}
		if m.Method() == 0 {
			l.authRequired = false
		}
		if _, ok := m.(socks5.NoAuth); !ok {
			l.methodsWait = true
		}
	}
	l.methods = l.cfg.Methods
	if l.methodsWait && !l.cfg.AuthLimit.off() {
		l.auth = newAuthGuard(l.cfg.AuthLimit, l.eventLogger(), l.now)
		l.methods = l.auth.guardMethods(l.cfg.Methods)
	}
	if l.cfg.Dialer != nil {
		l.relayDialer = GuardDialer(l.cfg.Dialer, l.policy)
	}
	l.commands = l.cfg.commands(commandTable)
	l.logCtx = context.Background()
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.relayCtx, l.cancelRelay = context.WithCancel(context.Background())
	if setup != nil {
		setup(l)
	}
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
	case t := <-l.ready:
		// The connection is the program's from here: the listener lets
		// go of it before it can be closed as one of its own.
		l.untrack(t)
		if l.isStopped() {
			t.out.Close()
			return nil, l.stopErr()
		}
		return t.out, nil
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
// yet accepted), with every resource their sessions opened (a relay's
// target, say), and returns once all of the listener's goroutines have
// ended. Connections Accept has returned are the program's and stay open.
//
// Once a Shutdown has begun, Close leaves the relays to it: it stops the
// listener as Shutdown does, and returns at once; the relays end when
// they do, or when the Shutdown's context does. A server that closes its
// listener when it stops, as [net/http.Server] does, then does not cut
// them: see Shutdown.
func (l *Listener) Close() error {
	err := l.stop(net.ErrClosed)
	if l.draining.Load() {
		l.closeConns(false)
		return err
	}
	l.cancelRelay()
	l.closeConns(true)
	l.wg.Wait()
	return err
}

// Shutdown stops the listener gracefully: it closes the wrapped listener
// and the connections that are not relays, with what their sessions
// opened, then waits for the relays to end. When ctx ends first, it closes
// them and returns ctx's error.
//
// A program that serves the listener with an [net/http.Server] stops both
// gracefully by calling the listener's Shutdown first, then the server's,
// with the same deadline:
//
//	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
//	defer cancel()
//	l.Shutdown(ctx)   // stop accepting; the relays finish
//	srv.Shutdown(ctx) // the HTTP requests under way finish
//
// The other way round, the server's Shutdown would close the listener
// (Close), and so cut its relays at once. Meanwhile srv.Serve returns
// [net.ErrClosed] as soon as the listener stops accepting, and the server
// goes on serving the connections it has. [Serve] drains the same way
// when its context ends, for Config.DrainTimeout.
func (l *Listener) Shutdown(ctx context.Context) error {
	l.draining.Store(true)
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

// closeConns closes the connections the listener holds, and their
// resources: all of them, or all but the relays.
func (l *Listener) closeConns(relays bool) {
	l.mu.Lock()
	var closing []*tracked
	for t := range l.conns {
		if !t.relaying || relays {
			closing = append(closing, t)
		}
	}
	l.mu.Unlock()
	for _, t := range closing {
		t.closeAll(false)
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
			l.eventLogger().LogAttrs(l.logCtx, slog.LevelWarn, "socks accept",
				slog.Any("cause", err), slog.Duration("retry_in", backoff))
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
		// Not wg.Go, whose closure would be a second one per connection:
		// handle calls wg.Done.
		l.wg.Add(1)
		go l.handle(t)
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
	l.accepted.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.isStopped() || l.cfg.MaxConns > 0 && len(l.conns) >= l.cfg.MaxConns {
		l.refused.Add(1)
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

// startRelay marks t as a relay, which Shutdown lets run to its end, or
// reports false when relays are being closed. A session that moves data
// for long (CONNECT's relay, a UDP association) is one.
func (l *Listener) startRelay(t *tracked) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.relayCtx.Err() != nil {
		return false
	}
	t.relaying = true
	return true
}

// deliver hands c, t's connection as the program sees it, to Accept, or
// closes it when the listener stops first. Once delivered, c is the
// program's: Accept lets go of t.
func (l *Listener) deliver(t *tracked, c net.Conn) bool {
	t.out = c
	t.state.Store(stateHanding)
	if l.isStopped() {
		c.Close()
		return false
	}
	select {
	case l.ready <- t:
		return true
	case <-l.stopped:
		c.Close()
		return false
	}
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
// serving client (nil for the accept loop's, or when unknown). A Logger
// that panics in turn is ignored: a goroutine that recovers must not
// panic again.
func (l *Listener) logPanic(client net.Addr, p any) {
	defer func() { recover() }()
	l.eventLogger().LogAttrs(l.logCtx, slog.LevelError, "socks panic", slog.String("client", addrString(client)),
		slog.Any("cause", p), slog.String("stack", string(debug.Stack())))
}

// eventLogger is the logger of the listener's own events: Config.Logger,
// or slog.Default() when that is nil.
func (l *Listener) eventLogger() *slog.Logger {
	if l.cfg.Logger != nil {
		return l.cfg.Logger
	}
	return slog.Default()
}

// remoteAddr is c's RemoteAddr, or nil when that panics: for the paths
// that recover a panic, which must not panic again.
func remoteAddr(c net.Conn) (a net.Addr) {
	defer func() { recover() }()
	return c.RemoteAddr()
}
