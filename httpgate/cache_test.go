package httpgate

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// get fetches url through the world's gateway as a forward proxy, with
// header lines, and returns the response with its body read.
func (w *world) get(url string, header ...string) (*http.Response, string) {
	w.t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	require.NoError(w.t, err)
	for i := 0; i < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := w.client().Do(req)
	require.NoError(w.t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(w.t, err)
	resp.Body.Close()
	return resp, string(b)
}

func TestCacheHitWithoutOrigin(t *testing.T) {
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "version %d", n.Add(1))
	})
	w := newWorld(t, &Gateway{Cache: NewCache(1 << 20)}, nil)
	resp, body := w.get(o.URL + "/a")
	assert.Equal(t, "version 1", body)
	assert.Equal(t, CacheMiss, w.record().Cache)
	resp, body = w.get(o.URL + "/a")
	assert.Equal(t, "version 1", body)
	assert.Equal(t, "0", resp.Header.Get("Age"))
	assert.Equal(t, CacheHit, w.record().Cache)
	assert.Equal(t, int64(1), o.requests.Load(), "a fresh hit does not reach the origin")
	_, body = w.get(o.URL + "/a?other")
	assert.Equal(t, "version 2", body, "another query is another key")
}

func TestCacheRevalidates(t *testing.T) {
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.Header().Set("Cache-Control", "max-age=0")
		w.Header().Set("ETag", `"v1"`)
		w.Header().Set("X-Count", fmt.Sprint(n.Load()))
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		io.WriteString(w, "body v1")
	})
	w := newWorld(t, &Gateway{Cache: NewCache(1 << 20)}, nil)
	_, body := w.get(o.URL + "/r")
	assert.Equal(t, "body v1", body)
	w.record()
	resp, body := w.get(o.URL + "/r")
	assert.Equal(t, "body v1", body, "the stored body, validated by a 304")
	assert.Equal(t, "2", resp.Header.Get("X-Count"), "a 304 refreshes the stored fields")
	assert.Equal(t, CacheRevalidated, w.record().Cache)
	assert.Equal(t, `"v1"`, o.last.Load().Header.Get("If-None-Match"))

	// The client's own conditional is answered from the validated entry.
	resp, _ = w.get(o.URL+"/r", "If-None-Match", `"v1"`)
	assert.Equal(t, http.StatusNotModified, resp.StatusCode)
	assert.Equal(t, `"v1"`, resp.Header.Get("ETag"))
}

func TestCacheVaryAndInvalidation(t *testing.T) {
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			w.Header().Set("Location", "/other")
			w.WriteHeader(http.StatusCreated)
			return
		}
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("Vary", "Accept-Language")
		fmt.Fprintf(w, "%s %d", r.Header.Get("Accept-Language"), n.Add(1))
	})
	w := newWorld(t, &Gateway{Cache: NewCache(1 << 20)}, nil)
	_, en := w.get(o.URL+"/v", "Accept-Language", "en")
	_, fr := w.get(o.URL+"/v", "Accept-Language", "fr")
	_, en2 := w.get(o.URL+"/v", "Accept-Language", "en")
	_, fr2 := w.get(o.URL+"/v", "Accept-Language", "fr")
	assert.Equal(t, "en 1", en)
	assert.Equal(t, "fr 2", fr)
	assert.Equal(t, en, en2)
	assert.Equal(t, fr, fr2)
	_, other := w.get(o.URL+"/other", "Accept-Language", "en")

	resp, err := w.client().Post(o.URL+"/v", "text/plain", strings.NewReader("x"))
	require.NoError(t, err)
	resp.Body.Close()
	_, en3 := w.get(o.URL+"/v", "Accept-Language", "en")
	assert.NotEqual(t, en, en3, "a POST invalidates its target")
	_, other2 := w.get(o.URL+"/other", "Accept-Language", "en")
	assert.NotEqual(t, other, other2, "and the URL its Location names")
}

// The cache key of a tapped request has the SOCKS target in it: a client
// that names another site in Host cannot place or read that site's
// entries; and a hit through the tap opens no connection to the origin.
func TestCacheTappedKey(t *testing.T) {
	site := func(name string) *origin {
		return newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=60")
			fmt.Fprintf(w, "%s for host %s", name, r.Host)
		})
	}
	good, evil := site("good"), site("evil")
	w := newWorld(t, &Gateway{Cache: NewCache(1 << 20)}, nil)
	fetch := func(target, host string) string {
		d, err := dialer.Parse("socks5h://" + w.addr)
		require.NoError(t, err)
		c, err := d.DialContext(context.Background(), "tcp", target)
		require.NoError(t, err)
		defer c.Close()
		c.SetDeadline(time.Now().Add(sockstest.Timeout))
		fmt.Fprintf(c, "GET /page HTTP/1.1\r\nHost: %s\r\n\r\n", host)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// The evil origin, asked for with the good site's name, stores its
	// page under its own address only.
	assert.Equal(t, "evil for host good.example", fetch(evil.host(), "good.example"))
	assert.Equal(t, "good for host good.example", fetch(good.host(), "good.example"))
	assert.Equal(t, "good for host good.example", fetch(good.host(), "good.example"))
	assert.Equal(t, int64(1), good.requests.Load())
	assert.Equal(t, int64(1), good.conns.Load(), "the hit opened no connection")
}

