// Command gateway is a SOCKS 4, 4a and 5 server: it relays the connections
// its clients ask for, and logs each one.
//
//	go run ./examples/gateway [-listen 127.0.0.1:1080] [-user name -pass secret]
//
// It serves clients on loopback. With -user and -pass, SOCKS5 clients must
// authenticate with that username and password (RFC 1929), clients
// elsewhere are served once they have, and SOCKS4 clients, which cannot
// authenticate, are refused. Try it with curl:
//
//	curl --socks5-hostname 127.0.0.1:1080 https://example.com/
//
// It relays CONNECT; more commands are served with these flags:
//
//	-bind     BIND (SOCKS4 and SOCKS5): accept one connection for the client
//	-resolve  Tor's RESOLVE and RESOLVE_PTR (SOCKS5): tor-resolve works
//	-identd   check SOCKS4 user ids with the client host's identd (RFC 1413)
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
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
	bind := fs.Bool("bind", false, "serve BIND (SOCKS4 and SOCKS5)")
	resolve := fs.Bool("resolve", false, "serve Tor's RESOLVE and RESOLVE_PTR (SOCKS5)")
	identd := fs.Bool("identd", false, "check SOCKS4 user ids with the client host's identd (RFC 1413, port 113)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if (*user == "") != (*pass == "") {
		return errors.New("-user and -pass go together")
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg := &listener.Config{Dialer: &net.Dialer{}, Logger: logger}
	cfg.Bind, cfg.Resolve, cfg.Identd = *bind, *resolve, *identd
	if *user != "" {
		creds := socks5.NewCredentials(map[string]string{*user: *pass})
		cfg.Methods = []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}}
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", *listen)
	if err != nil {
		return err
	}
	logger.Info("gateway listening", "addr", ln.Addr().String(), "auth", *user != "")
	if ready != nil {
		ready(ln.Addr())
	}
	err = listener.Serve(ctx, ln, cfg)
	logger.Info("gateway stopped")
	return err
}
