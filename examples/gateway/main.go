// Command gateway is a whole proxy on one port: a SOCKS 4, 4a and 5
// server, an HTTP proxy (absolute URLs and CONNECT), and, for the HTTP
// its SOCKS clients send, an HTTP gateway that logs each request and
// answers from a shared cache.
//
//	go run ./examples/gateway [-listen 127.0.0.1:1080] [-user name -pass secret]
//		[-upstream socks5h://host:port]... [-route hosts=url]... [-tap=false] [-cache 64MiB]
//		[-bind] [-resolve] [-identd] [-udp [-udp-out ip]]
//		[-drain 30s] [-proxyproto 127.0.0.1/32] [-metrics 127.0.0.1:9101]
//
// It serves clients on loopback. With -user and -pass, clients must
// authenticate with that username and password: SOCKS5 clients with RFC
// 1929's method, HTTP proxy clients with Proxy-Authorization (Basic);
// clients elsewhere are served once they have, and SOCKS4 clients, which
// cannot authenticate, are refused. Try it with curl:
//
//	curl -x http://127.0.0.1:1080 http://example.com/
//	curl --socks5-hostname 127.0.0.1:1080 http://example.com/
//	curl --socks5-hostname 127.0.0.1:1080 https://example.com/
//
// A SOCKS stream that speaks HTTP is tapped (-tap=false relays it as it
// is): the gateway serves its requests itself, to the SOCKS target, with
// an access log line each and its cache (-cache, 64 MiB by default; 0
// turns it off). Other streams, TLS among them, are relayed.
//
// It reaches destinations directly, checking the address it connects to
// against its policy (the DNS rebinding guard), unless told otherwise:
// -upstream names a SOCKS proxy (socks4, socks4a, socks5, socks5h URL)
// that reaches them instead, several are tried in turn while they cannot
// be reached; -route HOSTS=URL sends the destinations in HOSTS (a
// NO_PROXY-style list: 10.0.0.0/8,.corp.example) through URL, or
// "direct". Routes are tried in order, and the peers take the rest.
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
// it lets what is under way (SOCKS relays, HTTP requests and tunnels)
// finish for that long before it closes it (a second signal ends it at
// once).
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
	"time"

	"github.com/sockstap/sockstap/httpgate"
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

// options are the command's flags.
type options struct {
	listen     string
	user, pass string
	upstreams  []string
	routes     []string
	tap        bool
	cache      byteSize
	bind       bool
	resolve    bool
	identd     bool
	udp        bool
	udpOut     string
	drain      time.Duration
	proxyproto string
	metrics    string
}

// parseFlags reads the command line.
func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{cache: 64 << 20}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.listen, "listen", "127.0.0.1:1080", "`address` to listen on")
	fs.StringVar(&o.user, "user", "", "require authentication (SOCKS5 and HTTP proxy) with this `username`")
	fs.StringVar(&o.pass, "pass", "", "the `password` that goes with -user")
	fs.Func("upstream", "reach destinations through this SOCKS proxy `URL` (socks5h://host:port); repeat it for peers tried in turn", appendTo(&o.upstreams))
	fs.Func("route", "send the destinations in `HOSTS=URL` (a NO_PROXY-style list) through URL, or \"direct\"; repeat it", appendTo(&o.routes))
	fs.BoolVar(&o.tap, "tap", true, "serve the HTTP inside SOCKS streams with the gateway (log, cache); false relays it")
	fs.Var(&o.cache, "cache", "keep a shared HTTP cache in memory of this `size` (64MiB, 1GiB); 0 turns it off")
	fs.BoolVar(&o.bind, "bind", false, "serve BIND (SOCKS4 and SOCKS5)")
	fs.BoolVar(&o.resolve, "resolve", false, "serve Tor's RESOLVE and RESOLVE_PTR (SOCKS5)")
	fs.BoolVar(&o.identd, "identd", false, "check SOCKS4 user ids with the client host's identd (RFC 1413, port 113)")
	fs.BoolVar(&o.udp, "udp", false, "serve UDP ASSOCIATE (SOCKS5)")
	fs.StringVar(&o.udpOut, "udp-out", "", "the local `ip` relayed datagrams leave from (default any)")
	fs.DurationVar(&o.drain, "drain", 0, "when told to stop, let what is under way finish for this `long` before closing it")
	fs.StringVar(&o.proxyproto, "proxyproto", "", "read a PROXY protocol header (v1 or v2) from the balancers in these `networks` (CIDR, comma-separated), and require one from them")
	fs.StringVar(&o.metrics, "metrics", "", "serve Prometheus metrics on this `address`, at /metrics")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if (o.user == "") != (o.pass == "") {
		return nil, errors.New("-user and -pass go together")
	}
	return o, nil
}

