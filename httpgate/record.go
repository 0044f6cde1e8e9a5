package httpgate

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/sockstap/sockstap/listener"
)

// Arrival is how a request reached the gateway.
type Arrival uint8

// The ways a request arrives.
const (
	ArrivalProxy   Arrival = iota + 1 // an absolute-form request to the gateway as an HTTP proxy
	ArrivalConnect                    // a CONNECT tunnel
	ArrivalSOCKS4                     // on a tapped SOCKS4 stream
	ArrivalSOCKS4a                    // on a tapped SOCKS4a stream
	ArrivalSOCKS5                     // on a tapped SOCKS5 stream
)

// String returns "http-proxy", "connect", "socks4", "socks4a" or "socks5".
func (a Arrival) String() string {
	switch a {
	case ArrivalProxy:
		return "http-proxy"
	case ArrivalConnect:
		return "connect"
	case ArrivalSOCKS4:
		return "socks4"
	case ArrivalSOCKS4a:
		return "socks4a"
	case ArrivalSOCKS5:
		return "socks5"
	}
	return "unknown"
}

// tapped reports whether a request that arrived so came on a tapped SOCKS
// stream.
func (a Arrival) tapped() bool {
	return a == ArrivalSOCKS4 || a == ArrivalSOCKS4a || a == ArrivalSOCKS5
}

// CacheResult is what the cache did for a request.
type CacheResult uint8

// The cache's results.
const (
	CacheNone        CacheResult = iota // the cache was not asked: none, or a request it does not serve
	CacheMiss                           // nothing stored could serve the request: it went to the origin
	CacheHit                            // served from the store, without contacting the origin
	CacheRevalidated                    // a stored response, validated by the origin (304) and served
	CacheStale                          // a stale stored response, served because the origin could not be reached
)

// String returns "none", "miss", "hit", "revalidated" or "stale".
func (c CacheResult) String() string {
	switch c {
	case CacheMiss:
		return "miss"
	case CacheHit:
		return "hit"
	case CacheRevalidated:
		return "revalidated"
	case CacheStale:
		return "stale"
	}
	return "none"
}

// Record is what the gateway did with one request: the access log's line,
// as a value. The gateway makes one for every request it serves as a
// proxy, whatever became of it (refused, failed, served from the cache, a
// tunnel), once the request is done; not for those it hands to Fallback,
// nor for those net/http refuses before they reach it (a malformed
// request line, a header over the Server's MaxHeaderBytes).
type Record struct {
	Client  net.Addr // the client's address
	User    string   // who the client authenticated as, by SOCKS or by HTTP; empty if nobody
	Arrival Arrival  // how the request arrived
	Method  string
	URL     string // the request's URL, absolute
	Target  string // where it was sent, host and port: the SOCKS target for a tapped stream
	Status  int    // the status sent to the client; 0 if none
	Cache   CacheResult

	// SOCKS is the request of the SOCKS session whose tapped stream the
	// request came on: the very value that the session's own record, a
	// listener.Record with DecisionTap, holds as its Request, so that a
	// program relates the requests to their session. Nil for a client of
	// the HTTP proxy (ArrivalProxy, ArrivalConnect).
	SOCKS *listener.Request

	// BytesUp counts the body bytes read from the client (for a tunnel,
	// every byte sent through it), BytesDown those sent to it. The
	// header sections are not counted.
	BytesUp, BytesDown int64

	Start    time.Time
	Duration time.Duration

	// Reason says why the gateway refused or failed the request, when it
	// did: a policy's or a filter's reason, a dial's failure.
	Reason string

	// Err is what cut the exchange short, if anything did.
	Err error
}

// LogValue returns the record as the attributes of its log line.
func (r *Record) LogValue() slog.Value {
	attrs := make([]slog.Attr, 0, 14)
	if r.Client != nil {
		attrs = append(attrs, slog.String("client", r.Client.String()))
	}
	attrs = append(attrs,
		slog.String("user", r.User),
		slog.String("arrival", r.Arrival.String()),
		slog.String("method", r.Method),
		slog.String("url", r.URL),
		slog.String("target", r.Target),
		slog.Int("status", r.Status),
		slog.String("cache", r.Cache.String()),
		slog.Int64("bytes_up", r.BytesUp),
		slog.Int64("bytes_down", r.BytesDown),
		slog.Duration("duration", r.Duration))
	if r.Reason != "" {
		attrs = append(attrs, slog.String("reason", r.Reason))
	}
	if r.Err != nil {
		attrs = append(attrs, slog.String("cause", r.Err.Error()))
	}
	return slog.GroupValue(attrs...)
}

// log writes the record with logger, at Info, or at Warn for a failure of
// the gateway's (5xx).
func (r *Record) log(logger *slog.Logger) {
	level := slog.LevelInfo
	if r.Status >= 500 {
		level = slog.LevelWarn
	}
	ctx := context.Background()
	if !logger.Enabled(ctx, level) {
		return
	}
	logger.LogAttrs(ctx, level, "http", r.LogValue().Group()...)
}

// countingWriter counts the body bytes written through it, and the status.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *countingWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

// ReadFrom keeps the server's own copy path (sendfile, buffer reuse).
func (w *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(writerOnly{w.ResponseWriter}, r)
	}
	w.n += n
	return n, err
}

// Unwrap lets http.ResponseController reach the server's writer.
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush flushes the server's writer.
func (w *countingWriter) Flush() { w.FlushError() }

// FlushError flushes the server's writer, and returns its error.
func (w *countingWriter) FlushError() error {
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Hijack takes the connection over from the server.
func (w *countingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

type writerOnly struct{ io.Writer }

// countingBody counts the bytes read from a request body.
type countingBody struct {
	io.ReadCloser
	n atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}
