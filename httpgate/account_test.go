package httpgate

import (
	"context"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

// A program that counts and bills from the mixed port's two hooks gets
// every HTTP request once, every SOCKS session once, and, adding up the
// bytes of every record, each byte once: a tapped session's own record
// counts none, and the requests it carried name it.
func TestAccountedOnce(t *testing.T) {
	const page = "a page of twenty-six bytes"
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, page) })
	var mu sync.Mutex
	var sessions []*listener.Record
	w := newWorld(t, nil, func(s *Server) {
		s.SOCKS = &listener.Config{
			OnRecord: func(r *listener.Record) {
				mu.Lock()
				sessions = append(sessions, r)
				mu.Unlock()
			},
			Policy: func(_ context.Context, r *listener.Request) error {
				if r.Target.Port == 1 {
					return listener.Deny("port 1 is closed")
				}
				return nil
			},
		}
	})

	// Two requests to the HTTP proxy, on one connection.
	for _, p := range []string{"/proxy1", "/proxy2"} {
		_, body := w.get(o.URL + p)
		require.Equal(t, page, body)
	}
	// A CONNECT tunnel.
	c := openConnect(t, w)
	echoes(t, c, "through CONNECT")
	c.Close()
	// One SOCKS5 stream, tapped, with two requests on it.
	d, err := dialer.Parse("socks5h://" + w.addr)
	require.NoError(t, err)
	tr := &http.Transport{DialContext: d.DialContext, MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	socksHTTP := &http.Client{Transport: tr, Timeout: sockstest.Timeout}
	for _, p := range []string{"/tapped1", "/tapped2"} {
		resp, err := socksHTTP.Get(o.URL + p)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, page, string(b))
	}
	tr.CloseIdleConnections()
	// A SOCKS5 relay of a stream that is not HTTP.
	relayed := openSOCKSRelay(t, w)
	echoes(t, relayed, "relayed")
	relayed.Close()
	// A SOCKS5 request the policy refuses.
	_, err = d.DialContext(context.Background(), "tcp", "127.0.0.1:1")
	re, ok := errors.AsType[*socks5.ReplyError](err)
	require.True(t, ok, "%v", err)
	assert.Equal(t, socks5.NotAllowed, re.Reply)

	w.stop()
	w.served() // every record is made by then

	w.mu.Lock()
	requests := append([]*Record(nil), w.records...)
	w.mu.Unlock()
	mu.Lock()
	defer mu.Unlock()

	byArrival := map[Arrival][]string{}
	var bytes int64
	for _, r := range requests {
		what := strings.TrimPrefix(r.URL, o.URL)
		if r.Arrival == ArrivalConnect {
			what = "tunnel"
		}
		byArrival[r.Arrival] = append(byArrival[r.Arrival], what)
		bytes += r.BytesUp + r.BytesDown
	}
	assert.Equal(t, map[Arrival][]string{
		ArrivalProxy:   {"/proxy1", "/proxy2"},
		ArrivalConnect: {"tunnel"},
		ArrivalSOCKS5:  {"/tapped1", "/tapped2"},
	}, byArrival, "each request once")

	byDecision := map[listener.Decision]int{}
	var tap *listener.Record
	for _, s := range sessions {
		byDecision[s.Decision]++
		bytes += s.BytesUp + s.BytesDown
		if s.Decision == listener.DecisionTap {
			tap = s
			assert.Zero(t, s.BytesUp+s.BytesDown, "a tapped session's bytes are its requests'")
		}
	}
	assert.Equal(t, map[listener.Decision]int{listener.DecisionTap: 1, listener.DecisionRelay: 1, listener.DecisionDeny: 1},
		byDecision, "each session once")
	require.NotNil(t, tap)
	for _, r := range requests {
		if r.Arrival == ArrivalSOCKS5 {
			assert.Same(t, tap.Request, r.SOCKS, "a tapped request names its session")
		} else {
			assert.Nil(t, r.SOCKS, "%s", r.Arrival)
		}
	}
	want := 4*int64(len(page)) + 2*int64(len("\x16through CONNECT")) + 2*int64(len("\x16relayed"))
	assert.Equal(t, want, bytes, "each byte once: bodies, the tunnel's and the relay's bytes both ways")
}

// Stats adds up every field of the listeners' snapshots: a field added to
// listener.Stats and forgotten in addStats fails this test.
func TestStatsAddsEveryField(t *testing.T) {
	var one listener.Stats
	v := reflect.ValueOf(&one).Elem()
	for i := range v.NumField() {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Int, reflect.Int64:
			f.SetInt(int64(i + 1))
		case reflect.Uint64:
			f.SetUint(uint64(i + 1))
		default:
			t.Fatalf("listener.Stats.%s is a %s: teach addStats and this test to add it", v.Type().Field(i).Name, f.Kind())
		}
	}
	sum := reflect.ValueOf(addStats(one, one))
	for i := range v.NumField() {
		name := v.Type().Field(i).Name
		switch f := sum.Field(i); f.Kind() {
		case reflect.Uint64:
			assert.Equal(t, uint64(2*(i+1)), f.Uint(), "addStats forgets %s", name)
		default:
			assert.Equal(t, int64(2*(i+1)), f.Int(), "addStats forgets %s", name)
		}
	}
}

// Server.Stats is the listener's while Serve serves, and zero after.
func TestServerStats(t *testing.T) {
	var srv *Server
	w := newWorld(t, nil, func(s *Server) { srv = s })
	c := openSOCKSRelay(t, w)
	echoes(t, c, "counted")
	st := srv.Stats()
	assert.Equal(t, 1, st.Relays)
	assert.Equal(t, uint64(1), st.Accepted)
	c.Close()
	w.stop()
	w.served()
	assert.Equal(t, listener.Stats{}, srv.Stats())
}
