// Command udpsend sends one UDP datagram through a SOCKS5 proxy (UDP
// ASSOCIATE, RFC 1928 section 7) and prints the answer.
//
// Usage:
//
//	udpsend [-proxy URL]... [-timeout duration] HOST:PORT MESSAGE
//
// Each -proxy is a proxy URL (socks5 or socks5h: SOCKS4 has no UDP);
// several make a chain, whose last hop relays the datagrams while the
// others carry only the association's control connection. With none, the
// proxy comes from the environment, ALL_PROXY and NO_PROXY. With socks5h,
// HOST may be a name that the proxy resolves.
//
// The answer's payload goes to standard output, followed by a newline,
// and its sender, as the relay reports it, to standard error. With no
// answer within the timeout, or on any other failure, udpsend writes one
// line to standard error and exits with status 1; a command line it
// cannot use exits with status 2.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
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
	fs := flag.NewFlagSet("udpsend", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var proxies []string
	fs.Func("proxy", "proxy `URL`; repeat for a chain, first hop first (default: ALL_PROXY)", func(s string) error {
		proxies = append(proxies, s)
		return nil
	})
	timeout := fs.Duration("timeout", 5*time.Second, "give up after this long")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: udpsend [-proxy URL]... [-timeout duration] HOST:PORT MESSAGE")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return 2
	}
	answer, from, err := send(proxies, fs.Arg(0), fs.Arg(1), *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "udpsend: %s\n", strings.ReplaceAll(err.Error(), "\n", "; "))
		return 1
	}
	fmt.Fprintf(stderr, "answer from %s\n", from)
	stdout.Write(append(answer, '\n'))
	return 0
}

// send sends message to target through proxies, or the environment's,
// and returns the answer and its sender.
func send(proxies []string, target, message string, timeout time.Duration) ([]byte, net.Addr, error) {
	d, err := dialerFor(proxies)
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := d.DialContext(ctx, "udp", target)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	deadline, _ := ctx.Deadline()
	c.SetDeadline(deadline)
	if _, err := c.Write([]byte(message)); err != nil {
		return nil, nil, err
	}
	buf := make([]byte, 65535)
	n, err := c.Read(buf)
	if err != nil {
		return nil, nil, err
	}
	return buf[:n], c.RemoteAddr(), nil
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