// appendTo is a flag.Func that adds each value to *list.
func appendTo(list *[]string) func(string) error {
	return func(s string) error {
		*list = append(*list, s)
		return nil
	}
}

// server builds the mixed port's server from the options: its gateway
// (HTTP) and its SOCKS configuration.
func server(o *options, logger *slog.Logger) (*httpgate.Server, error) {
	g, err := gatewayConfig(o, logger)
	if err != nil {
		return nil, err
	}
	cfg, err := socksConfig(o, logger)
	if err != nil {
		return nil, err
	}
	s := &httpgate.Server{Gateway: g, SOCKS: cfg, ShutdownTimeout: o.drain}
	if o.drain == 0 {
		s.ShutdownTimeout = -1 // no drain: close at once
	}
	return s, nil
}

// gatewayConfig is how the port serves HTTP, and where it sends what it
// serves: the SOCKS relays go through the same dialer.
func gatewayConfig(o *options, logger *slog.Logger) (*httpgate.Gateway, error) {
	g := &httpgate.Gateway{Logger: logger}
	d, err := upstream(o.upstreams, o.routes, logger)
	if err != nil {
		return nil, err
	}
	if d != nil {
		g.Dialer = d
	}
	if o.user != "" {
		creds := socks5.NewCredentials(map[string]string{o.user: o.pass})
		g.ProxyAuth = creds.Check // SOCKS5's too: the Server offers it as RFC 1929's method
	}
	if o.cache > 0 {
		g.Cache = httpgate.NewCache(int64(o.cache))
	}
	return g, nil
}

// socksConfig is how the port serves SOCKS; what it leaves unset, the
// Server takes from the gateway (its dialer, policy, logger and
// credentials).
func socksConfig(o *options, logger *slog.Logger) (*listener.Config, error) {
	pp, err := proxyProtocol(o.proxyproto)
	if err != nil {
		return nil, err
	}
	cfg := &listener.Config{Logger: logger, ProxyProtocol: pp}
	cfg.Bind, cfg.Resolve, cfg.Identd = o.bind, o.resolve, o.identd
	cfg.UDP = o.udp
	if o.udpOut != "" {
		out, err := netip.ParseAddr(o.udpOut)
		if err != nil || !o.udp {
			return nil, fmt.Errorf("-udp-out wants an IP address, and -udp: %q", o.udpOut)
		}
		cfg.UDPListener = listener.PacketListenerFunc(func(ctx context.Context, _, _ string) (net.PacketConn, error) {
			var lc net.ListenConfig
			return lc.ListenPacket(ctx, "udp", netip.AddrPortFrom(out, 0).String())
		})
	}
	if !o.tap {
		cfg.Tap = relayAll
	}
	return cfg, nil
}

// relayAll is a listener.Config.Tap that taps nothing.
func relayAll(*listener.Request, func(int) []byte) bool { return false }

// run is the gateway: it serves until ctx ends. ready, when not nil, is
// told the address it listens on.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(net.Addr)) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewTextHandler(stderr, nil))
	s, err := server(o, logger)
	if err != nil {
		return err
	}

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", o.listen)
	if err != nil {
		return err
	}
	logger.Info("gateway listening", "addr", ln.Addr().String(), "auth", o.user != "",
		"udp", o.udp, "tap", o.tap, "cache", o.cache.String(), "upstreams", len(o.upstreams), "routes", len(o.routes))
	if ready != nil {
		ready(ln.Addr())
	}
	err = serve(ctx, ln, s, o.metrics, logger)
	logger.Info("gateway stopped")
	return err
}
