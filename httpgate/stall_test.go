package httpgate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// An origin that sends a response's header and half its body, then
// nothing, holds the gateway for BodyIdleTimeout and no longer: the
// client gets what was sent and then the end of its connection, and the
// access record says the response was cut short because upstream
// stalled. Each framing of a body, each way of arriving.
func TestStalledBodyCutOff(t *testing.T) {
	const idle = 300 * time.Millisecond
	half := strings.Repeat("h", 500)
	framings := []struct{ name, head, sent string }{
		{"content-length", "Content-Length: 1000\r\n", half},
		{"chunked", "Transfer-Encoding: chunked\r\n", fmt.Sprintf("%x\r\n%s\r\n", len(half), half)},
		{"close-delimited", "", half},
	}
	for _, f := range framings {
		for _, via := range []string{"http-proxy", "socks5", "upgrade refused"} {
			t.Run(f.name+"/"+via, func(t *testing.T) {
				stall := make(chan struct{})
				o := sockstest.Serve(t, func(c net.Conn) {
					if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
						return
					}
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"+f.head+"\r\n"+f.sent)
					select {
					case <-stall:
					case <-time.After(sockstest.Timeout):
					}
				})
				t.Cleanup(func() { close(stall) }) // before the origin's cleanup waits for it
				w := newWorld(t, &Gateway{BodyIdleTimeout: idle}, nil)
				start := time.Now() // before the request: the gateway's wait starts after it
				var c net.Conn
				switch via {
				case "http-proxy", "upgrade refused":
					c, _ = w.raw("")
					upgrade := ""
					if via == "upgrade refused" {
						// The origin answers 200 to an upgrade: no switch, so
						// the answer is passed on, from a connection of its own.
						upgrade = "Connection: Upgrade\r\nUpgrade: websocket\r\n"
					}
					io.WriteString(c, "GET http://"+o.String()+"/ HTTP/1.1\r\nHost: "+o.String()+"\r\n"+upgrade+"\r\n")
				case "socks5":
					d, err := dialer.Parse("socks5://" + w.addr)
					require.NoError(t, err)
					c, err = d.DialContext(context.Background(), "tcp", o.String())
					require.NoError(t, err)
					t.Cleanup(func() { c.Close() })
					io.WriteString(c, "GET / HTTP/1.1\r\nHost: "+o.String()+"\r\n\r\n")
				}
				c.SetReadDeadline(time.Now().Add(sockstest.Timeout))
				resp, err := http.ReadResponse(bufio.NewReader(c), nil)
				require.NoError(t, err)
				assert.Equal(t, 200, resp.StatusCode)
				got, err := io.ReadAll(resp.Body)
				assert.Error(t, err, "the body ends before it is whole")
				var ne net.Error
				assert.False(t, errors.As(err, &ne) && ne.Timeout(), "the gateway ended the connection; the client did not time out: %v", err)
				assert.Equal(t, half, string(got), "what the origin sent reached the client")
				assert.GreaterOrEqual(t, time.Since(start), idle)

				rec := w.recordWhere(func(r *Record) bool { return r.Target == o.String() })
				assert.Contains(t, rec.Reason, "response cut short")
				assert.Contains(t, rec.Reason, "upstream sent nothing of the response body for 300ms")
				var se *stallError
				assert.ErrorAs(t, rec.Err, &se)
				logged := w.logs.Wait(t, func(m map[string]string) bool { return m["msg"] == "http" })
				assert.Contains(t, logged["reason"], "response cut short")
			})
		}
	}
}

