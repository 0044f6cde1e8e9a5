package listener

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/sockstap/sockstap/socks5"
)

// AuthLimit is the brake on password guessing: a budget of failed
// authentications per client and per user name, each a token bucket that
// holds a burst of failures and forgives one each Refill. The zero value
// is the default brake; it is on unless both budgets are negative.
//
// A client (an IPv4 address, or an IPv6 /64) that has spent its budget is
// locked out: its attempts are answered as failures without being checked
// (RFC 1929's status 1, whatever the password), until a failure is
// forgiven. Other clients are not affected.
//
// A user name whose budget is spent, by failures from any clients, is
// locked out only for the clients that have failed themselves within
// Refill: a guesser spread over many addresses gets one guess per address
// and Refill, while the user, from an address that has not failed, is
// checked as ever. A per-user lockout that refused everybody would let
// anyone lock a user out from everywhere.
//
// The user name is known to [socks5.UserPassServer], whose Check the
// listener wraps; a method of the program's own gets the per-client budget
// only, counted when it fails with [socks5.ErrAuthFailed], and is not run
// for a client locked out.
//
// Each lockout is logged once, at Warn level, with the failures that led
// to it, and its end with the attempts it refused; a session refused by a
// lockout is logged at Debug level, and a failed one at Info level only
// when it is its client's first failure in a while (at Debug otherwise).
type AuthLimit struct {
	// PerClient is the failures one client may make in a burst. Zero
	// means 10; a negative value, no limit per client.
	PerClient int

	// PerUser is the failures that may name one user in a burst, from
	// all clients together. Zero means 30; a negative value, no limit
	// per user.
	PerUser int

	// Refill is how long it takes to forgive one failure, in both
	// budgets: once a budget is spent, one more attempt is checked every
	// Refill. Zero means 10 seconds.
	Refill time.Duration
}

// Defaults of AuthLimit.
const (
	DefaultAuthFailuresPerClient = 10
	DefaultAuthFailuresPerUser   = 30
	DefaultAuthRefill            = 10 * time.Second
)

func (a AuthLimit) withDefaults() AuthLimit {
	if a.PerClient == 0 {
		a.PerClient = DefaultAuthFailuresPerClient
	}
	if a.PerUser == 0 {
		a.PerUser = DefaultAuthFailuresPerUser
	}
	if a.Refill <= 0 {
		a.Refill = DefaultAuthRefill
	}
	return a
}

func (a AuthLimit) off() bool { return a.PerClient < 0 && a.PerUser < 0 }

// maxAuthEntries bounds each budget's table: a guesser with many
// addresses or user names cannot grow it further. Entries whose budget is
// whole again are dropped first; at the bound, any one is.
const maxAuthEntries = 1 << 14

// authGuard keeps the budgets.
type authGuard struct {
	limit  AuthLimit
	logger *slog.Logger
	now    func() int64 // the clock, in nanoseconds: the listener's

	mu      sync.Mutex
	clients map[netip.Addr]*budget
	users   map[string]*budget
}

// budget is a token bucket kept as the time at which it is whole again
// (GCRA): each failure moves full one Refill further; the budget is spent
// while full is more than burst-1 Refills away, that is while burst
// failures are unforgiven.
type budget struct {
	full     int64
	locked   bool // the lockout is logged, its end not yet
	failures int  // since the budget was last whole
	refused  int  // attempts refused in this lockout
}

func newAuthGuard(limit AuthLimit, logger *slog.Logger, now func() int64) *authGuard {
	return &authGuard{
		limit:   limit.withDefaults(),
		logger:  logger,
		now:     now,
		clients: make(map[netip.Addr]*budget),
		users:   make(map[string]*budget),
	}
}

// spent reports whether b, of a budget of burst failures, is spent at now.
func (g *authGuard) spent(b *budget, burst int, now int64) bool {
	return burst > 0 && b != nil && b.full-now > int64(burst-1)*int64(g.limit.Refill)
}

// clean reports whether b is whole at now: no failure within Refill.
func clean(b *budget, now int64) bool { return b == nil || b.full <= now }

// allow reports whether an attempt by client, naming user ("" when no
// name is known), is to be checked; when not, it says why.
func (g *authGuard) allow(client netip.Addr, user string) (ok bool, why string) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.clients[client]
	g.lifted(c, now, "client", client.String())
	if g.spent(c, g.limit.PerClient, now) {
		c.refused++
		return false, "authentication refused: too many failures from this client"
	}
	if user == "" {
		return true, ""
	}
	u := g.users[user]
	g.lifted(u, now, "user", user)
	if g.spent(u, g.limit.PerUser, now) && !clean(c, now) {
		u.refused++
		return false, "authentication refused: too many failures for this user"
	}
	return true, ""
}

