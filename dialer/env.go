package dialer

import (
	"fmt"
	"net"
	"os"

	"golang.org/x/net/proxy"
)

// FromEnvironment returns the dialer that the environment describes: the
// proxy URL in ALL_PROXY (or all_proxy, when ALL_PROXY is unset or empty),
// with one of the four schemes of the package documentation's table, and
// the destinations in NO_PROXY (or no_proxy), in [ParseHosts]'s syntax,
// which are dialed directly; a NO_PROXY that does not parse is an error.
// With no ALL_PROXY it is a [net.Dialer]; with a NO_PROXY, a [*Router];
// otherwise a [*Dialer].
//
// The upper-case names are read first, as golang.org/x/net/proxy reads
// them. Unlike proxy.FromEnvironment, which then connects directly, an
// ALL_PROXY that is not a SOCKS URL is an error: a program that was told
// to use a proxy does not silently go without.
func FromEnvironment() (proxy.ContextDialer, error) {
	all := getenv("ALL_PROXY", "all_proxy")
	if all == "" {
		return &net.Dialer{}, nil
	}
	d, err := Parse(all)
	if err != nil {
		return nil, fmt.Errorf("%w (from ALL_PROXY)", err)
	}
	no := getenv("NO_PROXY", "no_proxy")
	if no == "" {
		return d, nil
	}
	hosts, err := ParseHosts(no)
	if err != nil {
		return nil, fmt.Errorf("%w (from NO_PROXY)", err)
	}
	return &Router{
		Routes: []Route{{Dests: hosts}},
		Peers:  []proxy.ContextDialer{d},
	}, nil
}

// getenv returns the first of the variables names that is set and not
// empty.
func getenv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}