func TestMemoryStoreLRU(t *testing.T) {
	s := NewMemoryStore(3000)
	entry := func(n int) []*Entry { return []*Entry{{Status: 200, Body: make([]byte, n)}} }
	s.Set("a", entry(900))
	s.Set("b", entry(900))
	s.Set("c", entry(900))
	require.NotNil(t, s.Get("a")) // a is now the most recently used
	s.Set("d", entry(900))
	assert.Nil(t, s.Get("b"), "the least recently used goes first")
	assert.NotNil(t, s.Get("a"))
	assert.NotNil(t, s.Get("c"))
	assert.NotNil(t, s.Get("d"))
	keys, size := s.Len()
	assert.Equal(t, 3, keys)
	assert.LessOrEqual(t, size, int64(3000))
	s.Set("huge", entry(5000))
	assert.Nil(t, s.Get("huge"), "an entry larger than the store is not stored")
	s.Set("a", nil)
	assert.Nil(t, s.Get("a"))
}

func TestCacheBodyTooLarge(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, strings.Repeat("z", 4096))
	})
	c := NewCache(1 << 20)
	c.MaxEntryBytes = 1024
	w := newWorld(t, &Gateway{Cache: c}, nil)
	for range 2 {
		_, body := w.get(o.URL + "/big")
		assert.Len(t, body, 4096)
	}
	assert.Equal(t, int64(2), o.requests.Load(), "a body over MaxEntryBytes is passed on, not stored")
}

// decodingStore keeps its entries as a store outside the process would:
// Get hands back new Entries made of the stored fields alone.
type decodingStore struct{ s *MemoryStore }

func (d decodingStore) Get(key string) []*Entry {
	var out []*Entry
	for _, e := range d.s.Get(key) {
		out = append(out, &Entry{Status: e.Status, Header: e.Header.Clone(), Body: bytes.Clone(e.Body),
			Selecting: e.Selecting.Clone(), RequestTime: e.RequestTime, ResponseTime: e.ResponseTime})
	}
	return out
}

func (d decodingStore) Set(key string, variants []*Entry) { d.s.Set(key, variants) }

// A hit answers with the stored fields, its Age as the clock says, its own
// Via entry added once (the stored response's fields are shared by every
// hit, and not changed by one), and the stored body's length; the same
// from an Entry the cache did not make, which it works out on use.
func TestCacheHitFields(t *testing.T) {
	for _, tc := range []struct {
		name  string
		store func() Store
	}{
		{"memory", func() Store { return NewMemoryStore(1 << 20) }},
		{"decoding", func() Store { return decodingStore{NewMemoryStore(1 << 20)} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Cache-Control", "max-age=60")
				w.Header().Set("Via", "1.1 upstream-cache")
				w.Header().Set("X-Multi", "a")
				w.Header().Add("X-Multi", "b")
				w.Header().Set("Transfer-Encoding", "chunked") // no Content-Length from the origin
				w.(http.Flusher).Flush()
				io.WriteString(w, "seven b")
			})
			var now atomic.Int64
			now.Store(time.Now().Unix())
			c := &Cache{Store: tc.store()}
			c.now = func() time.Time { return time.Unix(now.Load(), 0) }
			w := newWorld(t, &Gateway{Cache: c, Via: "gw-test"}, nil)
			_, body := w.get(o.URL + "/f")
			require.Equal(t, "seven b", body)
			assert.Equal(t, CacheMiss, w.record().Cache)
			var age int64
			for i, later := range []int64{10, 0, 5} {
				now.Add(later)
				age += later
				resp, body := w.get(o.URL + "/f")
				assert.Equal(t, "seven b", body)
				assert.Equal(t, CacheHit, w.record().Cache, "hit %d", i)
				assert.Equal(t, []string{"1.1 upstream-cache", "1.1 gw-test"}, resp.Header.Values("Via"), "hit %d", i)
				assert.Equal(t, []string{"a", "b"}, resp.Header.Values("X-Multi"), "hit %d", i)
				assert.Equal(t, int64(7), resp.ContentLength, "hit %d", i)
				assert.Equal(t, strconv.FormatInt(age, 10), resp.Header.Get("Age"), "hit %d", i)
			}
			now.Add(60) // stale: the origin is asked again
			_, body = w.get(o.URL + "/f")
			assert.Equal(t, "seven b", body)
			assert.Equal(t, CacheMiss, w.record().Cache)
			assert.Equal(t, int64(2), o.requests.Load())
		})
	}
}
