package httpgate

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// A client that stops reading the response is cut off after
// ClientWriteTimeout: its connection is closed, the upstream response let
// go (the origin sees its request end), and the record says why.
func TestStalledClientCutOff(t *testing.T) {
	const bound = 300 * time.Millisecond
	originDone := make(chan struct{}, 2) // a request has ended
	chunk := strings.Repeat("x", 32<<10)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		defer func() { originDone <- struct{}{} }()
		for r.Context().Err() == nil { // an endless body, until the gateway lets go
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
		}
	})
	request := "GET " + o.URL + "/endless HTTP/1.1\r\nHost: " + o.host() + "\r\n\r\n"
	for _, tc := range []struct {
		name string
		open func(w *world) (net.Conn, *bufio.Reader)
	}{
		{"http proxy", func(w *world) (net.Conn, *bufio.Reader) { return w.raw(request) }},
		{"tapped SOCKS", func(w *world) (net.Conn, *bufio.Reader) {
			d, err := dialer.Parse("socks5h://" + w.addr)
			require.NoError(t, err)
			c, err := d.DialContext(context.Background(), "tcp", o.host())
			require.NoError(t, err)
			t.Cleanup(func() { c.Close() })
			_, err = io.WriteString(c, "GET /endless HTTP/1.1\r\nHost: "+o.host()+"\r\n\r\n")
			require.NoError(t, err)
			return c, bufio.NewReader(c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, &Gateway{ClientWriteTimeout: bound}, nil)
			start := time.Now()
			c, br := tc.open(w)
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			// The client reads nothing more.
			rec := w.record()
			took := time.Since(start)
			assert.GreaterOrEqual(t, took, bound)
			assert.Less(t, took, sockstest.Timeout)
			assert.True(t, errors.Is(rec.Err, os.ErrDeadlineExceeded), "%v", rec.Err)
			assert.Equal(t, "the client took nothing of the response for 300ms", rec.Reason)
			select {
			case <-originDone:
			case <-time.After(sockstest.Timeout):
				t.Fatal("the origin's request did not end")
			}
			// What the client did not read is there, then the end, too
			// soon: the response was cut short.
			c.SetReadDeadline(time.Now().Add(sockstest.Timeout))
			_, err = io.Copy(io.Discard, resp.Body)
			assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
		})
	}
}

// A connection that was idle for longer than ClientWriteTimeout serves its
// next requests: a deadline left from an exchange before never cuts a
// write short (the connection renews it before writing, or the fallback's
// page has none), for the gateway's answers (a response, a refusal) and
// for the fallback's pages alike.
func TestClientWriteBoundPerExchange(t *testing.T) {
	const bound = 100 * time.Millisecond
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page") })
	w := newWorld(t, &Gateway{
		ClientWriteTimeout: bound,
		Filter: func(r *http.Request) error {
			if strings.HasSuffix(r.URL.Path, "/refused") {
				return errors.New("refused")
			}
			return nil
		},
		Fallback: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "own page") }),
	}, nil)
	c, br := w.raw("")
	for _, step := range []struct{ request, want string }{
		{"GET " + o.URL + "/first HTTP/1.1\r\nHost: " + o.host() + "\r\n\r\n", "page"},
		{"HEAD " + o.URL + "/head HTTP/1.1\r\nHost: " + o.host() + "\r\n\r\n", ""},
		{"GET " + o.URL + "/refused HTTP/1.1\r\nHost: " + o.host() + "\r\n\r\n", "403 Forbidden: refused\n"},
		{"GET /own HTTP/1.1\r\nHost: " + w.addr + "\r\n\r\n", "own page"},
		{"GET " + o.URL + "/last HTTP/1.1\r\nHost: " + o.host() + "\r\n\r\n", "page"},
	} {
		// Longer idle than the bound: a deadline left from the exchange
		// before would have passed.
		<-time.After(2 * bound)
		_, err := io.WriteString(c, step.request)
		require.NoError(t, err)
		method, _, _ := strings.Cut(step.request, " ")
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		require.NoError(t, err, "%q", step.request)
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		assert.Equal(t, step.want, string(b))
	}
}

// The gateway's bound on writes to a client is the gateway's own: on a
// connection that served a gateway request, neither a fallback page nor a
// CONNECT tunnel that follows is cut off when the client takes a while
// longer than the bound to read.
func TestClientWriteBoundLetGo(t *testing.T) {
	const bound = 100 * time.Millisecond
	const size = 32 << 20 // more than the socket buffers hold
	big := strings.Repeat("y", size)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "page") })
	target := sockstest.Serve(t, func(c net.Conn) { io.WriteString(c, big) })
	w := newWorld(t, &Gateway{
		ClientWriteTimeout: bound,
		Fallback:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, big) }),
	}, nil)
	for _, tc := range []struct {
		name    string
		request string
		method  string
	}{
		{"fallback", "GET /own HTTP/1.1\r\nHost: " + w.addr + "\r\n\r\n", "GET"},
		{"tunnel", "CONNECT " + target.String() + " HTTP/1.1\r\nHost: " + target.String() + "\r\n\r\n", "CONNECT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := w.raw("GET " + o.URL + "/first HTTP/1.1\r\nHost: " + o.host() + "\r\n\r\n")
			resp, err := http.ReadResponse(br, nil)
			require.NoError(t, err)
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			require.Equal(t, "page", string(b))

			_, err = io.WriteString(c, tc.request)
			require.NoError(t, err)
			resp, err = http.ReadResponse(br, &http.Request{Method: tc.method})
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			<-time.After(3 * bound) // the client reads nothing for a while
			var r io.Reader = resp.Body
			if tc.method == "CONNECT" {
				r = io.LimitReader(br, size)
			}
			n, err := io.Copy(io.Discard, r)
			require.NoError(t, err)
			assert.Equal(t, int64(size), n, "the whole body")
		})
	}
}
