package httpgate

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/sockstap/sockstap/internal/httpcache"
)

// Cache is a shared HTTP cache (RFC 9111) in front of the gateway's
// upstream: it stores the responses to GET that a shared cache may store,
// answers from them while they are fresh without contacting the origin at
// all (for a tapped SOCKS stream, nothing is dialed), revalidates them
// with their validators (ETag, Last-Modified) when they are stale, and
// invalidates them after an unsafe request. A stale response is never
// served without validation. See package internal/httpcache for the rules
// themselves.
//
// The key of a stored response is its absolute URL; for a request on a
// tapped stream, the URL (built from the Host field) and the SOCKS target
// the request went to, so that a client lying in Host cannot place or
// read entries for another site.
type Cache struct {
	// Store holds the responses. NewCache sets a MemoryStore.
	Store Store

	// MaxEntryBytes bounds a stored body; a larger response is passed on
	// and not stored. Zero means 8 MiB.
	MaxEntryBytes int64

	now func() time.Time // for tests
}

// DefaultMaxEntryBytes is the largest body stored when Cache.MaxEntryBytes is zero.
const DefaultMaxEntryBytes = 8 << 20

// NewCache returns a cache in memory of at most maxBytes.
func NewCache(maxBytes int64) *Cache {
	return &Cache{Store: NewMemoryStore(maxBytes), MaxEntryBytes: min(DefaultMaxEntryBytes, maxBytes)}
}

func (c *Cache) clock() time.Time {
	if c.now != nil {
		return c.now()
	}
	return time.Now()
}

func (c *Cache) maxEntry() int64 {
	if c.MaxEntryBytes > 0 {
		return c.MaxEntryBytes
	}
	return DefaultMaxEntryBytes
}

// key returns the key of the resource at rawURL for ex's client: scoped to
// the SOCKS target on a tapped stream.
func (ex *exchange) key(rawURL string) string {
	if ex.arrival == ArrivalProxy {
		return rawURL
	}
	return "socks " + ex.target + " " + rawURL
}

// serve serves ex's request through the cache.
func (c *Cache) serve(ex *exchange, ctx context.Context) {
	r := ex.r
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		c.passUnsafe(ex, ctx)
		return
	}
	ex.cache = CacheMiss
	key := ex.key(ex.url)
	variants := c.Store.Get(key)
	var stored *Entry
	for _, e := range variants {
		if httpcache.VaryMatches(r.Header, e.Header, e.Selecting) {
			stored = e
			break
		}
	}
	if stored != nil {
		fresh := &stored.worked().fresh
		age := fresh.Age(c.clock())
		if fresh.Reuse(age, r.Header) == httpcache.ReuseFresh {
			ex.cache = CacheHit
			c.answer(ex, stored, age)
			return
		}
	}
	if httpcache.ParseCacheControl(r.Header["Cache-Control"]).Has("only-if-cached") {
		ex.fail(http.StatusGatewayTimeout, "only-if-cached, and nothing fresh is stored", nil)
		return
	}
	out := ex.outgoing(ctx, false)
	validating := stored != nil && r.Method == http.MethodGet && hasValidator(stored.Header)
	if validating {
		// The cache asks about its own stored response; the client's
		// conditionals are answered from the result.
		out.Header.Del("If-None-Match")
		out.Header.Del("If-Modified-Since")
		if etag := stored.Header.Get("Etag"); etag != "" {
			out.Header.Set("If-None-Match", etag)
		}
		if lm := stored.Header.Get("Last-Modified"); lm != "" {
			out.Header.Set("If-Modified-Since", lm)
		}
	}
	sent := c.clock()
	resp, err := ex.roundTrip(out)
	if err != nil {
		if stored != nil && ex.r.Context().Err() == nil && !refusedByPolicy(err) && httpcache.MayServeStale(stored.Header, r.Header) {
			// The origin cannot be reached: a stale response, where
			// nothing forbids it (RFC 9111, section 4.2.4). A policy
			// that refused the address is not an origin out of reach.
			ex.cache = CacheStale
			ex.err = err
			c.answer(ex, stored, stored.worked().fresh.Age(c.clock()))
			return
		}
		ex.upstreamError(err)
		return
	}
	received := c.clock()
	if validating && resp.StatusCode == http.StatusNotModified {
		// The origin says the stored response it was asked about is
		// current (RFC 9111, section 4.3.4): freshen it and serve it.
		resp.Body.Close()
		removeHopHeaders(resp.Header)
		fresh := newEntry(stored.Status, httpcache.Freshen(stored.Header, resp.Header), stored.Selecting, sent, received, stored.Body)
		c.replace(key, variants, stored, fresh)
		ex.cache = CacheRevalidated
		c.answer(ex, fresh, fresh.worked().fresh.Age(received))
		return
	}
	var sink bodySink
	removeHopHeaders(resp.Header)
	if r.Method == http.MethodGet && len(resp.Trailer) == 0 &&
		httpcache.Storable(r.Method, r.Header, resp.StatusCode, resp.Header) &&
		resp.ContentLength <= c.maxEntry() {
		h := resp.Header.Clone()
		httpcache.StripPrivate(h)
		if _, ok := h["Date"]; !ok {
			h.Set("Date", received.UTC().Format(http.TimeFormat))
		}
		status, selecting := resp.StatusCode, httpcache.VaryKey(r.Header, resp.Header)
		sink = &entrySink{max: c.maxEntry(), done_: func(body []byte) {
			e := newEntry(status, h, selecting, sent, received, body)
			c.replace(key, c.Store.Get(key), stored, e)
		}}
	} else if stored != nil && resp.StatusCode < 500 && r.Method == http.MethodGet {
		// A newer response that is not stored supersedes the old one.
		c.replace(key, variants, stored, nil)
	}
	ex.respond(resp, sink)
}

