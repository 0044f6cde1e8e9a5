package main

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/sockstap/sockstap/listener"
)

// proxyProtocol returns the PROXY protocol settings for -proxyproto: a
// comma-separated list of networks (CIDR) or addresses of the balancers
// trusted to send headers; each connection from them must open with one.
// It returns nil for an empty list.
func proxyProtocol(list string) (*listener.ProxyProtocol, error) {
	if strings.TrimSpace(list) == "" {
		return nil, nil
	}
	p := &listener.ProxyProtocol{Required: true}
	for f := range strings.SplitSeq(list, ",") {
		f = strings.TrimSpace(f)
		pfx, err := netip.ParsePrefix(f)
		if err != nil {
			ip, ipErr := netip.ParseAddr(f)
			if ipErr != nil {
				return nil, fmt.Errorf("-proxyproto: %q is neither a network (CIDR) nor an address", f)
			}
			pfx = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
		}
		p.Trusted = append(p.Trusted, pfx.Masked())
	}
	return p, nil
}
