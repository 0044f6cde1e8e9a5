package dialer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/internal/match"
	"github.com/sockstap/sockstap/socks5"
)

// ReadSOCKSConf reads the file at path, a SOCKS client configuration in
// Dante's syntax (socks.conf(5), dante.conf(5): what socksify reads), into
// a Router; see [ParseSOCKSConf].
func ReadSOCKSConf(path string) (*Router, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseSOCKSConf(path, f)
}

// ParseSOCKSConf reads a SOCKS client configuration in Dante's syntax from
// r, named name in errors, into a [Router] that takes the routes socksify
// would take. It reads route blocks:
//
//	route {
//		from: 0.0.0.0/0   to: 10.0.0.0/8   via: 127.0.0.1 port = 1080
//		proxyprotocol: socks_v5
//		method: none username
//	}
//	route { from: 0.0.0.0/0 to: .corp.example port 1 - 1024 via: direct }
//
// to is the destination: an IPv4 or IPv6 address with a prefix length (or
// a dotted IPv4 netmask, which Dante 1.4's client rejects), a host name (that host alone), or a domain with its leading dot
// (the domain and its subdomains); 0.0.0.0/0 is every destination. A port
// specifier may follow it: port = N (or eq, ne/!=, ge/>=, le/<=, gt/>,
// lt/<), or port N - M. via is the proxy, "HOST port = N", or "direct".
// proxyprotocol lists what the proxy speaks: socks_v5, socks_v4 or both
// (the default), and SOCKS5 is used when it is listed. method lists the
// methods to offer; with username, the credentials are those of the
// environment variables SOCKS_USERNAME and SOCKS_PASSWORD, as socksify
// takes them. from must be every source (0.0.0.0/0): a Router does not
// pick by the program's own address. protocol and command, when given,
// must allow TCP and UDP, and CONNECT, BIND and UDP ASSOCIATE.
//
// Of the global settings, resolveprotocol decides where names are
// resolved ("fake": by the proxy, socks5h; "udp" or "tcp", the default:
// by the client, socks5), route.badexpire (seconds) sets RetryAfter,
// timeout.connect (seconds, 0 for the default) sets PeerTimeout, and
// debug, logoutput and route.maxfail are read and ignored.
//
// As Dante does, a direct route that matches a destination is taken before
// any proxy route, whatever their order in the file; proxy routes are then
// tried in the file's order, the first that matches deciding. A
// destination that no route matches is refused, with an error that says
// so: socksify too fails it (unless told otherwise with
// SOCKS_DIRECTROUTE_FALLBACK). Where Dante, among routes that all match,
// prefers one that speaks socks_v4 for what SOCKS4 can carry, or falls
// back to a later route when one fails, the Router keeps to the first.
//
// What it cannot read is an error naming the file and line, a
// [*SOCKSConfError]: a keyword it does not know, a setting it does not
// implement (gssapi, http and upnp proxies, interface names are read as
// host names), an address or port that does not parse, a route without
// via.
func ParseSOCKSConf(name string, r io.Reader) (*Router, error) {
	p := &confParser{name: name, toks: nil}
	if err := p.tokenize(r); err != nil {
		return nil, err
	}
	return p.parse()
}

// A SOCKSConfError is a line of a SOCKS client configuration that
// [ParseSOCKSConf] cannot read.
type SOCKSConfError struct {
	File string // the name given to ParseSOCKSConf
	Line int    // the line, from 1
	Err  error  // what is wrong
}

// Error returns "file:line: what is wrong".
func (e *SOCKSConfError) Error() string {
	return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
}

// Unwrap returns what is wrong.
func (e *SOCKSConfError) Unwrap() error { return e.Err }

// confToken is a word of the configuration: a keyword (with its colon
// removed), a brace, an operator, or a value.
type confToken struct {
	text string
	key  bool // a keyword followed by a colon
	line int
}

type confParser struct {
	name string
	toks []confToken
	i    int

	local       bool // resolveprotocol is not fake
	retryAfter  time.Duration
	peerTimeout time.Duration
	direct      []Route
	proxied     []Route
}