// The idle clock measures upstream's silence only: an origin that sends a
// body in small pieces, over longer than BodyIdleTimeout in all, is not
// cut, nor is a response the client takes its time to read.
func TestBodyIdleTimeoutIsIdleOnly(t *testing.T) {
	const idle = time.Second
	t.Run("slow origin", func(t *testing.T) {
		const pieces, gap = 12, 100 * time.Millisecond // 1.2 s in all
		o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			rc := http.NewResponseController(w)
			for i := range pieces {
				fmt.Fprintf(w, "piece %d\n", i)
				rc.Flush()
				<-time.After(gap)
			}
		})
		w := newWorld(t, &Gateway{BodyIdleTimeout: idle}, nil)
		start := time.Now()
		resp, err := w.client().Get(o.URL)
		require.NoError(t, err)
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.NoError(t, err)
		assert.Equal(t, pieces, strings.Count(string(b), "piece "))
		assert.Greater(t, time.Since(start), idle, "the whole body took longer than the idle bound")
		assert.Empty(t, w.record().Reason)
	})
	t.Run("slow client", func(t *testing.T) {
		// More than the socket buffers of both connections hold, so that
		// the gateway waits on the client, not on upstream.
		const size = 16 << 20
		o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", fmt.Sprint(size))
			io.CopyN(w, zeros{}, size)
		})
		w := newWorld(t, &Gateway{BodyIdleTimeout: 200 * time.Millisecond}, nil)
		c, br := w.raw("GET " + o.URL + "/ HTTP/1.1\r\nHost: " + o.host() + "\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		require.NoError(t, err)
		<-time.After(time.Second) // the client reads nothing for five idle bounds
		c.SetReadDeadline(time.Now().Add(sockstest.Timeout))
		n, err := io.Copy(io.Discard, resp.Body)
		require.NoError(t, err)
		assert.Equal(t, int64(size), n)
		rec := w.record()
		assert.Empty(t, rec.Reason)
		assert.NoError(t, rec.Err)
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// A response cut short is not stored: the next request for it goes to
// the origin again.
func TestStalledBodyNotCached(t *testing.T) {
	stall := make(chan struct{})
	var served atomic.Int64
	o := sockstest.Serve(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			head := "HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: 10\r\n\r\n"
			if served.Add(1) == 1 {
				io.WriteString(c, head+"01234")
				select {
				case <-stall:
				case <-time.After(sockstest.Timeout):
				}
				return
			}
			io.WriteString(c, head+"0123456789")
		}
	})
	t.Cleanup(func() { close(stall) })
	w := newWorld(t, &Gateway{Cache: NewCache(1 << 20), BodyIdleTimeout: 200 * time.Millisecond}, nil)
	url := "http://" + o.String() + "/c"
	_, err := io.ReadAll(get(t, w, url).Body)
	assert.Error(t, err, "the first response is cut short")
	assert.Contains(t, w.recordWhere(func(r *Record) bool { return r.Reason != "" }).Reason, "response cut short")

	resp := get(t, w, url)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(b))
	assert.Equal(t, int64(2), served.Load(), "the cut response was not stored")
	rec := w.recordWhere(func(r *Record) bool { return r.Reason == "" && r.Status == 200 })
	assert.Equal(t, CacheMiss, rec.Cache)
}

// get asks the gateway, as an HTTP proxy, for url on a connection of its
// own.
func get(t *testing.T, w *world, url string) *http.Response {
	t.Helper()
	c := w.client()
	resp, err := c.Get(url)
	require.NoError(t, err)
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// A client that sends half a request body and then nothing holds neither
// the gateway nor the origin for longer than BodyIdleTimeout: it is
// answered 408 and its connection closed, and the origin sees the body
// end short.
func TestStalledRequestBodyCutOff(t *testing.T) {
	originErr := make(chan error, 1)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		originErr <- err
	})
	w := newWorld(t, &Gateway{BodyIdleTimeout: 200 * time.Millisecond}, nil)
	c, br := w.raw("POST " + o.URL + "/upload HTTP/1.1\r\nHost: " + o.host() + "\r\nContent-Length: 10\r\n\r\n01234")
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	assert.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	io.Copy(io.Discard, resp.Body)
	c.SetReadDeadline(time.Now().Add(sockstest.Timeout))
	_, err = br.ReadByte()
	assert.ErrorIs(t, err, io.EOF, "the client's connection is closed")

	rec := w.record()
	assert.Equal(t, http.StatusRequestTimeout, rec.Status)
	assert.Contains(t, rec.Reason, "the client sent nothing of the request body for 200ms")
	assert.Equal(t, int64(5), rec.BytesUp)
	select {
	case err := <-originErr:
		assert.Error(t, err, "the origin's request body ended short")
	case <-time.After(sockstest.Timeout):
		t.Fatal("the origin is still waiting for the body")
	}
}
