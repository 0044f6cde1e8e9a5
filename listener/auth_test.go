package listener

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// countingCheck is a password check that counts the guesses it is asked
// about: those the brake let through.
type countingCheck struct {
	creds   *socks5.Credentials
	checked atomic.Int64
}

func (c *countingCheck) Check(ctx context.Context, user, pass string) bool {
	c.checked.Add(1)
	return c.creds.Check(ctx, user, pass)
}

func newCountingCheck() *countingCheck {
	return &countingCheck{creds: socks5.NewCredentials(map[string]string{"alice": "wonderland", "bob": "builder"})}
}

// authWorld is a world that requires a username and password, checked by
// check, with limit as its AuthLimit.
func authWorld(t testing.TB, check *countingCheck, limit AuthLimit) *world {
	return newWorld(t, &Config{
		Dialer:    &net.Dialer{},
		Policy:    allowAll,
		Methods:   []socks5.ServerMethod{socks5.UserPassServer{Check: check.Check}},
		AuthLimit: limit,
	})
}

// loginFrom runs a SOCKS5 handshake with user and pass from the loopback
// address from (127.0.0.x, which Linux serves whole), and returns its
// error.
func (w *world) loginFrom(from, user, pass string) error {
	w.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	c, err := d.Dial("tcp", w.l.Addr().String())
	require.NoError(w.t, err)
	defer c.Close()
	c.SetDeadline(time.Now().Add(sockstest.Timeout))
	target := socks5.Addr{IP: netip.MustParseAddr("192.0.2.1"), Port: 80}
	_, _, err = socks5.ClientHandshake(context.Background(), c,
		socks5.Request{Command: socks5.CmdConnect, Addr: target},
		socks5.UserPassClient{Username: user, Password: pass})
	if err == nil || !errors.Is(err, socks5.ErrAuthFailed) {
		return err
	}
	waitClosed(w.t, c)
	return err
}

// authOK reports whether err is the error of a handshake whose
// authentication succeeded: the relay to 192.0.2.1 then failed, or not.
func authOK(err error) bool { return !errors.Is(err, socks5.ErrAuthFailed) }

func records(w *world, match func(map[string]string) bool) []map[string]string {
	var found []map[string]string
	for _, r := range w.logs.All() {
		if match(r) {
			found = append(found, r)
		}
	}
	return found
}

