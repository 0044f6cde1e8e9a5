package listener

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// resolveZone is the DNS the RESOLVE tests see: dual.test has an IPv6
// and an IPv4 address, v6.test only an IPv6 one, inside.test a private
// and a public address; 192.0.2.1 is named host.test, 2001:db8::1
// v6.test.
func resolveZone(name string) ([]netip.Addr, bool) {
	switch name {
	case "dual.test":
		return []netip.Addr{netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.1")}, true
	case "v6.test":
		return []netip.Addr{netip.MustParseAddr("2001:db8::1")}, true
	case "inside.test":
		return []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("198.51.100.1")}, true
	}
	return nil, false
}

func reverseZone(ip netip.Addr) ([]string, bool) {
	switch ip {
	case netip.MustParseAddr("192.0.2.1"):
		return []string{"host.test"}, true
	case netip.MustParseAddr("2001:db8::1"):
		return []string{"v6.test"}, true
	}
	return nil, false
}

// resolveWorld is a world with RESOLVE enabled, the test zones, and cfg.
func resolveWorld(t *testing.T, cfg *Config) (*world, *recorder) {
	t.Helper()
	rec := &recorder{}
	if cfg == nil {
		cfg = &Config{}
	}
	cfg.Resolve = true
	cfg.Resolver = sockstest.ReverseResolver(t, resolveZone, reverseZone)
	cfg.OnRecord = rec.add
	return newWorld(t, cfg), rec
}

// ask sends a RESOLVE or RESOLVE_PTR for target and returns the reply's
// address; the connection must then be closed by the listener.
func (w *world) ask(cmd socks5.Command, target socks5.Addr) (socks5.Addr, error) {
	w.t.Helper()
	c := w.dial()
	bound, _, err := socks5.ClientHandshake(context.Background(), c, socks5.Request{Command: cmd, Addr: target})
	waitClosed(w.t, c)
	return bound, err
}

