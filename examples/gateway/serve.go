package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/sockstap/sockstap/listener"
)

// serve relays SOCKS on ln as cfg says until ctx ends, and closes the
// connections that are not SOCKS. Then it drains: it stops accepting,
// closes what is not a relay, and gives the relays under way drain to
// finish before it closes them. It returns the wrapped listener's error
// if that fails first.
func serve(ctx context.Context, ln net.Listener, cfg *listener.Config, drain time.Duration, logger *slog.Logger) error {
	l := listener.Wrap(ln, cfg)
	failed := make(chan error, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				failed <- err
				return
			}
			c.Close() // not SOCKS: nobody here serves it
		}
	}()
	select {
	case err := <-failed:
		l.Close()
		return err
	case <-ctx.Done():
	}
	if drain > 0 {
		logger.Info("gateway draining", "for", drain)
	}
	dctx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	err := l.Shutdown(dctx)
	<-failed // net.ErrClosed, now that the listener is shut
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		if drain > 0 {
			logger.Warn("gateway drain: relays still under way were closed", "after", drain)
		}
		return nil
	case errors.Is(err, net.ErrClosed):
		return nil
	}
	return err
}
