package listener

import (
	"context"
	"net"
)

// ListenAndServe listens on the TCP address addr and serves SOCKS there, as
// [Serve] does.
func ListenAndServe(ctx context.Context, addr string, cfg *Config) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return Serve(ctx, ln, cfg)
}

// Serve is a plain SOCKS server on ln: it relays every request the policy
// allows, through cfg.Dialer or, when that is nil, a *net.Dialer, and
// closes the connections that are not SOCKS. cfg.Tap is not used. When ctx
// ends, Serve closes the listener and every connection it holds, and
// returns nil; when the listener fails, its error.
func Serve(ctx context.Context, ln net.Listener, cfg *Config) error {
	c := cfg.withDefaults()
	if c.Dialer == nil {
		c.Dialer = &net.Dialer{}
	}
	c.Tap = nil
	l := Wrap(ln, &c)
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				l.Close()
				return nil
			}
			l.Close()
			return err
		}
		conn.Close()
	}
}
