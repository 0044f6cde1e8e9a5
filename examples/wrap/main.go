// Command wrap is an HTTP server that also speaks SOCKS on its own port,
// thanks to one added line, and serves itself the HTTP its SOCKS clients
// send through the tunnel, whatever site they ask for: a tap.
//
//	go run ./examples/wrap [-listen 127.0.0.1:8080]
//	curl http://127.0.0.1:8080/                                 # plain HTTP
//	curl --socks5-hostname 127.0.0.1:8080 http://anything.test/ # HTTP tapped from SOCKS
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
	if err := fs.Parse(args); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	ln = listener.Wrap(ln, nil) // the one added line: SOCKS on the same port

	srv := &http.Server{
		Handler:     http.HandlerFunc(hello),
		ConnContext: listener.ConnContext, // optional: lets handlers see the SOCKS request
	}
	if ready != nil {
		ready(ln.Addr())
	}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
