package dialer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/net/proxy"
)

// DefaultPort is the port of a proxy URL that names none: SOCKS's.
const DefaultPort = "1080"

func init() {
	for _, s := range []Scheme{SOCKS4, SOCKS4A} {
		proxy.RegisterDialerType(string(s), func(u *url.URL, forward proxy.Dialer) (proxy.Dialer, error) {
			return FromURL(u, forward)
		})
	}
}

// Parse returns the Dialer that a proxy URL describes, such as
// "socks5h://alice:secret@proxy.example:1080": one of the four schemes
// of the package documentation's table, the proxy's host and port (1080
// when none is given), and credentials, percent-encoded, from the URL's
// user information. The Dialer reaches the proxy directly.
func Parse(rawURL string) (*Dialer, error) {
	if scheme, _, _ := strings.Cut(rawURL, ":"); !strings.Contains(rawURL, "://") && !knownScheme(scheme) {
		return nil, noScheme(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		// Not url.Error's message: it quotes the URL, password and all.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("dialer: proxy URL: %w", err)
	}
	return FromURL(u, nil)
}

// knownScheme reports whether s names one of the schemes, in any case.
func knownScheme(s string) bool {
	_, _, ok := Scheme(strings.ToLower(s)).version()
	return ok && s != ""
}

// noScheme is the error of a proxy "URL" without a scheme, such as
// "127.0.0.1:1080", which suggests socks5h (and shows no password).
func noScheme(raw string) error {
	host := raw
	if i := strings.LastIndexByte(host, '@'); i >= 0 {
		host = host[i+1:]
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		host = net.JoinHostPort(host, DefaultPort)
	}
	return fmt.Errorf("dialer: proxy URL %q has no scheme: write socks5h://%s (names resolved by the proxy), "+
		"or socks5://, socks4://, socks4a://", host, host)
}

// FromURL returns the Dialer that u describes, as [Parse] reads it, which
// reaches the proxy through forward; nil forward connects directly. A
// forward that is not a [proxy.ContextDialer] is called in a goroutine of
// its own, which a cancelled dial leaves running until forward returns.
//
// Its signature, but for the result's type, is the one
// [proxy.RegisterDialerType] takes; the package registers it for socks4
// and socks4a.
func FromURL(u *url.URL, forward proxy.Dialer) (*Dialer, error) {
	scheme := Scheme(strings.ToLower(u.Scheme))
	if _, _, ok := scheme.version(); !ok || scheme == "" {
		return nil, fmt.Errorf("dialer: proxy URL %s: unsupported scheme %q (want socks4, socks4a, socks5 or socks5h)",
			u.Redacted(), u.Scheme)
	}
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return nil, fmt.Errorf("dialer: proxy URL %s: no proxy host", u.Redacted())
	}
	if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("dialer: proxy URL %s: a proxy URL has no path, query or fragment", u.Redacted())
	}
	port := u.Port()
	if port == "" {
		port = DefaultPort
	} else if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return nil, fmt.Errorf("dialer: proxy URL %s: invalid port %q", u.Redacted(), port)
	}
	d := &Dialer{Proxy: net.JoinHostPort(u.Hostname(), port), Scheme: scheme}
	if h, _, err := net.SplitHostPort(d.Proxy); err != nil || h != u.Hostname() || badHost(h) {
		return nil, fmt.Errorf("dialer: proxy URL %s: invalid proxy host %q", u.Redacted(), u.Hostname())
	}
	if u.User != nil {
		d.Username = u.User.Username()
		d.Password, _ = u.User.Password()
	}
	if err := d.checkCredentials(); err != nil {
		return nil, fmt.Errorf("dialer: proxy URL %s: %w", u.Redacted(), err)
	}
	switch f := forward.(type) {
	case nil:
	case proxy.ContextDialer:
		d.Forward = f
	default:
		d.Forward = contextDialer{forward}
	}
	return d, nil
}

// badHost reports a host that is neither an IP address nor a name: one
// with a colon that is no IPv6 address, or with characters no name has.
func badHost(h string) bool {
	if strings.Contains(h, ":") {
		_, err := netip.ParseAddr(h)
		return err != nil
	}
	return strings.ContainsAny(h, "[]/@?#% \t\r\n")
}

// Errors of credentials that the scheme cannot send.
var (
	errLongUserID      = errors.New("SOCKS4 user id longer than 255 bytes")
	errNULUserID       = errors.New("SOCKS4 user id contains a NUL byte")
	errPasswordOnly    = errors.New("a SOCKS5 password without a username")
	errUserPassLengths = errors.New("SOCKS5 username and password must both be 1 to 255 bytes")
)

// checkCredentials reports credentials that the scheme cannot send.
func (d *Dialer) checkCredentials() error {
	v, _, _ := d.Scheme.version()
	switch {
	case v == 4 && len(d.Username) > 255:
		return errLongUserID
	case v == 4 && strings.IndexByte(d.Username, 0) >= 0:
		return errNULUserID
	case v == 5 && d.Username == "" && d.Password != "":
		return errPasswordOnly
	case v == 5 && d.Username != "" && (d.Password == "" || len(d.Username) > 255 || len(d.Password) > 255):
		return errUserPassLengths
	}
	return nil
}

// contextDialer makes a proxy.Dialer a proxy.ContextDialer: the dial runs
// in a goroutine of its own, and a connection it returns after ctx has
// ended is closed.
type contextDialer struct{ d proxy.Dialer }

func (cd contextDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := cd.d.Dial(network, address)
		done <- result{c, err}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-ctx.Done():
		go func() {
			if r := <-done; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, ctx.Err()
	}
}