func (p *confParser) errorf(line int, format string, args ...any) error {
	return &SOCKSConfError{File: p.name, Line: line, Err: fmt.Errorf(format, args...)}
}

// tokenize splits the configuration into tokens, comments removed.
func (p *confParser) tokenize(r io.Reader) error {
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		for i := 0; i < len(text); {
			c := text[i]
			switch {
			case c == ' ' || c == '\t' || c == '\r':
				i++
			case c == '{' || c == '}':
				p.toks = append(p.toks, confToken{text: string(c), line: line})
				i++
			case strings.ContainsRune("=!<>", rune(c)):
				j := i + 1
				if j < len(text) && text[j] == '=' {
					j++
				}
				p.toks = append(p.toks, confToken{text: text[i:j], line: line})
				i = j
			case c == ':' && (i+1 == len(text) || strings.ContainsRune(" \t\r{}", rune(text[i+1]))):
				if n := len(p.toks); n > 0 && !p.toks[n-1].key && p.toks[n-1].line == line && isConfKeyword(p.toks[n-1].text) {
					p.toks[n-1].key = true
				} else {
					return p.errorf(line, "a colon after no keyword")
				}
				i++
			default:
				j := i
				for j < len(text) && !strings.ContainsRune(" \t\r{}=!<>#", rune(text[j])) {
					j++
				}
				w := text[i:j]
				k, isKey := strings.CutSuffix(w, ":")
				_, ipErr := netip.ParseAddr(w)
				switch {
				case isKey && isConfKeyword(k):
					p.toks = append(p.toks, confToken{text: k, key: true, line: line})
				case isKey && ipErr != nil:
					return p.errorf(line, "%s: unknown keyword", k)
				default:
					p.toks = append(p.toks, confToken{text: w, line: line})
				}
				i = j
			}
		}
	}
	return sc.Err()
}

var confKeywords = []string{
	"debug", "logoutput", "resolveprotocol", "route.badexpire", "route.maxfail", "timeout.connect",
	"from", "to", "via", "proxyprotocol", "method", "socksmethod", "protocol", "command",
	"clientcompatibility", "gssapi.enctype", "gssapi.servicename", "errorlog",
}

func isConfKeyword(s string) bool { return slices.Contains(confKeywords, strings.ToLower(s)) }

// parse reads the tokens into a Router.
func (p *confParser) parse() (*Router, error) {
	p.local = true
	for p.i < len(p.toks) {
		t := p.toks[p.i]
		switch {
		case t.text == "route" && !t.key:
			p.i++
			if err := p.route(t.line); err != nil {
				return nil, err
			}
		case t.key:
			p.i++
			if err := p.global(t, p.lineValues(t.line)); err != nil {
				return nil, err
			}
		default:
			return nil, p.errorf(t.line, "%q: want a setting (keyword:) or a route block", t.text)
		}
	}
	r := &Router{
		Routes:      append(p.direct, p.proxied...),
		Peers:       []proxy.ContextDialer{noRoute{}},
		RetryAfter:  p.retryAfter,
		PeerTimeout: p.peerTimeout,
	}
	return r, nil
}

// values returns the tokens up to the next keyword or brace.
func (p *confParser) values() []confToken {
	start := p.i
	for p.i < len(p.toks) && !p.toks[p.i].key && p.toks[p.i].text != "{" && p.toks[p.i].text != "}" {
		p.i++
	}
	return p.toks[start:p.i]
}

// lineValues returns the values that follow on line.
func (p *confParser) lineValues(line int) []confToken {
	start := p.i
	for p.i < len(p.toks) && p.toks[p.i].line == line && !p.toks[p.i].key {
		p.i++
	}
	return p.toks[start:p.i]
}

