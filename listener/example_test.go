package listener_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

// An HTTP server gains SOCKS on its own port, and serves the HTTP its SOCKS
// clients send through the tunnel itself, whatever site they ask for.
func ExampleWrap() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	// The one added line. (A nil Config works too; this one only keeps the
	// example's logs quiet.)
	l := listener.Wrap(ln, &listener.Config{Logger: slog.New(slog.DiscardHandler)})

	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if req, ok := listener.FromContext(r.Context()); ok {
				fmt.Fprintf(w, "tapped from %s, for %s", req.VersionString(), req.Target)
				return
			}
			fmt.Fprint(w, "plain HTTP")
		}),
		ConnContext: listener.ConnContext,
	}
	go srv.Serve(l)
	defer srv.Close()

	// A SOCKS5 client (x/net's) asks for a site that does not exist.
	d, _ := proxy.SOCKS5("tcp", l.Addr().String(), nil, proxy.Direct)
	client := &http.Client{Transport: &http.Transport{DialContext: d.(proxy.ContextDialer).DialContext}}
	resp, err := client.Get("http://www.example.test/")
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))

	resp, err = http.Get("http://" + l.Addr().String() + "/")
	if err != nil {
		panic(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(string(body))
	// Output:
	// tapped from socks5, for www.example.test:80
	// plain HTTP
}

// A SOCKS server that relays what its clients ask for, until its context
// ends.
func ExampleServe() {
	// A target to reach through SOCKS: it greets whoever connects.
	target, _ := net.Listen("tcp", "127.0.0.1:0")
	defer target.Close()
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hello from the target\n")
			c.Close()
		}
	}()

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, stop := context.WithCancel(context.Background())
	served := make(chan error)
	go func() {
		served <- listener.Serve(ctx, ln, &listener.Config{Logger: slog.New(slog.DiscardHandler)})
	}()

	c, _ := net.Dial("tcp", ln.Addr().String())
	dst, _ := socks5.ParseAddr(target.Addr().String())
	if _, _, err := socks5.ClientHandshake(ctx, c, socks5.Request{Command: socks5.CmdConnect, Addr: dst}); err != nil {
		panic(err)
	}
	greeting, _ := io.ReadAll(c)
	c.Close()
	fmt.Print(string(greeting))

	stop()
	fmt.Println("served:", <-served)
	// Output:
	// hello from the target
	// served: <nil>
}

// A rule set: the office network may reach the web, anyone authenticated
// as admin may reach anything but the cloud's metadata service, and the
// rest is denied.
func ExampleRules() {
	rules := listener.Rules{
		{Allow: false, Dests: []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32")}, Reason: "metadata service"},
		{Allow: true, Users: []string{"admin"}},
		{Allow: true,
			Clients: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")},
			Ports:   []listener.PortRange{listener.Port(80), listener.Port(443)}},
	}
	cfg := &listener.Config{Dialer: &net.Dialer{}, Policy: rules.Policy}
	_ = cfg

	office := &net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 50000}
	for _, r := range []*listener.Request{
		{Client: office, Target: socks5.Addr{Name: "example.com", Port: 443}},
		{Client: office, Target: socks5.Addr{Name: "example.com", Port: 22}},
		{Client: office, Target: socks5.Addr{IP: netip.MustParseAddr("169.254.169.254"), Port: 80}},
		{Client: office, Target: socks5.Addr{Name: "example.com", Port: 22}, User: "admin", Authenticated: true},
	} {
		fmt.Printf("%s: %v\n", r.Target, rules.Policy(context.Background(), r))
	}
	// Output:
	// example.com:443: <nil>
	// example.com:22: denied: no rule matched
	// 169.254.169.254:80: denied: metadata service
	// example.com:22: <nil>
}

// A program counts what its SOCKS clients moved, from the session records,
// without parsing logs.
func ExampleRecord() {
	target, _ := net.Listen("tcp", "127.0.0.1:0")
	defer target.Close()
	go func() {
		c, err := target.Accept()
		if err != nil {
			return
		}
		io.WriteString(c, "hello from the target\n")
		c.Close()
	}()

	records := make(chan *listener.Record, 1)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	l := listener.Wrap(ln, &listener.Config{
		Dialer:   &net.Dialer{},
		Logger:   slog.New(slog.DiscardHandler),
		OnRecord: func(r *listener.Record) { records <- r },
	})
	defer l.Close()

	c, _ := net.Dial("tcp", l.Addr().String())
	dst, _ := socks5.ParseAddr(target.Addr().String())
	if _, _, err := socks5.ClientHandshake(context.Background(), c, socks5.Request{Command: socks5.CmdConnect, Addr: dst}); err != nil {
		panic(err)
	}
	io.ReadAll(c)
	c.Close()

	r := <-records
	fmt.Println(r.Decision, r.Request.CommandString(), r.Reply, r.BytesDown, "bytes down")
	// Output:
	// relay CONNECT succeeded 22 bytes down
}

// An HTTP gateway that dials for SOCKS clients checks the policy about the
// very address it connects to: a name that resolves to the proxy's own
// host is refused to a client from elsewhere, however it resolved when the
// request came.
func ExampleGuardDialer() {
	d := listener.GuardDialer(&net.Dialer{}, listener.DefaultPolicy)

	req := &listener.Request{
		Version:       5,
		Command:       socks5.CmdConnect,
		Target:        socks5.Addr{Name: "localhost", Port: 22},
		Client:        &net.TCPAddr{IP: net.ParseIP("198.51.100.7"), Port: 40000},
		User:          "alice",
		Authenticated: true,
	}
	_, err := d.DialContext(listener.NewContext(context.Background(), req), "tcp4", "localhost:22")
	var denial *listener.Denial
	fmt.Println(errors.As(err, &denial))
	// Output:
	// true
}
