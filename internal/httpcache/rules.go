// Package httpcache holds the rules of a shared HTTP cache, as RFC 9111
// states them: which responses may be stored (section 3), how long they
// stay fresh (4.2), how old they are (4.2.3), which stored response a
// request may reuse (4), how a 304 freshens one (4.3.4), and what the
// Cache-Control directives mean (5.2). It decides; it stores nothing and
// sends nothing: package httpgate does.
package httpcache

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxDelta is the greatest delta-seconds value: RFC 9111, section 1.2.2,
// "the cache MUST consider the value to be 2147483648 (2^31)" when a
// received one is greater or a calculation overflows.
const MaxDelta = 1 << 31

// Directives is a parsed Cache-Control field (RFC 9111, section 5.2).
// Directive names are compared without regard to case; when a directive
// appears more than once, its first occurrence counts (section 4.2.1).
type Directives map[string]string

// ParseCacheControl parses the lines of a Cache-Control field: a list of
// directives, each a token with an optional "=" and a token or a
// quoted-string value. A comma inside a quoted string does not end a
// directive, so that a directive named there is not one.
// A field with no directives, or none at all, is a nil Directives, which
// reads as empty.
func ParseCacheControl(lines []string) Directives {
	var d Directives
	for _, line := range lines {
		for len(line) > 0 {
			var item string
			item, line = nextItem(line)
			name, value, hasValue := strings.Cut(item, "=")
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" || strings.ContainsAny(name, " \t\"") {
				continue
			}
			if _, seen := d[name]; seen {
				continue
			}
			if d == nil {
				d = Directives{}
			}
			value = strings.TrimSpace(value)
			if hasValue && len(value) >= 2 && value[0] == '"' && value[len(value)-1] == '"' {
				value = unquote(value)
			} else if hasValue && value == "" {
				value = "\x00" // "name=" with no value: present, and no number
			}
			d[name] = value
		}
	}
	return d
}