func hasValidator(h http.Header) bool {
	return h.Get("Etag") != "" || h.Get("Last-Modified") != ""
}

// replace puts e in old's place among variants (or adds it, when old is
// not there), and stores them; a nil e removes old.
func (c *Cache) replace(key string, variants []*Entry, old, e *Entry) {
	const maxVariants = 8
	next := make([]*Entry, 0, len(variants)+1)
	if e != nil {
		next = append(next, e)
	}
	for _, v := range variants {
		if v == old || e != nil && sameVariant(v, e) {
			continue
		}
		if len(next) < maxVariants {
			next = append(next, v)
		}
	}
	c.Store.Set(key, next)
}

// sameVariant reports whether two entries are the same variant: they vary
// on the same fields, with the same values.
func sameVariant(a, b *Entry) bool {
	if a.Header.Get("Vary") != b.Header.Get("Vary") {
		return false
	}
	sel := a.Selecting
	if sel == nil {
		sel = http.Header{}
	}
	return httpcache.VaryMatches(sel, b.Header, b.Selecting)
}

// answer serves a stored response, as old as age: with its Age, or 304
// when the client's conditionals hold.
func (c *Cache) answer(ex *exchange, e *Entry, age time.Duration) {
	h := ex.w.Header()
	// The stored values go out as they are: nothing changes a field's
	// values in place, and those set here are slices of their own.
	for k, v := range e.Header {
		h[k] = v
	}
	h["Age"] = []string{httpcache.FormatAge(age)}
	ex.st.addVia(h, 1, 1)
	if e.Status == http.StatusOK && httpcache.Conditional(ex.r.Header) && httpcache.NotModified(ex.r.Header, e.Header) {
		ex.writeResponse(http.StatusNotModified, nil, nil, 0, false, nil, nil)
		return
	}
	if bodyAllowed(e.Status) {
		h["Content-Length"] = e.worked().length
	}
	ex.writeStored(e.Status, e.Body)
}

// passUnsafe forwards a request the cache does not serve, and after a
// successful unsafe one invalidates its target and the URLs its response's
// Location and Content-Location name on the same host (RFC 9111, section
// 4.4).
func (c *Cache) passUnsafe(ex *exchange, ctx context.Context) {
	out := ex.outgoing(ctx, false)
	resp, err := ex.roundTrip(out)
	if err != nil {
		ex.upstreamError(err)
		return
	}
	if httpcache.Unsafe(ex.r.Method) && resp.StatusCode >= 200 && resp.StatusCode < 400 {
		c.Store.Set(ex.key(ex.url), nil)
		base, err := url.Parse(ex.url)
		if err == nil {
			for _, f := range []string{"Location", "Content-Location"} {
				v := resp.Header.Get(f)
				if v == "" {
					continue
				}
				u, err := base.Parse(v)
				if err == nil && u.Host == base.Host && u.Scheme == base.Scheme {
					u.Fragment = ""
					c.Store.Set(ex.key(u.String()), nil)
				}
			}
		}
	}
	ex.respond(resp, nil)
}

// entrySink collects a body for storing, up to max bytes.
type entrySink struct {
	max   int64
	buf   bytes.Buffer
	over  bool
	done_ func(body []byte)
}

func (s *entrySink) Write(p []byte) (int, error) {
	if s.over {
		return len(p), nil
	}
	if int64(s.buf.Len()+len(p)) > s.max {
		s.over = true
		s.buf = bytes.Buffer{}
		return len(p), nil
	}
	return s.buf.Write(p)
}

func (s *entrySink) done(complete bool) {
	if complete && !s.over {
		s.done_(bytes.Clone(s.buf.Bytes()))
	}
}
