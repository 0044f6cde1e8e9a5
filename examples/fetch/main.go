// Command fetch fetches a URL through SOCKS proxies and writes the body to
// standard output.
//
// Usage:
//
//	fetch [-proxy URL]... [-timeout duration] URL
//
// Each -proxy is a proxy URL (socks4, socks4a, socks5 or socks5h; see
// package dialer); several make a chain, the first given being the first
// hop. With none, the proxy comes from the environment, ALL_PROXY and
// NO_PROXY, and without those the URL is fetched directly.
//
// A response other than 2xx is a failure, as with curl -f. On failure,
// fetch writes one line to standard error and exits with status 1; a
// command line it cannot use exits with status 2.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/dialer"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the command, with its arguments and outputs; it returns the exit
// status.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("fetch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var proxies []string
	fs.Func("proxy", "proxy `URL`; repeat for a chain, first hop first (default: ALL_PROXY)", func(s string) error {
		proxies = append(proxies, s)
		return nil
	})
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: fetch [-proxy URL]... [-timeout duration] URL")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	if err := fetch(proxies, fs.Arg(0), *timeout, stdout); err != nil {
		fmt.Fprintf(stderr, "fetch: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
	return 0
}

// fetch GETs url through proxies, or the environment's, and copies the
// body to w.
func fetch(proxies []string, url string, timeout time.Duration, w io.Writer) error {
	d, err := dialerFor(proxies)
	if err != nil {
		return err
	}
	tr := &http.Transport{DialContext: d.DialContext, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// dialerFor returns the chain of proxies, or the environment's dialer when
// there are none.
func dialerFor(proxies []string) (proxy.ContextDialer, error) {
	if len(proxies) == 0 {
		return dialer.FromEnvironment()
	}
	hops := make([]*dialer.Dialer, len(proxies))
	for i, p := range proxies {
		d, err := dialer.Parse(p)
		if err != nil {
			return nil, err
		}
		hops[i] = d
	}
	return dialer.Chain(hops[0], hops[1:]...), nil
}
