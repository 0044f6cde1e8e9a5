package listener

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// requestDialer dials TCP and reports the request its context carries.
type requestDialer struct{ seen chan *Request }

func (d requestDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	r, _ := FromContext(ctx)
	d.seen <- r
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

// TestDialContextCarriesTheRequest checks that Config.Dialer can tell
// whom it dials for: listener.FromContext works on its context, for a
// dialer of any kind, with or without a Policy, for an IP address and
// for a name.
func TestDialContextCarriesTheRequest(t *testing.T) {
	echo := sockstest.Echo(t)
	targets := []string{echo.String(), net.JoinHostPort("localhost", strconv.Itoa(echo.Port))}
	creds := socks5.NewCredentials(map[string]string{"alice": "pw"})
	alice := socks5.UserPassClient{Username: "alice", Password: "pw"}
	for _, policy := range []Policy{nil, allowAll} {
		t.Run("any dialer", func(t *testing.T) {
			d := requestDialer{seen: make(chan *Request, 1)}
			w := newWorld(t, &Config{
				Dialer:  d,
				Policy:  policy,
				Methods: []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}},
			})
			for _, target := range targets {
				c, _, err := w.connect5(target, alice)
				require.NoError(t, err)
				r := <-d.seen
				require.NotNil(t, r, "the dial's context carries the request")
				assert.Equal(t, target, r.Target.String())
				assert.Equal(t, "alice", r.User)
				assert.Equal(t, c.LocalAddr().String(), r.Client.String())
			}
		})
		t.Run("*net.Dialer", func(t *testing.T) {
			seen := make(chan *Request, 1)
			nd := &net.Dialer{ControlContext: func(ctx context.Context, _, _ string, _ syscall.RawConn) error {
				r, _ := FromContext(ctx)
				select { // localhost may have two addresses to try
				case seen <- r:
				default:
				}
				return nil
			}}
			w := newWorld(t, &Config{Dialer: nd, Policy: policy})
			for _, target := range targets {
				_, _, err := w.connect5(target)
				require.NoError(t, err)
				r := <-seen
				require.NotNil(t, r, "the dial's context carries the request")
				assert.Equal(t, target, r.Target.String())
			}
		})
	}
}

// TestReadAheadIsNotShared checks that the read-ahead buffers connections
// take from a pool, one after another, carry nothing from one to the
// next: what a client sends ahead of the reply (or, not speaking SOCKS,
// what was sniffed) reaches its own target or program intact after later
// connections have used the buffer, and the bytes Tap's peek returned stay
// as they were after the session.
func TestReadAheadIsNotShared(t *testing.T) {
	echo := sockstest.Echo(t)
	relayW := newWorld(t, &Config{Dialer: &net.Dialer{}})
	tapW := newWorld(t, nil)
	var mu sync.Mutex
	peeked := make(map[string][]byte) // by target port, as Tap's peek returned them
	peekW := newWorld(t, &Config{
		Dialer: &net.Dialer{},
		Tap: func(r *Request, peek func(int) []byte) bool {
			b := peek(len("peek 00"))
			mu.Lock()
			peeked[strconv.Itoa(int(r.Target.Port))] = b
			mu.Unlock()
			return false
		},
	})
	// optimistic sends the greeting, a CONNECT to target and payload in
	// one write, and reads the method selection and the reply.
	optimistic := func(w *world, target *net.TCPAddr, payload string) net.Conn {
		t.Helper()
		a, err := socks5.ParseAddr(target.String())
		require.NoError(t, err)
		msg, err := socks5.Request{Command: socks5.CmdConnect, Addr: a}.AppendBinary([]byte{5, 1, 0})
		require.NoError(t, err)
		c := w.dial()
		_, err = c.Write(append(msg, payload...))
		require.NoError(t, err)
		_, err = socks5.ReadMethodSelection(c)
		require.NoError(t, err)
		resp, err := socks5.ReadResponse(c)
		require.NoError(t, err)
		require.Equal(t, socks5.Succeeded, resp.Reply)
		return c
	}
	expect := func(c net.Conn, want string) {
		t.Helper()
		got := make([]byte, len(want))
		_, err := io.ReadFull(c, got)
		require.NoError(t, err)
		assert.Equal(t, want, string(got))
	}
	var echoes []*net.TCPAddr // one target a round, so that the peeks tell apart
	for i := range 16 {
		relayed := fmt.Sprintf("relay %02d", i)
		expect(optimistic(relayW, echo, relayed), relayed)

		// Not SOCKS: its sniffed bytes wait for the program while a
		// relay uses the buffer.
		plain := tapW.dial()
		_, err := fmt.Fprintf(plain, "plain %02d", i)
		require.NoError(t, err)
		expect(optimistic(relayW, echo, relayed), relayed)
		expect(tapW.accept(), fmt.Sprintf("plain %02d", i))

		tapped := fmt.Sprintf("tapped %02d", i)
		optimistic(tapW, echo, tapped)
		expect(tapW.accept(), tapped)

		target := sockstest.Echo(t)
		echoes = append(echoes, target)
		p := fmt.Sprintf("peek %02d and more", i)
		expect(optimistic(peekW, target, p), p)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, e := range echoes {
		assert.Equal(t, fmt.Sprintf("peek %02d", i), string(peeked[strconv.Itoa(e.Port)]), "a peek's bytes after the session")
	}
}

// silentTarget returns an address on loopback whose connects hang: a
// socket that listens with the shortest queue and never accepts, its
// queue filled, so that the kernel drops the SYNs that come after.
func silentTarget(t *testing.T) *net.TCPAddr {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	require.NoError(t, err)
	t.Cleanup(func() { syscall.Close(fd) })
	require.NoError(t, syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}))
	require.NoError(t, syscall.Listen(fd, 0))
	sa, err := syscall.Getsockname(fd)
	require.NoError(t, err)
	addr := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: sa.(*syscall.SockaddrInet4).Port}
	// The first connection fills the queue; the next must hang.
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr.String(), 100*time.Millisecond)
		if err != nil {
			require.True(t, deadline.IsTimeout(err), "a connect to a full queue: %v", err)
			return addr
		}
		t.Cleanup(func() { c.Close() })
		require.Less(t, i, 4, "the queue does not fill")
	}
}