// nextItem splits s at its first comma outside a quoted string.
func nextItem(s string) (item, rest string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == ',' && !quoted:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func unquote(q string) string {
	q = q[1 : len(q)-1]
	var b strings.Builder
	for i := 0; i < len(q); i++ {
		if q[i] == '\\' && i+1 < len(q) {
			i++
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// Has reports whether the directive is present.
func (d Directives) Has(name string) bool {
	_, ok := d[name]
	return ok
}

// Seconds returns the delta-seconds value of a directive (RFC 9111,
// section 1.2.2): ok is false when the directive is absent, and valid
// false when its value is not a run of digits, which makes a max-age or an
// s-maxage say "stale". A value past MaxDelta is MaxDelta.
func (d Directives) Seconds(name string) (secs int64, ok, valid bool) {
	v, ok := d[name]
	if !ok {
		return 0, false, false
	}
	n, valid := parseDelta(v)
	return n, true, valid
}

// Fields returns the field names a qualified directive lists, such as
// private="Set-Cookie, X-A"; none for an unqualified one.
func (d Directives) Fields(name string) []string {
	var fields []string
	for f := range strings.SplitSeq(d[name], ",") {
		if f = strings.TrimSpace(f); f != "" && f != "\x00" {
			fields = append(fields, http.CanonicalHeaderKey(f))
		}
	}
	return fields
}

// parseDelta reads delta-seconds: 1*DIGIT.
func parseDelta(v string) (int64, bool) {
	if v == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < MaxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, MaxDelta), true
}

// understood are the status codes whose meaning the cache knows (RFC 9110,
// section 15): what must-understand asks of it (RFC 9111, section 5.2.2.3).
var understood = map[int]bool{
	200: true, 201: true, 202: true, 203: true, 204: true, 205: true, 206: true,
	300: true, 301: true, 302: true, 303: true, 304: true, 305: true, 307: true, 308: true,
	400: true, 401: true, 402: true, 403: true, 404: true, 405: true, 406: true, 407: true,
	408: true, 409: true, 410: true, 411: true, 412: true, 413: true, 414: true, 415: true,
	416: true, 417: true, 421: true, 422: true, 426: true, 428: true, 429: true, 431: true, 451: true,
	500: true, 501: true, 502: true, 503: true, 504: true, 505: true, 511: true,
}

// HeuristicallyCacheable reports whether a status code is "heuristically
// cacheable" (RFC 9110, section 15.1): 200, 203, 204, 206, 300, 301, 308,
// 404, 405, 410, 414 and 501.
func HeuristicallyCacheable(status int) bool {
	switch status {
	case 200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// Storable reports whether a shared cache may store the response to a
// request (RFC 9111, section 3), for the methods this cache stores (GET).
// A response with Vary: * is never stored: no request can match it.
func Storable(method string, req http.Header, status int, resp http.Header) bool {
	if method != http.MethodGet {
		return false
	}
	rcc := ParseCacheControl(resp["Cache-Control"])
	qcc := ParseCacheControl(req["Cache-Control"])
	// "the response status code is final" and, for 206 and 304, or with
	// must-understand, understood. This cache stores no partial content.
	if status < 200 || status == http.StatusPartialContent || status == http.StatusNotModified {
		return false
	}
	if rcc.Has("must-understand") {
		if !understood[status] {
			return false
		}
	} else if rcc.Has("no-store") {
		// "the no-store cache directive is not present in the response"
		// (must-understand overrides it, section 5.2.2.3).
		return false
	}
	if qcc.Has("no-store") {
		return false
	}
	// "if the cache is shared: the private response directive is either
	// not present or allows a shared cache to store a modified response"
	if rcc.Has("private") && len(rcc.Fields("private")) == 0 {
		return false
	}
	// "if the cache is shared: the Authorization header field is not
	// present in the request or a response directive is present that
	// explicitly allows shared caching" (section 3.5).
	if _, ok := req["Authorization"]; ok &&
		!rcc.Has("must-revalidate") && !rcc.Has("public") && !rcc.Has("s-maxage") {
		return false
	}
	if VaryStar(resp) {
		return false
	}
	// "the response contains at least one of: a public response
	// directive; ... an Expires header field; a max-age response
	// directive; if the cache is shared: an s-maxage response directive;
	// ... a status code that is defined as heuristically cacheable."
	_, hasExpires := resp["Expires"]
	return rcc.Has("public") || hasExpires || rcc.Has("max-age") || rcc.Has("s-maxage") ||
		HeuristicallyCacheable(status)
}

// StripPrivate removes from a response's fields those that a qualified
// private directive names, which a shared cache must not store (RFC 9111,
// section 5.2.2.7).
func StripPrivate(resp http.Header) {
	for _, f := range ParseCacheControl(resp["Cache-Control"]).Fields("private") {
		delete(resp, f)
	}
}

// VaryStar reports whether a response's Vary lists "*": it varies on
// something no request shows (RFC 9111, section 4.1).
func VaryStar(resp http.Header) bool {
	for _, f := range varyFields(resp) {
		if f == "*" {
			return true
		}
	}
	return false
}

func varyFields(resp http.Header) []string {
	var fields []string
	for _, line := range resp["Vary"] {
		for f := range strings.SplitSeq(line, ",") {
			if f = strings.TrimSpace(f); f != "" {
				fields = append(fields, http.CanonicalHeaderKey(f))
			}
		}
	}
	return fields
}

// VaryKey returns the request's values of the fields that a response's
// Vary names, for storing beside the response: the stored request's
// "selecting header fields" (RFC 9111, section 4.1).
func VaryKey(req, resp http.Header) http.Header {
	fields := varyFields(resp)
	if len(fields) == 0 {
		return nil
	}
	k := http.Header{}
	for _, f := range fields {
		if v, ok := req[f]; ok {
			k[f] = v
		}
	}
	return k
}

// VaryMatches reports whether a request may reuse a stored response whose
// fields are resp and whose request's selecting fields were stored: every
// field the response's Vary names has the same value in both, or is absent
// from both (RFC 9111, section 4.1). Values are compared after joining a
// field's lines and removing the blanks around its list's commas.
func VaryMatches(req, resp, stored http.Header) bool {
	for _, f := range varyFields(resp) {
		if f == "*" {
			return false
		}
		a, inReq := req[f]
		b, inStored := stored[f]
		if inReq != inStored || normalized(a) != normalized(b) {
			return false
		}
	}
	return true
}

func normalized(lines []string) string {
	var parts []string
	for _, l := range lines {
		for p := range strings.SplitSeq(l, ",") {
			parts = append(parts, strings.TrimSpace(p))
		}
	}
	return strings.Join(parts, ",")
}

// FreshnessLifetime returns how long a response stays fresh in a shared
// cache (RFC 9111, section 4.2.1): s-maxage, else max-age, else Expires
// minus Date, else a heuristic; received is when the response arrived,
// for a response with no Date. heuristic reports that the lifetime is a
// guess (section 4.2.2): a tenth of the time since Last-Modified, at most
// a day, for a heuristically cacheable status or a public response.
func FreshnessLifetime(status int, resp http.Header, received time.Time) (lifetime time.Duration, heuristic bool) {
	cc := ParseCacheControl(resp["Cache-Control"])
	for _, name := range []string{"s-maxage", "max-age"} {
		if secs, ok, valid := cc.Seconds(name); ok {
			if !valid {
				return 0, false // an invalid value: stale (section 4.2.1)
			}
			return seconds(secs), false
		}
	}
	date := dateOf(resp, received)
	if exp, ok := resp["Expires"]; ok {
		// "A cache recipient MUST interpret invalid date formats,
		// especially the value "0", as representing a time in the past."
		if len(exp) != 1 {
			return 0, false
		}
		t, err := http.ParseTime(exp[0])
		if err != nil || !t.After(date) {
			return 0, false
		}
		return t.Sub(date), false
	}
	if !HeuristicallyCacheable(status) && !cc.Has("public") {
		return 0, false
	}
	lm, err := http.ParseTime(resp.Get("Last-Modified"))
	if err != nil || !lm.Before(date) {
		return 0, false
	}
	return min(date.Sub(lm)/10, 24*time.Hour), true
}

func seconds(s int64) time.Duration { return time.Duration(s) * time.Second }

// dateOf is a response's Date, or received when it has none or an invalid
// one.
func dateOf(resp http.Header, received time.Time) time.Time {
	if d, err := http.ParseTime(resp.Get("Date")); err == nil {
		return d
	}
	return received
}

// AgeValue returns a response's Age (RFC 9111, section 5.1): ok is false
// when it has none. A field that is not one non-negative integer is
// invalid; the cache counts such a response as older than anything
// (MaxDelta seconds), so it is never served without validation.
func AgeValue(resp http.Header) (age time.Duration, ok bool) {
	lines, ok := resp["Age"]
	if !ok {
		return 0, false
	}
	if len(lines) != 1 {
		return seconds(MaxDelta), true
	}
	n, valid := parseDelta(strings.TrimSpace(lines[0]))
	if !valid {
		return seconds(MaxDelta), true
	}
	return seconds(n), true
}

// CurrentAge is RFC 9111's age calculation (section 4.2.3) for a response
// requested at requestTime and received at responseTime, at now:
//
//	apparent_age = max(0, response_time - date_value);
//	response_delay = response_time - request_time;
//	corrected_age_value = age_value + response_delay;
//	corrected_initial_age = max(apparent_age, corrected_age_value);
//	resident_time = now - response_time;
//	current_age = corrected_initial_age + resident_time;
func CurrentAge(resp http.Header, requestTime, responseTime, now time.Time) time.Duration {
	return addSat(initialAge(resp, requestTime, responseTime), now.Sub(responseTime))
}

// initialAge is CurrentAge's corrected_initial_age: the response's age
// when it was received.
func initialAge(resp http.Header, requestTime, responseTime time.Time) time.Duration {
	apparent := max(0, responseTime.Sub(dateOf(resp, responseTime)))
	ageValue, _ := AgeValue(resp)
	corrected := addSat(ageValue, responseTime.Sub(requestTime))
	return max(apparent, corrected)
}

func addSat(a, b time.Duration) time.Duration {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Reuse says whether a stored response can answer a request.
type Reuse int

// The answers of [CanReuse].
const (
	ReuseFresh    Reuse = iota // serve it: fresh, and nothing asks for validation
	ReuseValidate              // ask the origin first (conditional request)
	ReuseNo                    // do not use it
)

// CanReuse decides whether a stored response (status, fields resp,
// current age) can answer a request with fields req, without contacting
// the origin (RFC 9111, section 4): it must be fresh (4.2) for as long as
// the request asks (max-age, min-fresh: 5.2.1), and neither it nor the
// request may demand validation (no-cache, 5.2.1.4 and 5.2.2.4). A stale
// response is never served stale: it is validated (the cache does not use
// the leave of section 4.2.4).
func CanReuse(status int, resp http.Header, age, lifetime time.Duration, req http.Header) Reuse {
	return canReuse(ParseCacheControl(resp["Cache-Control"]).Has("no-cache"), age, lifetime, req)
}

// canReuse is CanReuse for a response whose Cache-Control has no-cache or
// not.
func canReuse(noCache bool, age, lifetime time.Duration, req http.Header) Reuse {
	qcc := ParseCacheControl(req["Cache-Control"])
	if noCache || qcc.Has("no-cache") {
		return ReuseValidate
	}
	if age >= lifetime {
		return ReuseValidate
	}
	if secs, ok, valid := qcc.Seconds("max-age"); ok && (!valid || age > seconds(secs)) {
		return ReuseValidate
	}
	if secs, ok, valid := qcc.Seconds("min-fresh"); ok && valid && lifetime-age < seconds(secs) {
		return ReuseValidate
	}
	return ReuseFresh
}

// Stored is what the age and freshness calculations need of a stored
// response, worked out once, when the response is stored: a later request
// that it answers parses none of its fields again.
type Stored struct {
	// InitialAge is the response's age when it was received: RFC 9111's
	// corrected_initial_age (section 4.2.3).
	InitialAge time.Duration
	// ResponseTime is when it was received.
	ResponseTime time.Time
	// Lifetime is its freshness lifetime (section 4.2.1).
	Lifetime time.Duration
	// NoCache is its no-cache directive: it must be validated before any
	// reuse (section 5.2.2.4).
	NoCache bool
}

// NewStored works out what the rules need of a response with status and
// fields resp, requested at requestTime and received at responseTime,
// as [CurrentAge], [FreshnessLifetime] and [CanReuse] do.
func NewStored(status int, resp http.Header, requestTime, responseTime time.Time) Stored {
	lifetime, _ := FreshnessLifetime(status, resp, responseTime)
	return Stored{
		InitialAge:   initialAge(resp, requestTime, responseTime),
		ResponseTime: responseTime,
		Lifetime:     lifetime,
		NoCache:      ParseCacheControl(resp["Cache-Control"]).Has("no-cache"),
	}
}

// Age is the response's current_age at now (section 4.2.3).
func (s *Stored) Age(now time.Time) time.Duration {
	return addSat(s.InitialAge, now.Sub(s.ResponseTime))
}

// Reuse decides, as CanReuse does, whether the response, as old as age,
// can answer a request with fields req without contacting the origin.
func (s *Stored) Reuse(age time.Duration, req http.Header) Reuse {
	return canReuse(s.NoCache, age, s.Lifetime, req)
}

// notUpdated are the fields a 304 does not change in the stored response
// it freshens: the framing, and the fields that describe the stored
// representation itself (RFC 9111, section 3.2; RFC 9110, section 8.8 for
// the validators).
var notUpdated = map[string]bool{
	"Content-Length":    true,
	"Content-Encoding":  true,
	"Content-Range":     true,
	"Content-Md5":       true,
	"Etag":              true,
	"Transfer-Encoding": true,
}

// Freshen updates a stored response's fields with those of a 304 that
// validated it (RFC 9111, sections 3.2 and 4.3.4): each field the 304 has
// replaces the stored one, but for those that describe the stored
// representation. It returns a new header; stored is not changed.
func Freshen(stored, notModified http.Header) http.Header {
	h := stored.Clone()
	for k, v := range notModified {
		if notUpdated[k] {
			continue
		}
		h[k] = v
	}
	return h
}

// MayServeStale reports whether a stale stored response may answer a
// request while the origin cannot be reached (RFC 9111, section 4.2.4: a
// cache "disconnected"): not when the response says must-revalidate,
// proxy-revalidate, s-maxage (section 5.2.2) or no-cache, nor when the
// request says no-cache or max-age=0, which ask for a response validated
// now.
func MayServeStale(resp, req http.Header) bool {
	rcc := ParseCacheControl(resp["Cache-Control"])
	for _, d := range []string{"must-revalidate", "proxy-revalidate", "s-maxage", "no-cache", "no-store"} {
		if rcc.Has(d) {
			return false
		}
	}
	qcc := ParseCacheControl(req["Cache-Control"])
	if qcc.Has("no-cache") {
		return false
	}
	if secs, ok, _ := qcc.Seconds("max-age"); ok && secs == 0 {
		return false
	}
	return true
}

// Unsafe reports whether a method is unsafe (RFC 9110, section 9.2.1):
// every method but GET, HEAD, OPTIONS and TRACE; a successful response to
// one invalidates what the cache stored for its target (RFC 9111, section
// 4.4).
func Unsafe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return false
	}
	return true
}

// NotModified reports whether a request's conditionals are satisfied by a
// stored response, so that the cache answers 304 (RFC 9110, section 13.2.2;
// RFC 9111, section 4.3.2): If-None-Match, when present, decides, by weak
// comparison; otherwise If-Modified-Since, against Last-Modified.
func NotModified(req, stored http.Header) bool {
	if inm, ok := req["If-None-Match"]; ok {
		etag := stored.Get("Etag")
		for _, line := range inm {
			for t := range strings.SplitSeq(line, ",") {
				t = strings.TrimSpace(t)
				if t == "*" && etag != "" || etag != "" && weakEqual(t, etag) {
					return true
				}
			}
		}
		return false
	}
	ims, err := http.ParseTime(req.Get("If-Modified-Since"))
	if err != nil {
		return false
	}
	lm, err := http.ParseTime(stored.Get("Last-Modified"))
	return err == nil && !lm.After(ims)
}

func weakEqual(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}

// Conditional reports whether a request carries a conditional that a
// cache evaluates: If-None-Match or If-Modified-Since.
func Conditional(req http.Header) bool {
	_, inm := req["If-None-Match"]
	_, ims := req["If-Modified-Since"]
	return inm || ims
}

// FormatAge formats an age for the Age field: whole seconds.
func FormatAge(age time.Duration) string {
	return strconv.FormatInt(min(int64(age/time.Second), MaxDelta), 10)
}