func (p *confParser) global(key confToken, vals []confToken) error {
	one := func() (string, error) {
		if len(vals) != 1 {
			return "", p.errorf(key.line, "%s: want one value", key.text)
		}
		return vals[0].text, nil
	}
	seconds := func() (time.Duration, error) {
		v, err := one()
		if err != nil {
			return 0, err
		}
		n, err := strconv.ParseUint(v, 10, 31)
		if err != nil {
			return 0, p.errorf(key.line, "%s: %q is no number of seconds", key.text, v)
		}
		return time.Duration(n) * time.Second, nil
	}
	switch strings.ToLower(key.text) {
	case "logoutput", "errorlog":
		return nil
	case "debug", "route.maxfail":
		_, err := one()
		return err
	case "resolveprotocol":
		v, err := one()
		if err != nil {
			return err
		}
		switch v {
		case "fake":
			p.local = false
		case "udp", "tcp":
			p.local = true
		default:
			return p.errorf(key.line, "resolveprotocol: %q is not udp, tcp or fake", v)
		}
		return nil
	case "route.badexpire":
		d, err := seconds()
		if d == 0 {
			d = -1 // remember nothing
		}
		p.retryAfter = d
		return err
	case "timeout.connect":
		d, err := seconds()
		p.peerTimeout = d
		return err
	}
	return p.errorf(key.line, "%s: not a global setting", key.text)
}

// confRoute is what a route block says.
type confRoute struct {
	line      int
	to        []hostEntry
	via       string // host:port, or "" for direct
	hasVia    bool
	v4, v5    bool
	user      bool // method username
	none      bool // method none
	hasMethod bool
}

func (p *confParser) route(line int) error {
	if p.i >= len(p.toks) || p.toks[p.i].text != "{" {
		return p.errorf(line, "route: want {")
	}
	p.i++
	rt := confRoute{line: line}
	for {
		if p.i >= len(p.toks) {
			return p.errorf(line, "route: no closing }")
		}
		t := p.toks[p.i]
		if t.text == "}" {
			p.i++
			break
		}
		if !t.key {
			return p.errorf(t.line, "route: %q: want a keyword", t.text)
		}
		p.i++
		if err := p.routeField(&rt, t, p.values()); err != nil {
			return err
		}
	}
	return p.addRoute(&rt)
}

func (p *confParser) routeField(rt *confRoute, key confToken, vals []confToken) error {
	if len(vals) == 0 {
		return p.errorf(key.line, "%s: no value", key.text)
	}
	words := make([]string, len(vals))
	for i, v := range vals {
		words[i] = strings.ToLower(v.text)
	}
	switch strings.ToLower(key.text) {
	case "from":
		entries, err := p.address(key, vals)
		if err != nil {
			return err
		}
		if len(entries) != 1 || !entries[0].any || entries[0].hi != 0 {
			return p.errorf(key.line, "from: only every source (0.0.0.0/0) is supported")
		}
	case "to":
		entries, err := p.address(key, vals)
		if err != nil {
			return err
		}
		rt.to = entries
	case "via":
		rt.hasVia = true
		if words[0] == "direct" && len(words) == 1 {
			return nil
		}
		host := vals[0].text
		port := DefaultPort
		if len(vals) > 1 {
			if len(vals) != 4 || words[1] != "port" || (words[2] != "=" && words[2] != "eq") {
				return p.errorf(key.line, "via: want HOST port = N, or direct")
			}
			if n, err := strconv.ParseUint(vals[3].text, 10, 16); err != nil || n == 0 {
				return p.errorf(key.line, "via: %q is no port", vals[3].text)
			}
			port = vals[3].text
		}
		if _, err := netip.ParseAddr(host); err != nil {
			if _, err := match.ParseDomain(host); err != nil {
				return p.errorf(key.line, "via: %q is no address or host name", host)
			}
		}
		rt.via = net.JoinHostPort(host, port)
	case "proxyprotocol":
		for i, w := range words {
			switch w {
			case "socks_v4":
				rt.v4 = true
			case "socks_v5":
				rt.v5 = true
			default:
				return p.errorf(vals[i].line, "proxyprotocol: %s is not supported (socks_v4, socks_v5)", vals[i].text)
			}
		}
	case "method", "socksmethod":
		rt.hasMethod = true
		for i, w := range words {
			switch w {
			case "none":
				rt.none = true
			case "username":
				rt.user = true
			default:
				return p.errorf(vals[i].line, "%s: %s is not supported (none, username)", key.text, vals[i].text)
			}
		}
	case "protocol":
		if !slices.Contains(words, "tcp") || !slices.Contains(words, "udp") {
			return p.errorf(key.line, "protocol: a route for some protocols only is not supported (want tcp udp)")
		}
	case "command":
		for _, c := range []string{"connect", "bind", "udpassociate"} {
			if !slices.Contains(words, c) {
				return p.errorf(key.line, "command: a route for some commands only is not supported (%s is missing)", c)
			}
		}
	default:
		return p.errorf(key.line, "%s: not supported", key.text)
	}
	return nil
}

