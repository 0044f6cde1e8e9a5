package httpgate

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
)

// seen is what the policy or the dialer saw of one call.
type seen struct {
	who     string // "policy", "policy at dial" (DialedIP set) or "dial"
	version int
	arrival Arrival // 0 when the context did not say
	target  string
}

// protocol is how a program that logs clients names this one's protocol:
// the arrival when the gateway's context gives one, the SOCKS version
// otherwise.
func (s seen) protocol(versionString string) string {
	if s.arrival != 0 {
		return s.arrival.String()
	}
	return versionString
}

// The policy and the dialer learn from their context how a client came:
// an HTTP proxy client's Request has Version 0 (which VersionString spells
// "socks0"), and ArrivalFromContext says "http-proxy" or "connect"; the
// gateway's own records and logs never say "socks0".
func TestArrivalInContext(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	echo := sockstest.Echo(t)
	var mu sync.Mutex
	var calls []seen
	var protocols []string
	note := func(who string, ctx context.Context, r *listener.Request) {
		s := seen{who: who, version: r.Version, target: r.Target.String()}
		s.arrival, _ = ArrivalFromContext(ctx)
		mu.Lock()
		calls = append(calls, s)
		protocols = append(protocols, s.protocol(r.VersionString()))
		mu.Unlock()
	}
	var d net.Dialer
	g := &Gateway{
		Policy: func(ctx context.Context, r *listener.Request) error {
			who := "policy"
			if r.DialedIP.IsValid() {
				who = "policy at dial"
			}
			note(who, ctx, r)
			return listener.DefaultPolicy(ctx, r)
		},
		Dialer: dialFunc(func(ctx context.Context, network, addr string) (net.Conn, error) {
			r, ok := listener.FromContext(ctx)
			if !ok {
				return nil, fmt.Errorf("dial of %s: no request in the context", addr)
			}
			note("dial", ctx, r)
			return d.DialContext(ctx, network, addr)
		}),
	}
	w := newWorld(t, g, nil)
	take := func() []seen {
		mu.Lock()
		defer mu.Unlock()
		c := calls
		calls = nil
		return c
	}

	t.Run("http-proxy", func(t *testing.T) {
		resp, err := w.client().Get(o.URL + "/a")
		require.NoError(t, err)
		resp.Body.Close()
		got := take()
		require.Len(t, got, 3)
		assert.Equal(t, seen{"policy", 0, ArrivalProxy, o.host()}, got[0])
		assert.Equal(t, seen{"policy at dial", 0, ArrivalProxy, o.host()}, got[1])
		assert.Equal(t, seen{"dial", 0, ArrivalProxy, o.host()}, got[2])
	})
	t.Run("connect", func(t *testing.T) {
		c, br := w.raw("CONNECT " + echo.String() + " HTTP/1.1\r\nHost: " + echo.String() + "\r\n\r\n")
		resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
		require.NoError(t, err)
		require.Equal(t, 200, resp.StatusCode)
		c.Close()
		got := take()
		require.Len(t, got, 3)
		assert.Equal(t, seen{"policy", 0, ArrivalConnect, echo.String()}, got[0])
		assert.Equal(t, seen{"policy at dial", 0, ArrivalConnect, echo.String()}, got[1])
		assert.Equal(t, seen{"dial", 0, ArrivalConnect, echo.String()}, got[2])
	})
	t.Run("socks5 tapped", func(t *testing.T) {
		resp, err := socksClient(t, "socks5h://"+w.addr).Get(o.URL + "/b")
		require.NoError(t, err)
		resp.Body.Close()
		w.recordWhere(func(r *Record) bool { return strings.HasSuffix(r.URL, "/b") })
		got := take()
		require.Len(t, got, 3)
		// The listener asks the policy about a SOCKS request, whose
		// version says how it came; the gateway dials for it, checking
		// the address at dial time as it does for any dialer.
		assert.Equal(t, seen{"policy", 5, 0, o.host()}, got[0])
		assert.Equal(t, seen{"policy at dial", 5, ArrivalSOCKS5, o.host()}, got[1])
		assert.Equal(t, seen{"dial", 5, ArrivalSOCKS5, o.host()}, got[2])
	})

	mu.Lock()
	assert.NotContains(t, protocols, "socks0")
	assert.Subset(t, protocols, []string{"http-proxy", "connect", "socks5"})
	mu.Unlock()
	for _, m := range w.logs.All() {
		for k, v := range m {
			assert.NotContains(t, v, "socks0", "log %q, key %s", m["msg"], k)
		}
	}
	logged := w.logs.WaitN(t, 3, sockstest.Key("msg", "http"))
	assert.ElementsMatch(t, []string{"http-proxy", "connect", "socks5"},
		[]string{logged[0]["arrival"], logged[1]["arrival"], logged[2]["arrival"]})
}

// dialFunc is a function as a proxy.ContextDialer.
type dialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

func (f dialFunc) Dial(network, addr string) (net.Conn, error) {
	return f(context.Background(), network, addr)
}

func (f dialFunc) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return f(ctx, network, addr)
}