func TestResolve(t *testing.T) {
	w, rec := resolveWorld(t, nil)
	for _, tc := range []struct {
		cmd    socks5.Command
		target socks5.Addr
		want   socks5.Addr
		reply  socks5.Reply
	}{
		{socks5.CmdResolve, socks5.Addr{Name: "dual.test"}, socks5.Addr{IP: netip.MustParseAddr("192.0.2.1")}, 0},
		{socks5.CmdResolve, socks5.Addr{Name: "DUAL.test.", Port: 80}, socks5.Addr{IP: netip.MustParseAddr("192.0.2.1")}, 0},
		{socks5.CmdResolve, socks5.Addr{Name: "v6.test"}, socks5.Addr{IP: netip.MustParseAddr("2001:db8::1")}, 0},
		{socks5.CmdResolve, socks5.Addr{IP: netip.MustParseAddr("203.0.113.9")}, socks5.Addr{IP: netip.MustParseAddr("203.0.113.9")}, 0},
		{socks5.CmdResolve, socks5.Addr{Name: "nowhere.test"}, socks5.Addr{}, socks5.HostUnreachable},
		{socks5.CmdResolvePTR, socks5.Addr{IP: netip.MustParseAddr("192.0.2.1")}, socks5.Addr{Name: "host.test"}, 0},
		{socks5.CmdResolvePTR, socks5.Addr{IP: netip.MustParseAddr("2001:db8::1")}, socks5.Addr{Name: "v6.test"}, 0},
		{socks5.CmdResolvePTR, socks5.Addr{Name: "192.0.2.1"}, socks5.Addr{Name: "host.test"}, 0},
		{socks5.CmdResolvePTR, socks5.Addr{Name: "host.test"}, socks5.Addr{}, socks5.AddrTypeNotSupported},
		{socks5.CmdResolvePTR, socks5.Addr{IP: netip.MustParseAddr("192.0.2.99")}, socks5.Addr{}, socks5.HostUnreachable},
	} {
		t.Run(tc.cmd.String()+" "+tc.target.Host(), func(t *testing.T) {
			got, err := w.ask(tc.cmd, tc.target)
			if tc.reply != 0 {
				assert.Equal(t, tc.reply, replyOf(err), "%v", err)
				r := rec.wait(t, func(r *Record) bool { return r.Request.Target == tc.target })
				assert.Equal(t, DecisionFail, r.Decision)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
			r := rec.wait(t, func(r *Record) bool { return r.Request.Target == tc.target })
			assert.Equal(t, DecisionResolve, r.Decision)
			assert.Equal(t, socks5.Succeeded, r.Reply)
			assert.Equal(t, tc.cmd, r.Request.Command)
		})
	}
	l := w.logs.Wait(t, sockstest.Key("decision", "resolve"))
	assert.Equal(t, "RESOLVE", l["cmd"])
}

// TestResolvePolicy: the policy is asked about every RESOLVE, when it
// arrives; a program's policy also about the addresses the name resolves
// to, with DialedIP set, and the answer is the first one it allows.
func TestResolvePolicy(t *testing.T) {
	var mu sync.Mutex
	var dialed []string
	w, rec := resolveWorld(t, &Config{Policy: func(_ context.Context, r *Request) error {
		if r.DialedIP.IsValid() {
			mu.Lock()
			dialed = append(dialed, r.DialedIP.String())
			mu.Unlock()
			if r.DialedIP.IsPrivate() {
				return Deny("private")
			}
		}
		if strings.HasPrefix(r.Target.Name, "secret.") || r.Target.IP == netip.MustParseAddr("192.0.2.1") {
			return Deny("secret")
		}
		return nil
	}})

	got, err := w.ask(socks5.CmdResolve, socks5.Addr{Name: "inside.test"})
	require.NoError(t, err)
	assert.Equal(t, socks5.Addr{IP: netip.MustParseAddr("198.51.100.1")}, got, "the private address is not told")
	mu.Lock()
	assert.Equal(t, []string{"10.0.0.1", "198.51.100.1"}, dialed)
	mu.Unlock()

	_, err = w.ask(socks5.CmdResolve, socks5.Addr{Name: "secret.test"})
	assert.Equal(t, socks5.NotAllowed, replyOf(err))
	_, err = w.ask(socks5.CmdResolvePTR, socks5.Addr{IP: netip.MustParseAddr("192.0.2.1")})
	assert.Equal(t, socks5.NotAllowed, replyOf(err))
	r := rec.wait(t, func(r *Record) bool { return r.Request.Command == socks5.CmdResolvePTR })
	assert.Equal(t, DecisionDeny, r.Decision)
	assert.Equal(t, "secret", r.Reason)

	// Every address refused: the first refusal is the answer.
	w2, _ := resolveWorld(t, &Config{Policy: func(_ context.Context, r *Request) error {
		if r.DialedIP.IsValid() {
			return Deny("no answers")
		}
		return nil
	}})
	_, err = w2.ask(socks5.CmdResolve, socks5.Addr{Name: "dual.test"})
	assert.Equal(t, socks5.NotAllowed, replyOf(err))
}

// TestResolveThroughDialer: the dialer package's Resolve and ResolvePTR,
// an independent client, through the listener.
func TestResolveThroughDialer(t *testing.T) {
	w, _ := resolveWorld(t, nil)
	d := &dialer.Dialer{Proxy: w.l.Addr().String(), Scheme: dialer.SOCKS5H}
	ctx := context.Background()
	ip, err := d.Resolve(ctx, "dual.test")
	require.NoError(t, err)
	assert.Equal(t, netip.MustParseAddr("192.0.2.1"), ip)
	name, err := d.ResolvePTR(ctx, netip.MustParseAddr("2001:db8::1"))
	require.NoError(t, err)
	assert.Equal(t, "v6.test", name)
	_, err = d.Resolve(ctx, "nowhere.test")
	var re *socks5.ReplyError
	require.ErrorAs(t, err, &re)
	assert.Equal(t, socks5.HostUnreachable, re.Reply)
}

// TestResolveTimeout: a resolver that never answers is bounded by
// DialTimeout; the client hears "host unreachable".
func TestResolveTimeout(t *testing.T) {
	// The server reads the queries and answers none. Go's resolver gives
	// up on its lookup at the context's end, but keeps its connections a
	// while longer: the cleanup closes them.
	var (
		mu     sync.Mutex
		wg     sync.WaitGroup
		conns  []net.Conn
		closed bool
	)
	t.Cleanup(func() {
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	stalled := &net.Resolver{
		PreferGo: true,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			mu.Lock()
			defer mu.Unlock()
			if closed {
				return nil, net.ErrClosed
			}
			client, server := net.Pipe()
			conns = append(conns, server)
			wg.Go(func() { io.Copy(io.Discard, server) })
			return client, nil
		},
	}
	rec := &recorder{}
	w := newWorld(t, &Config{Resolve: true, Resolver: stalled, DialTimeout: 100 * time.Millisecond, OnRecord: rec.add})
	start := time.Now()
	_, err := w.ask(socks5.CmdResolve, socks5.Addr{Name: "slow.test"})
	assert.Equal(t, socks5.HostUnreachable, replyOf(err), "%v", err)
	assert.Less(t, time.Since(start), sockstest.Timeout/2)
	r := rec.wait(t, decided(DecisionFail))
	assert.Equal(t, "cannot resolve", r.Reason)
}
