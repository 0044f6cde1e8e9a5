package httpgate

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

// Server makes one port a whole proxy: SOCKS 4, 4a and 5, relayed; the
// HTTP forward proxy and CONNECT; and HTTP sent through SOCKS, tapped and
// served by the Gateway, with its log, its policy and its cache. Its zero
// value works, for clients on loopback. A Server must not be copied once
// it has served.
//
// What it serves is accounted for once: each SOCKS session makes one
// [listener.Record] (the SOCKS config's OnRecord, and a "socks" log
// line), each HTTP request one [Record] (the Gateway's OnRecord, and an
// "http" log line). A tapped session's record (DecisionTap) counts no
// bytes: the requests its stream carried have records of their own,
// whose SOCKS field is that session's Request. A program that adds up
// every record of both kinds counts each session, each request and each
// byte moved once.
type Server struct {
	// Gateway serves the HTTP; nil is a zero Gateway.
	Gateway *Gateway

	// SOCKS says how SOCKS is served (see [listener.Config]). Nil, and
	// every field left unset, take the Gateway's: its Dialer relays the
	// streams that are not tapped, its Policy and Logger are the
	// listener's, and its ProxyAuth, when set, is the SOCKS5
	// username/password check too. Tap nil taps the streams that speak
	// HTTP ([listener.TapHTTP]).
	SOCKS *listener.Config

	// ReadHeaderTimeout bounds the reading of a request's header. Zero
	// means 10 seconds.
	ReadHeaderTimeout time.Duration

	// IdleTimeout closes a client's keep-alive connection after that long
	// with no request. Zero means 2 minutes.
	IdleTimeout time.Duration

	// MaxHeaderBytes bounds a request's header section; a larger one is
	// answered 431. Zero means 64 KiB.
	MaxHeaderBytes int

	// ShutdownTimeout is how long Serve, once its context has ended, lets
	// what is under way go on: requests, tunnels (CONNECT, upgrades) and
	// SOCKS relays. Those still open then are closed. Zero means 5
	// seconds; negative, none: everything is closed at once.
	ShutdownTimeout time.Duration

	mu      sync.Mutex
	serving map[*listener.Listener]struct{} // the listeners Serve is serving on
}

// Stats returns a snapshot of the SOCKS listeners the server is serving
// on (see [listener.Stats]), added up when Serve is serving several; the
// zero Stats when it serves none.
func (s *Server) Stats() listener.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	var sum listener.Stats
	for l := range s.serving {
		sum = addStats(sum, l.Stats())
	}
	return sum
}

// addStats adds up two snapshots, field by field.
func addStats(a, b listener.Stats) listener.Stats {
	a.Conns += b.Conns
	a.Sniffing += b.Sniffing
	a.Handshakes += b.Handshakes
	a.Relays += b.Relays
	a.Associations += b.Associations
	a.Handing += b.Handing
	a.Accepted += b.Accepted
	a.Refused += b.Refused
	a.Tapped += b.Tapped
	return a
}

// track counts l among the listeners Serve serves on, until the function
// it returns is called.
func (s *Server) track(l *listener.Listener) (untrack func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving == nil {
		s.serving = make(map[*listener.Listener]struct{})
	}
	s.serving[l] = struct{}{}
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		delete(s.serving, l)
	}
}

// Server defaults.
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultServerIdleTimeout = 2 * time.Minute
	DefaultMaxHeaderBytes    = 64 << 10
)

// DefaultShutdownTimeout is how long Serve drains when
// Server.ShutdownTimeout is zero.
const DefaultShutdownTimeout = 5 * time.Second

