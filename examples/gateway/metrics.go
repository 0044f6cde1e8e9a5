package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sockstap/sockstap/httpgate"
	"github.com/sockstap/sockstap/listener"
)

// statsCollector exports a listener's Stats, read at each scrape: the
// connections it holds by state, and its counts.
type statsCollector struct {
	stats                     func() listener.Stats
	conns                     *prometheus.Desc
	accepted, refused, tapped *prometheus.Desc
}

func newStatsCollector(stats func() listener.Stats) *statsCollector {
	return &statsCollector{
		stats: stats,
		conns: prometheus.NewDesc("sockstap_connections",
			"Connections the listener holds, by state.", []string{"state"}, nil),
		accepted: prometheus.NewDesc("sockstap_accepted_connections_total",
			"Connections accepted.", nil, nil),
		refused: prometheus.NewDesc("sockstap_refused_connections_total",
			"Connections closed at once, for a limit or a PROXY protocol header.", nil, nil),
		tapped: prometheus.NewDesc("sockstap_tapped_streams_total",
			"SOCKS streams handed to the program.", nil, nil),
	}
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.conns
	ch <- c.accepted
	ch <- c.refused
	ch <- c.tapped
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	for _, g := range []struct {
		state string
		n     int
	}{
		{"sniffing", s.Sniffing},
		{"handshake", s.Handshakes},
		{"relay", s.Relays},
		{"association", s.Associations},
		{"handing", s.Handing},
	} {
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(g.n), g.state)
	}
	ch <- prometheus.MustNewConstMetric(c.accepted, prometheus.CounterValue, float64(s.Accepted))
	ch <- prometheus.MustNewConstMetric(c.refused, prometheus.CounterValue, float64(s.Refused))
	ch <- prometheus.MustNewConstMetric(c.tapped, prometheus.CounterValue, float64(s.Tapped))
}

// serveMetrics serves reg's metrics on addr, at /metrics, until ctx ends
// or the function it returns is called, which returns once the server has
// stopped; it also returns the address it listens on.
func serveMetrics(ctx context.Context, addr string, reg *prometheus.Registry, logger *slog.Logger) (net.Addr, func(), error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelError)}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			logger.Error("gateway metrics", "cause", err)
		}
	}()
	stop := context.AfterFunc(ctx, func() { srv.Close() })
	return ln.Addr(), func() { stop(); srv.Close(); <-done }, nil
}

// recordMetrics are the metrics made from the records: the listener's
// session records, one at each SOCKS session's end (Config.OnRecord), and
// the gateway's, one for each HTTP request (Gateway.OnRecord).
type recordMetrics struct {
	sessions  *prometheus.CounterVec
	bytes     *prometheus.CounterVec
	datagrams *prometheus.CounterVec
	handshake prometheus.Histogram
	dial      prometheus.Histogram
	duration  *prometheus.HistogramVec

	requests     *prometheus.CounterVec
	httpBytes    *prometheus.CounterVec
	httpDuration *prometheus.HistogramVec
}

func newRecordMetrics(reg prometheus.Registerer) *recordMetrics {
	m := &recordMetrics{
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstap_sessions_total",
			Help: "SOCKS sessions ended, by decision and by the reply code sent (none: no reply).",
		}, []string{"decision", "reply"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstap_bytes_total",
			Help: "Bytes relayed, up (from clients) and down (to clients).",
		}, []string{"direction"}),
		datagrams: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstap_datagrams_total",
			Help: "UDP datagrams relayed, up (from clients) and down (to clients).",
		}, []string{"direction"}),
		handshake: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sockstap_handshake_duration_seconds",
			Help:    "Time from a SOCKS session's first byte to its request.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		dial: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sockstap_dial_duration_seconds",
			Help:    "Time a relay took to reach its target, name resolution included.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
		}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sockstap_session_duration_seconds",
			Help:    "How long SOCKS sessions lasted, by decision.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}, []string{"decision"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstap_http_requests_total",
			Help: "HTTP requests the gateway served, by how they arrived (http-proxy, connect, socks4, socks4a, socks5), method, status class (2xx; none: no status sent) and cache result.",
		}, []string{"arrival", "method", "code", "cache"}),
		httpBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sockstap_http_bytes_total",
			Help: "Body bytes of the HTTP requests the gateway served (a tunnel's, every byte), up (from clients) and down (to clients).",
		}, []string{"direction"}),
		httpDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sockstap_http_request_duration_seconds",
			Help:    "How long the gateway took to serve HTTP requests, a tunnel's whole life for CONNECT, by how they arrived.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 12),
		}, []string{"arrival"}),
	}
	reg.MustRegister(m.sessions, m.bytes, m.datagrams, m.handshake, m.dial, m.duration,
		m.requests, m.httpBytes, m.httpDuration)
	return m
}

// request counts one HTTP request's record.
func (m *recordMetrics) request(r *httpgate.Record) {
	arrival := r.Arrival.String()
	m.requests.WithLabelValues(arrival, methodLabel(r.Method), statusClass(r.Status), r.Cache.String()).Inc()
	m.httpBytes.WithLabelValues("up").Add(float64(r.BytesUp))
	m.httpBytes.WithLabelValues("down").Add(float64(r.BytesDown))
	m.httpDuration.WithLabelValues(arrival).Observe(r.Duration.Seconds())
}

// methodLabel is the method as a label: the methods of RFC 9110 and
// PATCH, or "other", so that clients cannot make labels without end.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodConnect, http.MethodOptions, http.MethodTrace:
		return method
	}
	return "other"
}

// statusClass is "2xx" for 200 to 299, and so on; "none" when no status
// was sent.
func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "none"
	}
	return strconv.Itoa(code/100) + "xx"
}

// record counts one session's record.
func (m *recordMetrics) record(r *listener.Record) {
	reply := "none"
	if r.Reply != nil {
		reply = r.Reply.String()
	}
	decision := r.Decision.String()
	m.sessions.WithLabelValues(decision, reply).Inc()
	m.bytes.WithLabelValues("up").Add(float64(r.BytesUp))
	m.bytes.WithLabelValues("down").Add(float64(r.BytesDown))
	if r.DatagramsUp != 0 || r.DatagramsDown != 0 {
		m.datagrams.WithLabelValues("up").Add(float64(r.DatagramsUp))
		m.datagrams.WithLabelValues("down").Add(float64(r.DatagramsDown))
	}
	if r.Handshake > 0 {
		m.handshake.Observe(r.Handshake.Seconds())
	}
	if r.Dial > 0 {
		m.dial.Observe(r.Dial.Seconds())
	}
	m.duration.WithLabelValues(decision).Observe(r.Duration.Seconds())
}
