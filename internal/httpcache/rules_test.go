package httpcache

import (
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestParseCacheControl(t *testing.T) {
	d := ParseCacheControl([]string{`Max-Age=60, private="Set-Cookie, X-A", no-cache`, `max-age=5, ext="a,max-age=1"`})
	secs, ok, valid := d.Seconds("max-age")
	assert.True(t, ok && valid)
	assert.Equal(t, int64(60), secs, "the first occurrence counts (RFC 9111, 4.2.1)")
	assert.Equal(t, []string{"Set-Cookie", "X-A"}, d.Fields("private"))
	assert.True(t, d.Has("no-cache"))
	assert.False(t, d.Has(`a`), "a name inside a quoted string is not a directive")

	for _, tc := range []struct {
		v     string
		secs  int64
		valid bool
	}{
		{"max-age=003600", 3600, true},
		{"max-age='3600'", 0, false},
		{"max-age=-1", 0, false},
		{"max-age=1.5", 0, false},
		{"max-age=", 0, false},
		// "If a cache receives a delta-seconds value greater than the
		// greatest integer it can represent, or if any of its subsequent
		// calculations overflows, the cache MUST consider the value to be
		// 2147483648 (2^31)" (RFC 9111, 1.2.2).
		{"max-age=99999999999999999999999", MaxDelta, true},
	} {
		secs, ok, valid := ParseCacheControl([]string{tc.v}).Seconds("max-age")
		assert.True(t, ok, tc.v)
		assert.Equal(t, tc.valid, valid, tc.v)
		assert.Equal(t, tc.secs, secs, tc.v)
	}
}

// RFC 9111, section 3: "A cache MUST NOT store a response to a request
// unless: the request method is understood by the cache; the response
// status code is final; if the response status code is 206 or 304, or the
// must-understand cache directive is present: the cache understands the
// response status code; the no-store cache directive is not present in
// the response; if the cache is shared: the private response directive is
// either not present or allows a shared cache to store a modified
// response; if the cache is shared: the Authorization header field is not
// present in the request or a response directive is present that
// explicitly allows shared caching; and the response contains at least
// one of [public, private (not shared), Expires, max-age, s-maxage (shared),
// a cache extension that allows it, a heuristically cacheable status]."
func TestStorable(t *testing.T) {
	cases := []struct {
		name   string
		method string
		req    http.Header
		status int
		resp   http.Header
		want   bool
	}{
		{"max-age", "GET", nil, 200, hdr("Cache-Control", "max-age=60"), true},
		{"method not understood", "POST", nil, 200, hdr("Cache-Control", "max-age=60"), false},
		{"status not final", "GET", nil, 103, hdr("Cache-Control", "max-age=60"), false},
		{"206 not stored here", "GET", nil, 206, hdr("Cache-Control", "max-age=60"), false},
		{"304", "GET", nil, 304, hdr("Cache-Control", "max-age=60"), false},
		{"no-store", "GET", nil, 200, hdr("Cache-Control", "max-age=60, no-store"), false},
		{"no-store any case", "GET", nil, 200, hdr("Cache-Control", "nO-StOrE"), false},
		{"request no-store", "GET", hdr("Cache-Control", "no-store"), 200, hdr("Cache-Control", "max-age=60"), false},
		{"must-understand overrides no-store", "GET", nil, 200, hdr("Cache-Control", "max-age=60, no-store, must-understand"), true},
		{"must-understand, status not understood", "GET", nil, 599, hdr("Cache-Control", "max-age=60, must-understand"), false},
		{"private", "GET", nil, 200, hdr("Cache-Control", "max-age=60, private"), false},
		{"qualified private", "GET", nil, 200, hdr("Cache-Control", `max-age=60, private="Set-Cookie"`), true},
		{"authorization", "GET", hdr("Authorization", "Basic x"), 200, hdr("Cache-Control", "max-age=60"), false},
		{"authorization, public", "GET", hdr("Authorization", "Basic x"), 200, hdr("Cache-Control", "max-age=60, public"), true},
		{"authorization, s-maxage", "GET", hdr("Authorization", "Basic x"), 200, hdr("Cache-Control", "s-maxage=60"), true},
		{"authorization, must-revalidate", "GET", hdr("Authorization", "Basic x"), 200, hdr("Cache-Control", "max-age=60, must-revalidate"), true},
		{"heuristically cacheable status", "GET", nil, 404, hdr(), true},
		{"nothing allows it", "GET", nil, 201, hdr("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"), false},
		{"expires", "GET", nil, 201, hdr("Expires", "Mon, 01 Jan 2024 00:00:00 GMT"), true},
		{"explicit freshness, any final status", "GET", nil, 599, hdr("Cache-Control", "max-age=60"), true},
		{"vary star", "GET", nil, 200, hdr("Cache-Control", "max-age=60", "Vary", "Accept, *"), false},
	}
	for _, tc := range cases {
		req := tc.req
		if req == nil {
			req = http.Header{}
		}
		assert.Equal(t, tc.want, Storable(tc.method, req, tc.status, tc.resp), tc.name)
	}
}

// RFC 9111, section 4.2.1: "If the cache is shared and the s-maxage
// response directive is present, use its value, or if the max-age
// response directive is present, use its value, or if the Expires
// response header field is present, use its value minus the value of the
// Date response header field (using the time the message was received if
// it is not present), or otherwise, no explicit expiration time is
// present in the response. A heuristic freshness lifetime might be
// applicable."
func TestFreshnessLifetime(t *testing.T) {
	now := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	date := now.Format(http.TimeFormat)
	cases := []struct {
		name      string
		status    int
		resp      http.Header
		want      time.Duration
		heuristic bool
	}{
		{"s-maxage first", 200, hdr("Cache-Control", "max-age=600, s-maxage=60"), 60 * time.Second, false},
		{"max-age", 200, hdr("Cache-Control", "max-age=600", "Expires", now.Add(time.Hour).Format(http.TimeFormat)), 600 * time.Second, false},
		{"expires minus date", 200, hdr("Date", date, "Expires", now.Add(time.Hour).Format(http.TimeFormat)), time.Hour, false},
		{"expires, no date: time received", 200, hdr("Expires", now.Add(time.Hour).Format(http.TimeFormat)), time.Hour, false},
		// "A cache recipient MUST interpret invalid date formats,
		// especially the value "0", as representing a time in the past
		// (i.e., "already expired")." (5.3)
		{"invalid expires", 200, hdr("Date", date, "Expires", "0"), 0, false},
		{"invalid max-age is stale", 200, hdr("Cache-Control", "max-age=-1", "Expires", now.Add(time.Hour).Format(http.TimeFormat)), 0, false},
		{"heuristic: a tenth since Last-Modified", 200, hdr("Date", date, "Last-Modified", now.Add(-10*time.Hour).Format(http.TimeFormat)), time.Hour, true},
		{"no heuristic for 201", 201, hdr("Date", date, "Last-Modified", now.Add(-10*time.Hour).Format(http.TimeFormat)), 0, false},
		{"nothing", 200, hdr("Date", date), 0, false},
	}
	for _, tc := range cases {
		got, heuristic := FreshnessLifetime(tc.status, tc.resp, now)
		assert.Equal(t, tc.want, got, tc.name)
		assert.Equal(t, tc.heuristic, heuristic, tc.name)
	}
}

// RFC 9111, section 4.2.3's formulas, with a slow network and an old Age.
func TestCurrentAge(t *testing.T) {
	reqTime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	respTime := reqTime.Add(2 * time.Second) // response_delay = 2s
	now := respTime.Add(10 * time.Second)    // resident_time = 10s
	// apparent_age = max(0, response_time - date_value) = 5s;
	// corrected_age_value = age_value + response_delay = 30s + 2s.
	h := hdr("Date", respTime.Add(-5*time.Second).Format(http.TimeFormat), "Age", "30")
	assert.Equal(t, 42*time.Second, CurrentAge(h, reqTime, respTime, now))
	// A Date in the future counts for nothing.
	h = hdr("Date", respTime.Add(time.Hour).Format(http.TimeFormat))
	assert.Equal(t, 12*time.Second, CurrentAge(h, reqTime, respTime, now))
	for _, bad := range [][]string{{"abc"}, {"-7200"}, {"7200.0"}, {"0", "0"}, {"7200;foo=bar"}} {
		age, ok := AgeValue(http.Header{"Age": bad})
		assert.True(t, ok)
		assert.Equal(t, time.Duration(MaxDelta)*time.Second, age, "an invalid Age makes the response stale: %q", bad)
	}
}

func TestCanReuse(t *testing.T) {
	fresh := hdr("Cache-Control", "max-age=60")
	min := time.Minute
	assert.Equal(t, ReuseFresh, CanReuse(200, fresh, 10*time.Second, min, http.Header{}))
	assert.Equal(t, ReuseValidate, CanReuse(200, fresh, min, min, http.Header{}), "age reached the lifetime: stale")
	// "The no-cache response directive, in its unqualified form (without
	// an argument), indicates that the response MUST NOT be used to
	// satisfy any other request without forwarding it for validation and
	// receiving a successful response" (5.2.2.4).
	assert.Equal(t, ReuseValidate, CanReuse(200, hdr("Cache-Control", "max-age=60, no-cache"), 0, min, http.Header{}))
	assert.Equal(t, ReuseValidate, CanReuse(200, fresh, 0, min, hdr("Cache-Control", "no-cache")))
	assert.Equal(t, ReuseValidate, CanReuse(200, fresh, 20*time.Second, min, hdr("Cache-Control", "max-age=10")))
	assert.Equal(t, ReuseValidate, CanReuse(200, fresh, 20*time.Second, min, hdr("Cache-Control", "min-fresh=50")))
	assert.Equal(t, ReuseFresh, CanReuse(200, fresh, 20*time.Second, min, hdr("Cache-Control", "min-fresh=30")))
}

// What a stored response's fields say, worked out once when it is stored,
// gives the age, the lifetime and the decisions that working it out again
// on every use gives.
func TestStored(t *testing.T) {
	reqTime := time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	respTime := reqTime.Add(2 * time.Second)
	date := func(d time.Duration) string { return respTime.Add(d).Format(http.TimeFormat) }
	responses := []struct {
		name   string
		status int
		resp   http.Header
	}{
		{"max-age", 200, hdr("Cache-Control", "max-age=60", "Date", date(0))},
		{"s-maxage and an old Age", 200, hdr("Cache-Control", "max-age=600, s-maxage=100", "Date", date(-5*time.Second), "Age", "30")},
		{"no-cache", 200, hdr("Cache-Control", "max-age=60, no-cache", "Date", date(0))},
		{"qualified no-cache", 200, hdr("Cache-Control", `max-age=60, no-cache="Set-Cookie"`)},
		{"expires", 200, hdr("Date", date(0), "Expires", date(time.Hour))},
		{"heuristic", 404, hdr("Date", date(0), "Last-Modified", date(-100*time.Second))},
		{"invalid age", 200, hdr("Cache-Control", "max-age=60", "Age", "x")},
		{"date in the future", 200, hdr("Cache-Control", "max-age=60", "Date", date(time.Hour))},
		{"nothing", 200, hdr()},
	}
	requests := []http.Header{
		{},
		hdr("Cache-Control", "max-age=5"),
		hdr("Cache-Control", "min-fresh=50"),
		hdr("Cache-Control", "no-cache"),
	}
	for _, tc := range responses {
		s := NewStored(tc.status, tc.resp, reqTime, respTime)
		lifetime, _ := FreshnessLifetime(tc.status, tc.resp, respTime)
		assert.Equal(t, lifetime, s.Lifetime, tc.name)
		for _, later := range []time.Duration{0, 3 * time.Second, 40 * time.Second, 2 * time.Hour} {
			now := respTime.Add(later)
			age := CurrentAge(tc.resp, reqTime, respTime, now)
			assert.Equal(t, age, s.Age(now), "%s, %v later", tc.name, later)
			for _, req := range requests {
				assert.Equal(t, CanReuse(tc.status, tc.resp, age, lifetime, req), s.Reuse(age, req),
					"%s, %v later, request %v", tc.name, later, req)
			}
		}
	}
	// The decisions are not all the same: the table tells them apart.
	fresh := NewStored(200, hdr("Cache-Control", "max-age=60"), reqTime, respTime)
	assert.Equal(t, ReuseFresh, fresh.Reuse(fresh.Age(respTime.Add(time.Second)), http.Header{}))
	assert.Equal(t, ReuseValidate, fresh.Reuse(fresh.Age(respTime.Add(time.Minute)), http.Header{}))
}

func TestParseCacheControlNone(t *testing.T) {
	assert.Nil(t, ParseCacheControl(nil))
	assert.Nil(t, ParseCacheControl([]string{"", " , "}))
	assert.False(t, ParseCacheControl(nil).Has("no-cache"))
	_, ok, _ := ParseCacheControl(nil).Seconds("max-age")
	assert.False(t, ok)
}

func TestVary(t *testing.T) {
	resp := hdr("Vary", "Accept-Language, Foo")
	stored := VaryKey(hdr("Accept-Language", "en", "Other", "x"), resp)
	assert.Equal(t, http.Header{"Accept-Language": {"en"}}, stored)
	assert.True(t, VaryMatches(hdr("Accept-Language", "en"), resp, stored))
	assert.False(t, VaryMatches(hdr("Accept-Language", "fr"), resp, stored))
	assert.False(t, VaryMatches(hdr("Accept-Language", "en", "Foo", "1"), resp, stored), "the stored request omitted Foo")
	assert.False(t, VaryMatches(hdr(), resp, stored), "the presented request omits Accept-Language")
	assert.True(t, VaryMatches(hdr("Accept-Language", "en"), hdr(), nil), "no Vary")
	assert.True(t, VaryStar(hdr("Vary", ", *")))
	assert.True(t, VaryStar(http.Header{"Vary": {"Foo", "*"}}))
}

// RFC 9111, section 3.2: "the cache MUST add each header field in the
// provided response to the stored response, replacing field values that
// are already present", with exceptions.
func TestFreshen(t *testing.T) {
	stored := hdr("Etag", `"a"`, "Content-Length", "10", "X-Old", "1", "Cache-Control", "max-age=1")
	got := Freshen(stored, hdr("Etag", `"b"`, "Content-Length", "0", "X-New", "2", "Cache-Control", "max-age=60"))
	assert.Equal(t, `"a"`, got.Get("Etag"))
	assert.Equal(t, "10", got.Get("Content-Length"))
	assert.Equal(t, "1", got.Get("X-Old"))
	assert.Equal(t, "2", got.Get("X-New"))
	assert.Equal(t, "max-age=60", got.Get("Cache-Control"))
	assert.Equal(t, "max-age=1", stored.Get("Cache-Control"), "the stored header is not changed")
}

func TestNotModified(t *testing.T) {
	stored := hdr("Etag", `W/"v1"`, "Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")
	assert.True(t, NotModified(hdr("If-None-Match", `"x", "v1"`), stored), "weak comparison")
	assert.True(t, NotModified(hdr("If-None-Match", "*"), stored))
	assert.False(t, NotModified(hdr("If-None-Match", `"x"`, "If-Modified-Since", "Tue, 02 Jan 2024 00:00:00 GMT"), stored),
		"If-None-Match takes precedence over If-Modified-Since")
	assert.True(t, NotModified(hdr("If-Modified-Since", "Tue, 02 Jan 2024 00:00:00 GMT"), stored))
	assert.False(t, NotModified(hdr("If-Modified-Since", "Sun, 31 Dec 2023 00:00:00 GMT"), stored))
}

func TestMayServeStale(t *testing.T) {
	assert.True(t, MayServeStale(hdr("Cache-Control", "max-age=1"), http.Header{}))
	for _, d := range []string{"must-revalidate", "proxy-revalidate", "s-maxage=1", "no-cache"} {
		assert.False(t, MayServeStale(hdr("Cache-Control", "max-age=1, "+d), http.Header{}), d)
	}
	assert.False(t, MayServeStale(hdr("Cache-Control", "max-age=1"), hdr("Cache-Control", "max-age=0")))
}

func FuzzParseCacheControl(f *testing.F) {
	f.Add(`max-age=60, private="a, b", no-cache`)
	f.Add(`max-age="1\"", s-maxage=x,,`)
	f.Fuzz(func(t *testing.T, s string) {
		d := ParseCacheControl([]string{s})
		for name := range d {
			d.Seconds(name)
			d.Fields(name)
		}
	})
}