// ListenAndServe listens on the TCP address addr and serves there, as
// [Server.Serve] does.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends; then it drains, as
// [listener.Listener.Shutdown] and [http.Server.Shutdown] do: it stops
// accepting, closes idle connections, and waits for the requests, tunnels
// and SOCKS relays under way to end, for ShutdownTimeout at most; then it
// closes those left, and returns nil once they are all gone. When ln
// fails, Serve closes everything at once and returns its error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	g := s.Gateway
	if g == nil {
		g = &Gateway{}
	}
	st := g.state()
	var cfg listener.Config
	if s.SOCKS != nil {
		cfg = *s.SOCKS
	}
	if cfg.Dialer == nil {
		cfg.Dialer = st.dialer
	}
	if cfg.Tap == nil {
		cfg.Tap = listener.TapHTTP
	}
	if cfg.Policy == nil {
		cfg.Policy = g.Policy
	}
	if cfg.Logger == nil {
		cfg.Logger = st.logger
	}
	if cfg.Methods == nil && g.ProxyAuth != nil {
		cfg.Methods = []socks5.ServerMethod{socks5.UserPassServer{Check: g.ProxyAuth}}
	}
	l := listener.Wrap(ln, &cfg)
	defer s.track(l)()
	ts := newTunnels()
	srv := s.httpServer(g, st.logger)
	srv.BaseContext = func(net.Listener) context.Context {
		return context.WithValue(context.Background(), tunnelsKey{}, ts)
	}
	errc := make(chan error, 1)
	go func() {
		errc <- srv.Serve(&framedListener{Listener: l, maxHead: s.maxHead(), writeBound: st.clientWrite})
	}()
	select {
	case err := <-errc:
		l.Close()
		srv.Close()
		ts.shutdown(ts.ctx) // a context that has ended: close them all
		st.upstream.closeIdle()
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return err
	case <-ctx.Done():
	}
	grace := orDefault(s.ShutdownTimeout, DefaultShutdownTimeout)
	st.logger.Info("httpgate shutdown", "addr", ln.Addr().String(), "timeout", grace)
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	var cut int
	wg.Go(func() { l.Shutdown(sctx) }) // Serve's Accept returns: srv.Serve ends
	wg.Go(func() {
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	})
	wg.Go(func() { cut = ts.shutdown(sctx) })
	wg.Wait()
	<-errc
	st.upstream.closeIdle()
	if cut > 0 {
		st.logger.Warn("httpgate shutdown: tunnels closed", "addr", ln.Addr().String(), "tunnels", cut)
	}
	return nil
}

// httpServer is the http.Server that serves g.
func (s *Server) httpServer(g *Gateway, logger *slog.Logger) *http.Server {
	srv := &http.Server{
		Handler:           g,
		ReadHeaderTimeout: s.ReadHeaderTimeout,
		IdleTimeout:       s.IdleTimeout,
		MaxHeaderBytes:    s.MaxHeaderBytes,
		ConnContext:       connContext,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	if srv.ReadHeaderTimeout == 0 {
		srv.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if srv.IdleTimeout == 0 {
		srv.IdleTimeout = DefaultServerIdleTimeout
	}
	if srv.MaxHeaderBytes == 0 {
		srv.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return srv
}

// maxHead bounds a head as the framing sees it: above net/http's own
// bound (MaxHeaderBytes and 4 KiB), so that net/http answers 431 first.
func (s *Server) maxHead() int {
	n := s.MaxHeaderBytes
	if n == 0 {
		n = DefaultMaxHeaderBytes
	}
	return 2 * (n + 4096)
}

// connContext gives handlers the connection's framing and, for a tapped
// stream, its SOCKS request.
func connContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framedConn); ok {
		ctx = context.WithValue(ctx, framedConnKey{}, fc)
		c = fc.Conn
	}
	return listener.ConnContext(ctx, c)
}

// framedListener follows the request framing of each connection it
// accepts (see framedConn).
type framedListener struct {
	net.Listener
	maxHead    int
	writeBound time.Duration // the gateway's ClientWriteTimeout, 0 for none
}

// Close does nothing: Serve stops the listener itself, gracefully, while
// the http.Server's Shutdown closes its listeners at once.
func (l *framedListener) Close() error { return nil }

func (l *framedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newFramedConn(c, l.maxHead, l.writeBound), nil
}