func TestAuthLimit(t *testing.T) {
	t.Run("one client", func(t *testing.T) {
		check := newCountingCheck()
		w := authWorld(t, check, AuthLimit{PerClient: 5, Refill: time.Hour})
		for i := range 5 {
			require.ErrorIs(t, w.loginFrom("127.0.0.2", "alice", fmt.Sprint("guess", i)), socks5.ErrAuthFailed)
		}
		assert.EqualValues(t, 5, check.checked.Load(), "the first five are checked")
		for i := range 20 {
			require.ErrorIs(t, w.loginFrom("127.0.0.2", "alice", fmt.Sprint("more", i)), socks5.ErrAuthFailed)
		}
		assert.False(t, authOK(w.loginFrom("127.0.0.2", "alice", "wonderland")), "locked out: even the right password fails")
		assert.EqualValues(t, 5, check.checked.Load(), "nothing more is checked")

		// Other clients, even for the same user, go on as before.
		assert.True(t, authOK(w.loginFrom("127.0.0.3", "alice", "wonderland")))
		assert.True(t, authOK(w.loginFrom("127.0.0.1", "bob", "builder")))

		// One warning for the lockout, and the attempts at Debug level
		// but for the first failure.
		w.logs.WaitN(t, 28, sockstest.Key("msg", "socks"))
		lockouts := records(w, sockstest.Key("msg", "socks auth lockout"))
		require.Len(t, lockouts, 1, "the lockout is logged once")
		assert.Equal(t, "WARN", lockouts[0]["level"])
		assert.Equal(t, "127.0.0.2", lockouts[0]["client"])
		info := records(w, func(r map[string]string) bool {
			return r["msg"] == "socks" && r["decision"] == "deny" && r["level"] == "INFO"
		})
		assert.Len(t, info, 1, "one failed attempt at INFO: %v", info)
		refused := records(w, sockstest.Key("reason", "authentication refused: too many failures from this client"))
		assert.Len(t, refused, 21)
	})

	t.Run("a user's lockout spares clean clients", func(t *testing.T) {
		check := newCountingCheck()
		w := authWorld(t, check, AuthLimit{PerClient: 100, PerUser: 5, Refill: time.Hour})
		// A guesser spread over many addresses, one guess each: alice's
		// budget is spent after five.
		for i := range 8 {
			require.ErrorIs(t, w.loginFrom(fmt.Sprintf("127.0.1.%d", i+1), "alice", "guess"), socks5.ErrAuthFailed)
		}
		assert.EqualValues(t, 8, check.checked.Load(), "clean clients are checked")
		checked := check.checked.Load()
		// An address that has failed before guesses alice no more...
		assert.False(t, authOK(w.loginFrom("127.0.1.1", "alice", "wonderland")))
		assert.Equal(t, checked, check.checked.Load(), "not checked")
		// ...but may still log in as someone else,
		assert.True(t, authOK(w.loginFrom("127.0.1.1", "bob", "builder")))
		// and alice, from a clean address, gets in.
		assert.True(t, authOK(w.loginFrom("127.0.2.1", "alice", "wonderland")))
		w.logs.Wait(t, func(r map[string]string) bool {
			return r["msg"] == "socks auth lockout" && r["user"] == "alice"
		})
	})

	t.Run("the budget refills", func(t *testing.T) {
		check := newCountingCheck()
		w := authWorld(t, check, AuthLimit{PerClient: 2, Refill: time.Minute})
		var clock atomic.Int64
		w.l.auth.now = clock.Load
		for range 3 {
			require.ErrorIs(t, w.loginFrom("127.0.0.2", "alice", "guess"), socks5.ErrAuthFailed)
		}
		assert.EqualValues(t, 2, check.checked.Load())
		clock.Add(int64(time.Minute)) // one failure forgiven
		assert.True(t, authOK(w.loginFrom("127.0.0.2", "alice", "wonderland")))
		assert.EqualValues(t, 3, check.checked.Load())
		w.logs.Wait(t, sockstest.Key("msg", "socks auth lockout lifted"))
	})

	t.Run("a method of the program's own", func(t *testing.T) {
		m := &keyMethod{}
		w := newWorld(t, &Config{Policy: allowAll, Methods: []socks5.ServerMethod{m},
			AuthLimit: AuthLimit{PerClient: 3, Refill: time.Hour}})
		for range 6 {
			c := w.dial()
			_, _, err := socks5.ClientHandshake(context.Background(), c,
				socks5.Request{Command: socks5.CmdConnect, Addr: socks5.Addr{Name: "example.test", Port: 80}}, keyClient('x'))
			require.Error(t, err)
			waitClosed(t, c)
		}
		assert.EqualValues(t, 3, m.verified.Load(), "not run once the client is locked out")
		w.logs.Wait(t, sockstest.Key("msg", "socks auth lockout"))
	})

	t.Run("off", func(t *testing.T) {
		check := newCountingCheck()
		w := authWorld(t, check, AuthLimit{PerClient: -1, PerUser: -1})
		for range 30 {
			require.ErrorIs(t, w.loginFrom("127.0.0.2", "alice", "guess"), socks5.ErrAuthFailed)
		}
		assert.EqualValues(t, 30, check.checked.Load())
	})

	t.Run("on by default", func(t *testing.T) {
		check := newCountingCheck()
		w := authWorld(t, check, AuthLimit{})
		for range DefaultAuthFailuresPerClient + 5 {
			require.ErrorIs(t, w.loginFrom("127.0.0.2", "alice", "guess"), socks5.ErrAuthFailed)
		}
		assert.EqualValues(t, DefaultAuthFailuresPerClient, check.checked.Load())
	})
}

// keyMethod is a private method: the client sends one byte, which must be
// 'k'.
type keyMethod struct{ verified atomic.Int64 }

func (*keyMethod) Method() socks5.AuthMethod { return 0x86 }

func (m *keyMethod) Verify(_ context.Context, rw io.ReadWriter) (socks5.AuthResult, error) {
	m.verified.Add(1)
	b := make([]byte, 1)
	if _, err := io.ReadFull(rw, b); err != nil {
		return socks5.AuthResult{}, err
	}
	if b[0] != 'k' {
		return socks5.AuthResult{}, socks5.ErrAuthFailed
	}
	return socks5.AuthResult{User: "key"}, nil
}

type keyClient byte

func (keyClient) Method() socks5.AuthMethod { return 0x86 }

func (k keyClient) Authenticate(_ context.Context, rw io.ReadWriter) (io.ReadWriter, error) {
	_, err := rw.Write([]byte{byte(k)})
	return rw, err
}

// BenchmarkPasswordGuessing measures how fast one client can have
// passwords checked: each op is a whole SOCKS5 handshake with a wrong
// password from one address. guesses/s counts the passwords the listener
// actually checked, per second of the run; attempts/s every handshake.
// With the brake off, every attempt is a guess; with the default brake,
// the first DefaultAuthFailuresPerClient are, then one per
// DefaultAuthRefill.
func BenchmarkPasswordGuessing(b *testing.B) {
	for _, bc := range []struct {
		name  string
		limit AuthLimit
	}{
		{"brake=off", AuthLimit{PerClient: -1, PerUser: -1}},
		{"brake=default", AuthLimit{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			check := newCountingCheck()
			w := authWorld(b, check, bc.limit)
			start := time.Now()
			for b.Loop() {
				if err := w.loginFrom("127.0.0.2", "alice", "guess"); !errors.Is(err, socks5.ErrAuthFailed) {
					b.Fatalf("a wrong password: %v", err)
				}
			}
			secs := time.Since(start).Seconds()
			b.ReportMetric(float64(check.checked.Load())/secs, "guesses/s")
			b.ReportMetric(float64(b.N)/secs, "attempts/s")
		})
	}
}
