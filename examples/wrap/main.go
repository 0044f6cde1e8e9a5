// Command wrap is an HTTP server that also speaks SOCKS on its own port,
// thanks to one added line, and serves itself the HTTP its SOCKS clients
// send through the tunnel, whatever site they ask for: a tap.
//
//	go run ./examples/wrap [-listen 127.0.0.1:8080] [-relay] [-drain 10s]
//	curl http://127.0.0.1:8080/                                 # plain HTTP
//	curl --socks5-hostname 127.0.0.1:8080 http://anything.test/ # HTTP tapped from SOCKS
//
// With -relay, the SOCKS streams that do not speak HTTP are relayed to
// the targets their clients asked for.
//
// On SIGTERM or an interrupt it stops gracefully: it stops accepting,
// lets the relays under way and the HTTP requests under way finish, for
// -drain at most, then closes what is left. The order matters, and run
// shows it: the wrapped listener's Shutdown first, then the HTTP server's.
// http.Server.Shutdown closes its listener, and a wrapped listener closed
// before its own Shutdown has begun cuts its relays at once; once it has
// begun, the Close leaves them to it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sockstap/sockstap/listener"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "wrap:", err)
		os.Exit(2)
	}
}

// hello answers every request, and says how it came.
func hello(w http.ResponseWriter, r *http.Request) {
	if req, ok := listener.FromContext(r.Context()); ok {
		fmt.Fprintf(w, "hello, %s client of %s: you asked %s for %s\n",
			req.VersionString(), req.Target, r.Host, r.URL.Path)
		return
	}
	fmt.Fprintf(w, "hello, plain HTTP client: you asked for %s\n", r.URL.Path)
}

// run serves until ctx ends; ready, when not nil, is told the address.
func run(ctx context.Context, args []string, stderr io.Writer, ready func(net.Addr)) error {
	fs := flag.NewFlagSet("wrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("listen", "127.0.0.1:8080", "`address` to listen on")
	relay := fs.Bool("relay", false, "relay the SOCKS streams that are not HTTP to their targets")
	drain := fs.Duration("drain", 10*time.Second, "when told to stop, let relays and requests under way finish for this `long`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var cfg *listener.Config // nil: tap every SOCKS stream, relay none
	if *relay {
		cfg = &listener.Config{Dialer: &net.Dialer{}, Tap: listener.TapHTTP}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	l := listener.Wrap(ln, cfg) // the one added line: SOCKS on the same port

	srv := &http.Server{
		Handler:     http.HandlerFunc(hello),
		ConnContext: listener.ConnContext, // optional: lets handlers see the SOCKS request
	}
	if ready != nil {
		ready(l.Addr())
	}
	stopped := make(chan error, 1)
	go func() {
		<-ctx.Done()
		dctx, cancel := context.WithTimeout(context.Background(), *drain)
		defer cancel()
		// The listener first: it stops accepting, so that srv.Serve
		// returns, and waits for its relays, while srv goes on serving
		// the connections it has. Then srv: its requests under way finish.
		stopped <- errors.Join(l.Shutdown(dctx), srv.Shutdown(dctx))
	}()
	err = srv.Serve(l)
	if ctx.Err() == nil { // the listener failed
		l.Close()
		return err
	}
	return <-stopped
}
