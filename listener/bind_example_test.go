package listener_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/listener"
)

// A listener that serves BIND: a client asks it to accept one connection
// for it (here through the dialer package, whose Listen speaks BIND), a
// peer connects to the address the listener answered with, and the two
// talk through the listener.
func ExampleConfig_bind() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	l := listener.Wrap(ln, &listener.Config{
		Bind:        true,
		BindTimeout: 10 * time.Second,
		Logger:      slog.New(slog.DiscardHandler),
	})
	defer l.Close()

	// The client: BIND, expecting its peer from 127.0.0.1.
	d := &dialer.Dialer{Proxy: l.Addr().String(), Scheme: dialer.SOCKS5}
	bl, err := d.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer bl.Close()

	// The peer connects where the listener listens for it.
	go func() {
		peer, err := net.Dial("tcp", bl.Addr().String())
		if err != nil {
			return
		}
		defer peer.Close()
		io.WriteString(peer, "hello from the peer")
	}()

	c, err := bl.Accept()
	if err != nil {
		panic(err)
	}
	defer c.Close()
	b, _ := io.ReadAll(c)
	fmt.Println(string(b))
	// Output: hello from the peer
}
