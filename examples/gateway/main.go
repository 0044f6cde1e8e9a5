// Command gateway is a SOCKS 4, 4a and 5 server: it relays the connections
// its clients ask for, and logs each one.
//
//	go run ./examples/gateway [-listen 127.0.0.1:1080] [-user name -pass secret] [-udp [-udp-out ip]]
//
// It serves clients on loopback. With -user and -pass, SOCKS5 clients must
// authenticate with that username and password (RFC 1929), clients
// elsewhere are served once they have, and SOCKS4 clients, which cannot
// authenticate, are refused. With -udp it serves SOCKS5's UDP ASSOCIATE
// too: datagrams leave from -udp-out (any address by default). Try it
// with curl:
//
//	curl --socks5-hostname 127.0.0.1:1080 https://example.com/
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"

	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(2)
	}
}

// run is the gateway: it serves until ctx ends. ready, when not nil, is
// told the address it listens on.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(net.Addr)) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:1080", "`address` to listen on")
	user := fs.String("user", "", "require SOCKS5 authentication with this `username`")
	pass := fs.String("pass", "", "the `password` that goes with -user")
	udp := fs.Bool("udp", false, "serve UDP ASSOCIATE (SOCKS5)")
	udpOut := fs.String("udp-out", "", "the local `ip` relayed datagrams leave from (default any)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if (*user == "") != (*pass == "") {
		return errors.New("-user and -pass go together")
	}
	var out netip.Addr
	if *udpOut != "" {
		var err error
		if out, err = netip.ParseAddr(*udpOut); err != nil || !*udp {
			return fmt.Errorf("-udp-out wants an IP address, and -udp: %q", *udpOut)
		}
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg := &listener.Config{Dialer: &net.Dialer{}, Logger: logger}
	if *user != "" {
		creds := socks5.NewCredentials(map[string]string{*user: *pass})
		cfg.Methods = []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}}
	}
	if *udp {
		cfg.UDP = true
		if out.IsValid() {
			cfg.UDPListener = listener.PacketListenerFunc(func(ctx context.Context, _, _ string) (net.PacketConn, error) {
				var lc net.ListenConfig
				return lc.ListenPacket(ctx, "udp", netip.AddrPortFrom(out, 0).String())
			})
		}
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		return err
	}
	logger.Info("gateway listening", "addr", ln.Addr().String(), "auth", *user != "", "udp", *udp)
	if ready != nil {
		ready(ln.Addr())
	}
	err = listener.Serve(ctx, ln, cfg)
	logger.Info("gateway stopped")
	return err
}
