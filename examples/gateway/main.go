// Command gateway is a SOCKS 4, 4a and 5 server: it relays the connections
// its clients ask for, and logs each one.
//
//	go run ./examples/gateway [-listen 127.0.0.1:1080] [-user name -pass secret]
//		[-drain 30s] [-proxyproto 127.0.0.1/32] [-metrics 127.0.0.1:9101]
//		[-bind] [-resolve] [-identd] [-udp [-udp-out ip]]
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
//	-udp      UDP ASSOCIATE (SOCKS5); datagrams leave from -udp-out's address
//	          (any, by default)
//
// On SIGTERM or an interrupt it stops accepting connections; with -drain
// it lets the relays under way finish for that long before it closes
// them (a second signal ends it at once).
//
// Behind a balancer (HAProxy's send-proxy or send-proxy-v2), -proxyproto
// names the balancers' networks: each connection from them must start
// with a PROXY protocol header, whose client is the one the gateway
// serves and logs; a header from anywhere else is refused. -metrics
// serves Prometheus metrics, named sockstap_..., at /metrics. The README
// has the scale-out recipe.
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
	go func() {
		<-ctx.Done()
		stop() // a second signal, during a drain, ends the program at once
	}()
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
	drain := fs.Duration("drain", 0, "when told to stop, let relays under way finish for this `long` before closing them")
	proxyproto := fs.String("proxyproto", "", "read a PROXY protocol header (v1 or v2) from the balancers in these `networks` (CIDR, comma-separated), and require one from them")
	metrics := fs.String("metrics", "", "serve Prometheus metrics on this `address`, at /metrics")
	bind := fs.Bool("bind", false, "serve BIND (SOCKS4 and SOCKS5)")
	resolve := fs.Bool("resolve", false, "serve Tor's RESOLVE and RESOLVE_PTR (SOCKS5)")
	identd := fs.Bool("identd", false, "check SOCKS4 user ids with the client host's identd (RFC 1413, port 113)")
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
	pp, err := proxyProtocol(*proxyproto)
	if err != nil {
		return err
	}
	var out netip.Addr
	if *udpOut != "" {
		if out, err = netip.ParseAddr(*udpOut); err != nil || !*udp {
			return fmt.Errorf("-udp-out wants an IP address, and -udp: %q", *udpOut)
		}
	}

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	cfg := &listener.Config{Dialer: &net.Dialer{}, Logger: logger, ProxyProtocol: pp, DrainTimeout: *drain}
	cfg.Bind, cfg.Resolve, cfg.Identd = *bind, *resolve, *identd
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
	err = serve(ctx, ln, cfg, *metrics, logger)
	logger.Info("gateway stopped")
	return err
}
