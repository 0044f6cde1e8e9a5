package main

import (
	"fmt"
	"log/slog"
	"strings"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/dialer"
)

// direct is what a -route names instead of a proxy URL for destinations
// reached without one.
const direct = "direct"

// parseRoute reads a -route: HOSTS=URL, where HOSTS is a destination list
// as dialer.ParseHosts reads it ("10.0.0.0/8,.corp.example", "*:443") and
// URL a SOCKS proxy URL ("socks5h://127.0.0.1:9050") or "direct". The
// list may itself hold "=" (an exact host, "=example.com"): the URL
// begins after the last "=" before its "://".
func parseRoute(s string) (hosts dialer.Hosts, via string, err error) {
	sep := -1
	if i := strings.Index(s, "://"); i >= 0 {
		sep = strings.LastIndex(s[:i], "=")
	} else if strings.HasSuffix(s, "="+direct) {
		sep = len(s) - len("="+direct)
	}
	if sep <= 0 {
		return dialer.Hosts{}, "", fmt.Errorf("-route %q: want HOSTS=URL or HOSTS=direct", s)
	}
	hosts, err = dialer.ParseHosts(s[:sep])
	if err != nil {
		return dialer.Hosts{}, "", fmt.Errorf("-route %q: %w", s, err)
	}
	via = s[sep+1:]
	if via != direct {
		if _, err := dialer.Parse(via); err != nil {
			return dialer.Hosts{}, "", fmt.Errorf("-route %q: %w", s, err)
		}
	}
	return hosts, via, nil
}

// upstream returns the dialer the gateway reaches destinations through,
// and relays SOCKS through: nil, for directly, when there are no peers
// and no routes; otherwise a dialer.Router. Routes are tried in their
// order, the first whose hosts hold the destination deciding; -route
// flags with the same HOSTS make one route whose peers are tried in turn
// while they cannot be reached. Peers (-upstream) reach the destinations
// no route holds, tried in turn the same way. A peer passed over is
// logged with logger.
//
// The Router needs no guard of its own: the gateway dials through
// listener.GuardDialer, and so do the SOCKS relays wherever the policy's
// answer may depend on the address, and the Router tells the guard how
// each destination goes (Router.DialerFor, ForwardsName). A name routed
// directly, or to socks5 or socks4 peers, is resolved and each address
// checked against the policy, then dialed as an address along its name's
// route; one routed to socks5h or socks4a peers goes to them as a name,
// which they resolve, applying their own policies.
func upstream(peers, routes []string, logger *slog.Logger) (proxy.ContextDialer, error) {
	if len(peers) == 0 && len(routes) == 0 {
		return nil, nil
	}
	r := &dialer.Router{Logger: logger}
	for _, u := range peers {
		d, err := dialer.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("-upstream %q: %w", u, err)
		}
		r.Peers = append(r.Peers, d)
	}
	index := make(map[string]int) // a HOSTS list's route
	isDirect := make(map[string]bool)
	for _, s := range routes {
		hosts, via, err := parseRoute(s)
		if err != nil {
			return nil, err
		}
		key := hosts.String()
		i, ok := index[key]
		if !ok {
			i = len(r.Routes)
			index[key] = i
			isDirect[key] = via == direct
			r.Routes = append(r.Routes, dialer.Route{Dests: hosts})
		} else if isDirect[key] || via == direct {
			return nil, fmt.Errorf("-route %q: those hosts are routed both directly and through a proxy", s)
		}
		if via != direct {
			d, _ := dialer.Parse(via) // parseRoute parsed it
			r.Routes[i].Peers = append(r.Routes[i].Peers, d)
		}
	}
	return r, nil
}
