package dialer_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"time"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

// socksServer starts a SOCKS server on loopback, one of our listeners
// relaying what its clients ask for, and returns its address and a
// function that stops it.
func socksServer() (addr string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		listener.Serve(ctx, ln, &listener.Config{Logger: slog.New(slog.DiscardHandler)})
	}()
	return ln.Addr().String(), func() { cancel(); <-done }
}

// website starts an HTTP server on loopback that answers every request
// with text.
func website(text string) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, text)
	}))
}

// get fetches url with an http.Client that dials through d.
func get(d proxy.ContextDialer, url string) string {
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get(url)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

// An http.Transport that reaches every site through a SOCKS5 proxy, which
// resolves the sites' names (socks5h).
func ExampleParse() {
	proxyAddr, stop := socksServer()
	defer stop()
	site := website("hello through SOCKS5")
	defer site.Close()

	d, err := dialer.Parse("socks5h://" + proxyAddr)
	if err != nil {
		panic(err)
	}
	tr := &http.Transport{DialContext: d.DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	resp, err := client.Get(site.URL)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Println(string(body))
	// Output: hello through SOCKS5
}

// The meaning of a proxy URL.
func ExampleParse_schemes() {
	for _, u := range []string{
		"socks4://bob@192.0.2.1",
		"socks4a://proxy.example:1081",
		"socks5://alice:secret@proxy.example",
		"socks5h://[2001:db8::1]:9050",
	} {
		d, err := dialer.Parse(u)
		if err != nil {
			panic(err)
		}
		fmt.Printf("%-8s %-20s user %q: %s\n", d.Scheme, d.Proxy, d.Username, d)
	}
	// Output:
	// socks4   192.0.2.1:1080       user "bob": socks4://bob@192.0.2.1:1080
	// socks4a  proxy.example:1081   user "": socks4a://proxy.example:1081
	// socks5   proxy.example:1080   user "alice": socks5://alice@proxy.example:1080
	// socks5h  [2001:db8::1]:9050   user "": socks5h://[2001:db8::1]:9050
}

// A strict chain of three SOCKS servers, each reached through the one
// before it, with a different scheme for each.
func ExampleChain() {
	first, stop1 := socksServer()
	defer stop1()
	second, stop2 := socksServer()
	defer stop2()
	third, stop3 := socksServer()
	defer stop3()
	site := website("hello through three hops")
	defer site.Close()

	d := dialer.Chain(
		&dialer.Dialer{Proxy: first, Scheme: dialer.SOCKS5},
		&dialer.Dialer{Proxy: second, Scheme: dialer.SOCKS4A},
		&dialer.Dialer{Proxy: third, Scheme: dialer.SOCKS5H},
	)
	fmt.Println(get(d, site.URL))
	// Output: hello through three hops
}

// A route table: the intranet directly, everything else through the first
// parent that can be reached.
func ExampleRouter() {
	parent, stop := socksServer()
	defer stop()
	intranet := website("intranet")
	defer intranet.Close()
	internet := website("internet")
	defer internet.Close()

	// A parent that is down, tried first.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	down := ln.Addr().String()
	ln.Close()

	r := &dialer.Router{
		Routes: []dialer.Route{
			// No peers: direct.
			{Dests: dialer.MustParseHosts(".corp.example, " + intranet.Listener.Addr().String())},
		},
		Peers: []proxy.ContextDialer{
			&dialer.Dialer{Proxy: down},
			&dialer.Dialer{Proxy: parent},
		},
	}
	for _, site := range []*httptest.Server{intranet, internet} {
		c, err := r.Dial("tcp", site.Listener.Addr().String())
		if err != nil {
			panic(err)
		}
		how := "directly"
		if c.RemoteAddr().String() == parent {
			how = "through the parent"
		}
		c.Close()
		fmt.Printf("%s: %s\n", get(r, site.URL), how)
	}
	// Output:
	// intranet: directly
	// internet: through the parent
}

// Behind listener.GuardDialer (a listener's relays, an HTTP gateway), a
// Router says per destination whether the name goes on unresolved: to
// socks5h peers it does, and the policy is theirs; the intranet, reached
// directly, and a socks5 peer's destinations get an address the guard
// resolved and checked.
func ExampleRouter_ForwardsName() {
	tor, _ := dialer.Parse("socks5h://127.0.0.1:9050")
	partner, _ := dialer.Parse("socks5://127.0.0.1:1080")
	r := &dialer.Router{
		Routes: []dialer.Route{
			{Dests: dialer.MustParseHosts(".corp.example")},
			{Dests: dialer.MustParseHosts(".partner.example"), Peers: []proxy.ContextDialer{partner}},
		},
		Peers: []proxy.ContextDialer{tor},
	}
	for _, dest := range []string{"wiki.corp.example:443", "api.partner.example:443", "duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion:443"} {
		fmt.Println(dest, r.ForwardsName("tcp", dest))
	}
	// Output:
	// wiki.corp.example:443 false
	// api.partner.example:443 false
	// duckduckgogg42xjoc72x3sjasowoarfbgcmvfimaftt6twagswzczad.onion:443 true
}

// proxy.FromURL builds socks4 and socks4a dialers once the package is
// imported.
func ExampleFromURL() {
	proxyAddr, stop := socksServer()
	defer stop()
	site := website("hello through SOCKS4a")
	defer site.Close()

	u, _ := url.Parse("socks4a://" + proxyAddr)
	d, err := proxy.FromURL(u, proxy.Direct)
	if err != nil {
		panic(err)
	}
	fmt.Printf("%T\n", d)
	fmt.Println(get(d.(proxy.ContextDialer), site.URL))
	// Output:
	// *dialer.Dialer
	// hello through SOCKS4a
}

// A failed dial says who refused: the target, or the proxy's rules.
func ExampleDialer_DialContext() {
	proxyAddr, stop := socksServer()
	defer stop()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := ln.Addr().String()
	ln.Close()

	d := &dialer.Dialer{Proxy: proxyAddr, Scheme: dialer.SOCKS5}
	_, err := d.DialContext(context.Background(), "tcp", closed)
	var oe *net.OpError
	var re *socks5.ReplyError
	if errors.As(err, &oe) && errors.As(err, &re) {
		fmt.Println(oe.Op, oe.Source.String() == proxyAddr, oe.Addr.String() == closed)
		fmt.Println(re.Reply == socks5.ConnectionRefused, re.Reply == socks5.NotAllowed)
	}
	// Output:
	// connect true true
	// true false
}

// A dialer from the environment, as curl reads ALL_PROXY and NO_PROXY.
func ExampleFromEnvironment() {
	proxyAddr, stop := socksServer()
	defer stop()
	site := website("hello from the environment's proxy")
	defer site.Close()

	os.Setenv("ALL_PROXY", "socks5h://"+proxyAddr)
	os.Setenv("NO_PROXY", "localhost,.internal.example")
	defer os.Unsetenv("ALL_PROXY")
	defer os.Unsetenv("NO_PROXY")

	d, err := dialer.FromEnvironment()
	if err != nil {
		panic(err)
	}
	fmt.Printf("%T\n", d)
	fmt.Println(get(d, site.URL))
	// Output:
	// *dialer.Router
	// hello from the environment's proxy
}

// NO_PROXY's syntax, as curl reads it.
func ExampleParseHosts() {
	h, err := dialer.ParseHosts("example.com, .example.org, 10.0.0.0/8, [::1]:8080")
	if err != nil {
		panic(err)
	}
	for _, addr := range []string{
		"example.com:443", "www.example.com:80", "example.org:80", "notexample.com:80",
		"10.1.2.3:22", "[::1]:8080", "[::1]:80",
	} {
		fmt.Println(addr, h.Contains(addr))
	}
	// Output:
	// example.com:443 true
	// www.example.com:80 true
	// example.org:80 true
	// notexample.com:80 false
	// 10.1.2.3:22 true
	// [::1]:8080 true
	// [::1]:80 false
}

// A list that does not parse is an error naming each bad entry.
func ExampleParseHosts_error() {
	_, err := dialer.ParseHosts("10.0.0.0/33, example.com:99999, 300.1.1.1, ok.example")
	fmt.Println(err)
	// Output:
	// dialer: host list: invalid network "10.0.0.0/33": a prefix longer than the address; "example.com:99999": a port is a number from 1 to 65535, or a range of them: 8000-8099; invalid address "300.1.1.1"
}

// Send a datagram through a SOCKS5 proxy's UDP relay and read the answer.
// (Not run: it needs a proxy that serves UDP ASSOCIATE at 127.0.0.1:1080
// and a DNS server at 192.0.2.53.)
func ExampleDialer_ListenPacket() {
	d := &dialer.Dialer{Proxy: "127.0.0.1:1080", Scheme: dialer.SOCKS5H}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pc, err := d.ListenPacket(ctx, "udp", "")
	if err != nil {
		panic(err)
	}
	defer pc.Close() // ends the association
	pc.SetDeadline(time.Now().Add(5 * time.Second))

	query := []byte("...") // a DNS query, say
	if _, err := pc.WriteTo(query, &net.UDPAddr{IP: net.IPv4(192, 0, 2, 53), Port: 53}); err != nil {
		panic(err)
	}
	// A name instead: the proxy resolves it (socks5h).
	if _, err := pc.WriteTo(query, socks5.Addr{Name: "ns.example", Port: 53}); err != nil {
		panic(err)
	}
	buf := make([]byte, 1500)
	n, from, err := pc.ReadFrom(buf)
	if errors.Is(err, dialer.ErrAssociationClosed) {
		fmt.Println("the proxy ended the association")
		return
	}
	if err != nil {
		panic(err)
	}
	fmt.Printf("%d bytes from %v\n", n, from)
}

// Have the proxy accept a connection for the program (BIND), as an FTP
// client in active mode does: tell the server the proxy's address, then
// accept the server's connection. (Not run: it needs a proxy that serves
// BIND at 127.0.0.1:1080.)
func ExampleDialer_Listen() {
	d := &dialer.Dialer{Proxy: "127.0.0.1:1080", Scheme: dialer.SOCKS5}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// The FTP server that will connect.
	ln, err := d.Listen(ctx, "tcp", "192.0.2.21:20")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	fmt.Println("PORT", ln.Addr()) // what to tell the FTP server
	ln.(*dialer.BindListener).SetDeadline(time.Now().Add(time.Minute))
	c, err := ln.Accept()
	if err != nil {
		panic(err)
	}
	defer c.Close()
	fmt.Println("connected:", c.RemoteAddr())
}

// Ask Tor (or another proxy with the RESOLVE extension) for an address.
// (Not run: it needs Tor's SOCKS port at 127.0.0.1:9050.)
func ExampleDialer_Resolve() {
	tor := &dialer.Dialer{Proxy: "127.0.0.1:9050", Scheme: dialer.SOCKS5H}
	ip, err := tor.Resolve(context.Background(), "example.com")
	if err != nil {
		panic(err)
	}
	fmt.Println(ip)
}

// Routes from the file that Dante's socksify reads: each destination goes
// the way socksify would send it.
func ExampleParseSOCKSConf() {
	conf := `
resolveprotocol: fake
route { from: 0.0.0.0/0 to: 10.0.0.0/8 via: direct }
route {
	from: 0.0.0.0/0 to: .corp.example port 1 - 1024 via: 127.0.0.1 port = 1080
	proxyprotocol: socks_v5
	method: none
}
`
	r, err := dialer.ParseSOCKSConf("socks.conf", strings.NewReader(conf))
	if err != nil {
		panic(err)
	}
	for _, route := range r.Routes {
		fmt.Println(route.Dests, route.Peers)
	}
	_, err = dialer.ParseSOCKSConf("socks.conf", strings.NewReader("route {\n to: 10.0.0.0/33 via: direct\n}"))
	fmt.Println(err)
	// Output:
	// 10.0.0.0/8 []
	// corp.example:1-1024 [socks5h://127.0.0.1:1080]
	// socks.conf:2: to: invalid network "10.0.0.0/33": a prefix longer than the address
}