// TestRelayDialEnds checks that a relay's dial of a target that does not
// answer ends at DialTimeout, and when the listener closes: through a
// *net.Dialer, to an IP address, the dial whose context is dialContext,
// and through a dialer of another type.
func TestRelayDialEnds(t *testing.T) {
	silent := silentTarget(t)
	for _, tc := range []struct {
		name   string
		dialer func(control func(string, string, syscall.RawConn) error) proxy.ContextDialer
	}{
		{"*net.Dialer", func(control func(string, string, syscall.RawConn) error) proxy.ContextDialer {
			return &net.Dialer{Control: control}
		}},
		{"other dialer", func(control func(string, string, syscall.RawConn) error) proxy.ContextDialer {
			return forwardingDialer{&net.Dialer{Control: control}}
		}},
	} {
		t.Run(tc.name+"/DialTimeout", func(t *testing.T) {
			w := newWorld(t, &Config{Dialer: tc.dialer(nil), DialTimeout: 100 * time.Millisecond})
			c, _, err := w.connect5(silent.String())
			re, ok := errors.AsType[*socks5.ReplyError](err)
			require.True(t, ok, "a reply, before the client's own deadline: %v", err)
			assert.Equal(t, socks5.HostUnreachable, re.Reply)
			waitClosed(t, c)
		})
		t.Run(tc.name+"/Close", func(t *testing.T) {
			dialing := make(chan struct{}, 1)
			w := newWorld(t, &Config{Dialer: tc.dialer(func(string, string, syscall.RawConn) error {
				dialing <- struct{}{}
				return nil
			})})
			c := w.dial()
			a, err := socks5.ParseAddr(silent.String())
			require.NoError(t, err)
			go socks5.ClientHandshake(context.Background(), c, socks5.Request{Command: socks5.CmdConnect, Addr: a})
			select {
			case <-dialing:
			case <-time.After(sockstest.Timeout):
				t.Fatal("no dial")
			}
			closed := make(chan error, 1)
			go func() { closed <- w.l.Close() }()
			select {
			case <-closed:
			case <-time.After(sockstest.Timeout):
				t.Fatal("Close waits for the dial")
			}
			waitClosed(t, c)
			rec := w.logs.Wait(t, sockstest.Key("decision", "fail"))
			assert.Contains(t, rec["cause"], "canceled")
		})
	}
}
