package interop

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
)

// A Proxy is one hop of a proxychains4 chain.
type Proxy struct {
	Type string       // "socks4", "socks5" or "http"
	Addr *net.TCPAddr // the proxy's address
	// User and Password authenticate to the proxy when User is not
	// empty: a SOCKS5 username and password, a SOCKS4 user id (without a
	// password), HTTP basic credentials.
	User, Password string
}

// ProxychainsConf writes a proxychains4 configuration in the test's
// temporary directory and returns its path. The chain is strict: every
// connection goes through all proxies, in order, or fails. With proxyDNS
// the program's name lookups are answered with placeholder addresses and
// the names travel to the last proxy, which resolves them (SOCKS4a or
// SOCKS5 with a domain name), except names in /etc/hosts, "localhost"
// among them, which proxychains4 resolves itself; without proxyDNS the
// program resolves names itself and the proxies see addresses only.
func ProxychainsConf(t testing.TB, proxyDNS bool, proxies ...Proxy) string {
	t.Helper()
	if len(proxies) == 0 {
		t.Fatalf("interop: a proxychains4 chain needs at least one proxy")
	}
	var b strings.Builder
	b.WriteString("strict_chain\n")
	if proxyDNS {
		b.WriteString("proxy_dns\nremote_dns_subnet 224\n")
	}
	b.WriteString("tcp_read_time_out 5000\ntcp_connect_time_out 5000\n[ProxyList]\n")
	for _, p := range proxies {
		switch p.Type {
		case "socks4", "socks5", "http":
		default:
			t.Fatalf("interop: proxychains4 proxy type %q: want socks4, socks5 or http", p.Type)
		}
		fmt.Fprintf(&b, "%s %s %d", p.Type, p.Addr.IP, p.Addr.Port)
		if p.User != "" {
			fmt.Fprintf(&b, " %s", p.User)
			if p.Password != "" {
				fmt.Fprintf(&b, " %s", p.Password)
			}
		}
		b.WriteString("\n")
	}
	return writeFile(t, t.TempDir(), "proxychains.conf", b.String())
}

// Proxychains runs the client program name with args under proxychains4
// (Debian package proxychains4) with the configuration at conf, quietly,
// as [Run] does, and returns its standard output.
func Proxychains(t testing.TB, ctx context.Context, conf, name string, args ...string) []byte {
	t.Helper()
	return Run(t, ctx, "proxychains4", append([]string{"-q", "-f", conf, program(t, name)}, args...)...)
}
