package httpgate_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"

	"github.com/sockstap/sockstap/httpgate"
	"github.com/sockstap/sockstap/listener"
)

// One loopback port serves SOCKS and HTTP proxy clients alike, with a
// cache.
func ExampleServer() {
	origin, _ := net.Listen("tcp", "127.0.0.1:0")
	go http.Serve(origin, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello")
	}))
	defer origin.Close()

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	g := &httpgate.Gateway{Cache: httpgate.NewCache(64 << 20), Logger: slog.New(slog.DiscardHandler)}
	go (&httpgate.Server{Gateway: g}).Serve(ctx, ln)

	proxyURL := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	for range 2 {
		resp, err := client.Get("http://" + origin.Addr().String() + "/")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Printf("%s (Age: %q)\n", body, resp.Header.Get("Age"))
	}
	// Output:
	// hello (Age: "")
	// hello (Age: "0")
}

// A policy learns from its context how an HTTP proxy client came: its
// listener.Request, made up for the policy, has no SOCKS version. The
// policy is asked when the request arrives, and again about the address
// the gateway connects to.
func ExampleArrivalFromContext() {
	origin, _ := net.Listen("tcp", "127.0.0.1:0")
	go http.Serve(origin, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer origin.Close()

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	g := &httpgate.Gateway{
		Logger: slog.New(slog.DiscardHandler),
		Policy: func(ctx context.Context, r *listener.Request) error {
			how := r.VersionString()
			if a, ok := httpgate.ArrivalFromContext(ctx); ok {
				how = a.String()
			}
			when := "the request arrives"
			if r.DialedIP.IsValid() {
				when = "dialing " + r.DialedIP.String()
			}
			fmt.Printf("%s client, SOCKS version %d: %s\n", how, r.Version, when)
			return listener.DefaultPolicy(ctx, r)
		},
	}
	go (&httpgate.Server{Gateway: g}).Serve(ctx, ln)

	proxyURL := &url.URL{Scheme: "http", Host: ln.Addr().String()}
	client := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL)}}
	resp, err := client.Get("http://" + origin.Addr().String() + "/")
	if err != nil {
		panic(err)
	}
	resp.Body.Close()
	// Output:
	// http-proxy client, SOCKS version 0: the request arrives
	// http-proxy client, SOCKS version 0: dialing 127.0.0.1
}
