package main

import (
	"context"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstap/sockstap/httpgate"
)

// serve serves s on ln until ctx ends, then drains for s.ShutdownTimeout
// (httpgate.Server.Serve). With metricsAddr it serves Prometheus metrics
// there, built on the records of the SOCKS sessions and of the HTTP
// requests, and on the listener's Stats.
func serve(ctx context.Context, ln net.Listener, s *httpgate.Server, metricsAddr string, logger *slog.Logger) error {
	if metricsAddr != "" {
		reg := prometheus.NewRegistry()
		m := newRecordMetrics(reg)
		s.SOCKS.OnRecord = m.record
		s.Gateway.OnRecord = m.request
		reg.MustRegister(newStatsCollector(s.Stats))
		addr, stop, err := serveMetrics(ctx, metricsAddr, reg, logger)
		if err != nil {
			ln.Close()
			return err
		}
		defer stop()
		logger.Info("gateway metrics", "addr", addr.String())
	}
	if s.ShutdownTimeout > 0 {
		stop := context.AfterFunc(ctx, func() { logger.Info("gateway draining", "for", s.ShutdownTimeout) })
		defer stop()
	}
	return s.Serve(ctx, ln)
}