// address reads an address and its port specifier into host entries.
func (p *confParser) address(key confToken, vals []confToken) ([]hostEntry, error) {
	a := vals[0].text
	var e hostEntry
	switch {
	case a == "0.0.0.0/0" || a == "::/0" || a == "0/0" || a == "0.0.0.0/0.0.0.0":
		e.any = true
	case strings.ContainsAny(a, ":/") || startsLikeIP(a):
		pfx, err := match.ParsePrefix(a)
		if err != nil {
			return nil, p.errorf(key.line, "%s: %v", key.text, err)
		}
		e.prefix = pfx
	case strings.HasPrefix(a, "."):
		d, err := match.ParseDomain(a)
		if err != nil {
			return nil, p.errorf(key.line, "%s: %v", key.text, err)
		}
		e.domain = d
	default:
		d, err := match.ParseDomain(a)
		if err != nil {
			return nil, p.errorf(key.line, "%s: %v", key.text, err)
		}
		e.domain, e.exact = d, true
	}
	ranges, err := p.ports(key, vals[1:])
	if err != nil {
		return nil, err
	}
	if ranges == nil {
		return []hostEntry{e}, nil
	}
	entries := make([]hostEntry, 0, len(ranges))
	for _, r := range ranges {
		e.lo, e.hi = r[0], r[1]
		entries = append(entries, e)
	}
	return entries, nil
}

// ports reads a port specifier: none (nil), or the ranges of ports it
// stands for.
func (p *confParser) ports(key confToken, vals []confToken) ([][2]uint16, error) {
	if len(vals) == 0 {
		return nil, nil
	}
	bad := p.errorf(key.line, "%s: want port OP N or port N - M after the address", key.text)
	if strings.ToLower(vals[0].text) != "port" || len(vals) < 2 {
		return nil, bad
	}
	num := func(s string) (uint16, error) {
		n, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return 0, p.errorf(key.line, "%s: %q is no port", key.text, s)
		}
		return uint16(n), nil
	}
	rest := make([]string, 0, 3)
	for _, v := range vals[1:] {
		rest = append(rest, strings.ToLower(v.text))
	}
	if len(rest) == 1 && strings.Contains(rest[0], "-") {
		lo, hi, _ := strings.Cut(rest[0], "-")
		rest = []string{lo, "-", hi}
	}
	if len(rest) == 3 && rest[1] == "-" {
		lo, err := num(rest[0])
		if err != nil {
			return nil, err
		}
		hi, err := num(rest[2])
		if err != nil {
			return nil, err
		}
		if hi < lo || hi == 0 {
			return nil, p.errorf(key.line, "%s: port range %d - %d is empty", key.text, lo, hi)
		}
		return [][2]uint16{{lo, hi}}, nil
	}
	if len(rest) != 2 {
		return nil, bad
	}
	n, err := num(rest[1])
	if err != nil {
		return nil, err
	}
	var r [][2]uint16
	switch rest[0] {
	case "=", "eq":
		r = [][2]uint16{{n, n}}
	case "!=", "ne", "neq":
		if n > 1 {
			r = append(r, [2]uint16{1, n - 1})
		}
		if n < 65535 {
			r = append(r, [2]uint16{n + 1, 65535})
		}
	case ">=", "ge":
		r = [][2]uint16{{n, 65535}}
	case ">", "gt":
		if n < 65535 {
			r = [][2]uint16{{n + 1, 65535}}
		}
	case "<=", "le":
		r = [][2]uint16{{1, n}}
	case "<", "lt":
		if n > 1 {
			r = [][2]uint16{{1, n - 1}}
		}
	default:
		return nil, bad
	}
	// Port 0 is no destination's: ranges start at 1, and one that is
	// left empty is dropped.
	for i := range r {
		r[i][0] = max(r[i][0], 1)
	}
	r = slices.DeleteFunc(r, func(x [2]uint16) bool { return x[1] < x[0] })
	if len(r) == 0 {
		return nil, p.errorf(key.line, "%s: the port specifier matches no port", key.text)
	}
	return r, nil
}

