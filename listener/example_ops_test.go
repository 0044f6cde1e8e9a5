package listener_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/sockstap/sockstap/listener"
)

// Behind a balancer on 127.0.0.1 that sends a PROXY protocol header, the
// program sees the client the header declares.
func ExampleProxyProtocol() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	l := listener.Wrap(ln, &listener.Config{
		ProxyProtocol: &listener.ProxyProtocol{
			Trusted:  []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
			Required: true,
		},
	})
	defer l.Close()

	// The balancer: a version 1 header, then the client's bytes.
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	io.WriteString(c, "PROXY TCP4 192.0.2.7 127.0.0.1 40000 1080\r\nhello")

	own, err := l.Accept() // not SOCKS: the program's own connection
	if err != nil {
		panic(err)
	}
	defer own.Close()
	b := make([]byte, 5)
	io.ReadFull(own, b)
	fmt.Println(own.RemoteAddr(), string(b))
	// Output: 192.0.2.7:40000 hello
}

// An HTTP server and the listener it serves stop together, gracefully:
// the listener first, so that its relays finish, then the server, so
// that its requests do.
func ExampleListener_Shutdown() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	l := listener.Wrap(ln, &listener.Config{Dialer: &net.Dialer{}, Tap: listener.TapHTTP})
	srv := &http.Server{Handler: http.NotFoundHandler(), ConnContext: listener.ConnContext}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	// ... until the program is told to stop:
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	fmt.Println(l.Shutdown(ctx))   // stops accepting; waits for the relays
	fmt.Println(srv.Shutdown(ctx)) // waits for the requests under way
	// srv.Serve returns net.ErrClosed when the listener stops accepting,
	// or http.ErrServerClosed if the server's Shutdown came first.
	err = <-served
	fmt.Println(errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed))
	// Output:
	// <nil>
	// <nil>
	// true
}
