package main

import (
	"context"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sockstap/sockstap/listener"
)

// serve relays SOCKS on ln as cfg says until ctx ends, then drains for
// cfg.DrainTimeout (listener.Serve). With metricsAddr it serves
// Prometheus metrics there, built on the listener's records and Stats.
func serve(ctx context.Context, ln net.Listener, cfg *listener.Config, metricsAddr string, logger *slog.Logger) error {
	var m *recordMetrics
	reg := prometheus.NewRegistry()
	if metricsAddr != "" {
		m = newRecordMetrics(reg)
		cfg.OnRecord = m.record
	}
	l := listener.Wrap(ln, cfg)
	if m != nil {
		reg.MustRegister(newStatsCollector(l.Stats))
		addr, stop, err := serveMetrics(ctx, metricsAddr, reg, logger)
		if err != nil {
			l.Close()
			return err
		}
		defer stop()
		logger.Info("gateway metrics", "addr", addr.String())
	}
	if cfg.DrainTimeout > 0 {
		stop := context.AfterFunc(ctx, func() { logger.Info("gateway draining", "for", cfg.DrainTimeout) })
		defer stop()
	}
	return listener.Serve(ctx, l, nil)
}