// addRoute adds a parsed route block to the Router's routes.
func (p *confParser) addRoute(rt *confRoute) error {
	if !rt.hasVia {
		return p.errorf(rt.line, "route: no via")
	}
	if rt.to == nil {
		return p.errorf(rt.line, "route: no to")
	}
	dests := Hosts{entries: rt.to}
	if rt.via == "" {
		p.direct = append(p.direct, Route{Dests: dests})
		return nil
	}
	if !rt.v4 && !rt.v5 {
		rt.v4, rt.v5 = true, true // Dante's default
	}
	d := &Dialer{Proxy: rt.via}
	switch {
	case rt.v5 && p.local:
		d.Scheme = SOCKS5
	case rt.v5:
		d.Scheme = SOCKS5H
	default:
		d.Scheme = SOCKS4 // Dante's client does not send names through SOCKS4
	}
	if !rt.hasMethod {
		rt.none, rt.user = true, true
	}
	if rt.user && d.Scheme != SOCKS4 {
		user, pass := os.Getenv("SOCKS_USERNAME"), os.Getenv("SOCKS_PASSWORD")
		switch {
		case user != "" && pass != "":
			d.Username, d.Password = user, pass
		case !rt.none:
			return p.errorf(rt.line, "route: method username needs SOCKS_USERNAME and SOCKS_PASSWORD in the environment")
		}
	}
	if rt.user && !rt.none && d.Scheme == SOCKS4 {
		return p.errorf(rt.line, "route: method username needs socks_v5")
	}
	p.proxied = append(p.proxied, Route{Dests: dests, Peers: []proxy.ContextDialer{d}})
	return nil
}

// ErrNoRoute is matched by the error of a [Router] read by
// [ParseSOCKSConf] for a destination that no route of the configuration
// matches.
var ErrNoRoute = errors.New("dialer: no route in the SOCKS configuration")

// noRoute is the default peer of a Router read from a configuration: it
// refuses every destination, as socksify does one no route matches.
type noRoute struct{}

func (noRoute) String() string { return "no route" }

func (noRoute) err(op, network, address string) error {
	var target net.Addr
	if a, err := socks5.ParseAddr(address); err == nil {
		target = a
	}
	return &net.OpError{Op: op, Net: network, Addr: target, Err: ErrNoRoute}
}

func (n noRoute) DialContext(_ context.Context, network, address string) (net.Conn, error) {
	op := cmdConnect.op
	if strings.HasPrefix(network, "udp") {
		op = cmdUDP.op
	}
	return nil, n.err(op, network, address)
}

func (n noRoute) Listen(_ context.Context, network, address string) (net.Listener, error) {
	return nil, n.err(cmdBind.op, network, address)
}

func (n noRoute) ListenPacket(_ context.Context, network, _ string) (net.PacketConn, error) {
	return nil, n.err(cmdUDP.op, network, "")
}

func (n noRoute) Resolve(_ context.Context, name string) (netip.Addr, error) {
	return netip.Addr{}, n.err(cmdResolve.op, "ip", name)
}

func (n noRoute) ResolvePTR(_ context.Context, ip netip.Addr) (string, error) {
	return "", n.err(cmdResolvePTR.op, "ip", ip.String())
}