// lifted logs the end of b's lockout, if it has ended.
func (g *authGuard) lifted(b *budget, now int64, key, value string) {
	if b == nil || !b.locked {
		return
	}
	burst := g.limit.PerClient
	if key == "user" {
		burst = g.limit.PerUser
	}
	if g.spent(b, burst, now) {
		return
	}
	b.locked = false
	g.logger.Info("socks auth lockout lifted", key, value, "refused", b.refused)
	b.refused = 0
}

// failed counts a failure by client naming user, and reports whether it
// was the client's first in a while.
func (g *authGuard) failed(client netip.Addr, user string) (first bool) {
	now := g.now()
	g.mu.Lock()
	defer g.mu.Unlock()
	first = clean(g.clients[client], now)
	// A client's failures are counted even with no limit per client:
	// the per-user lockout asks whether a client has failed.
	charge(g, g.clients, client, g.limit.PerClient, now, "client", client.String())
	if g.limit.PerUser > 0 && user != "" {
		charge(g, g.users, user, g.limit.PerUser, now, "user", user)
	}
	return first
}

// charge counts a failure against the budget of key in table, and logs a
// lockout it starts.
func charge[K comparable](g *authGuard, table map[K]*budget, key K, burst int, now int64, name, value string) {
	b := table[key]
	if b == nil {
		if len(table) >= maxAuthEntries {
			prune(table, now)
		}
		b = &budget{full: now}
		table[key] = b
	}
	if b.full <= now {
		b.full, b.failures = now, 0
	}
	b.full += int64(g.limit.Refill)
	b.failures++
	if !b.locked && g.spent(b, burst, now) {
		b.locked = true
		g.logger.Warn("socks auth lockout", name, value, "failures", b.failures,
			"retry_in", time.Duration(b.full-now-int64(burst-1)*int64(g.limit.Refill)))
	}
}

// prune drops the entries of table whose budget is whole, or, when there
// are none, one entry.
func prune[K comparable](table map[K]*budget, now int64) {
	n := len(table)
	for k, b := range table {
		if b.full <= now && !b.locked {
			delete(table, k)
		}
	}
	if len(table) < n {
		return
	}
	for k := range table {
		delete(table, k)
		return
	}
}

// guardMethods returns methods with the brake on each that authenticates:
// a socks5.UserPassServer's Check is wrapped, any other method but
// socks5.NoAuth is run only for clients not locked out.
func (g *authGuard) guardMethods(methods []socks5.ServerMethod) []socks5.ServerMethod {
	out := make([]socks5.ServerMethod, len(methods))
	for i, m := range methods {
		switch m := m.(type) {
		case socks5.NoAuth, *socks5.NoAuth:
			out[i] = m
		case socks5.UserPassServer:
			out[i] = socks5.UserPassServer{Check: g.check(m.Check)}
		case *socks5.UserPassServer:
			out[i] = socks5.UserPassServer{Check: g.check(m.Check)}
		default:
			out[i] = guardedMethod{m, g}
		}
	}
	return out
}

// check wraps a UserPassServer's Check in the brake.
func (g *authGuard) check(inner func(ctx context.Context, user, pass string) bool) func(context.Context, string, string) bool {
	return func(ctx context.Context, user, pass string) bool {
		s, _ := ctx.Value(sessionKey{}).(*session)
		if s == nil { // not the listener's handshake: no brake
			return inner != nil && inner(ctx, user, pass)
		}
		ok, why := g.allow(s.hs.key, user)
		if !ok {
			s.authRefused = why
			return false
		}
		if inner != nil && inner(ctx, user, pass) {
			return true
		}
		s.authRepeat = !g.failed(s.hs.key, user)
		return false
	}
}

// guardedMethod is a method of the program's own under the per-client
// brake.
type guardedMethod struct {
	socks5.ServerMethod
	g *authGuard
}

func (m guardedMethod) Verify(ctx context.Context, rw io.ReadWriter) (socks5.AuthResult, error) {
	s, _ := ctx.Value(sessionKey{}).(*session)
	if s == nil {
		return m.ServerMethod.Verify(ctx, rw)
	}
	if ok, why := m.g.allow(s.hs.key, ""); !ok {
		s.authRefused = why
		return socks5.AuthResult{}, errLockedOut
	}
	res, err := m.ServerMethod.Verify(ctx, rw)
	if errors.Is(err, socks5.ErrAuthFailed) {
		s.authRepeat = !m.g.failed(s.hs.key, "")
	}
	return res, err
}

// errLockedOut is the error of a method not run for a client locked out.
var errLockedOut = fmt.Errorf("client locked out: %w", socks5.ErrAuthFailed)

// sessionKey is the context key under which a handshake's context carries
// its session, for the brake.
type sessionKey struct{}
