package dialer_test

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/sockstap/sockstap/dialer"
)

// FuzzParse checks that Parse accepts only what a Dialer can use, keeps
// passwords out of its errors, and reads back what it would write.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"socks5h://alice:secret@127.0.0.1:1080",
		"socks4a://bob@proxy.example",
		"socks4://[::1]:9050",
		"socks5://proxy.example:0",
		"socks5://alice@proxy.example",
		"http://proxy.example:3128",
		"socks5h://alice:s%40cret@proxy.example/x",
		"socks5h://proxy.example:99999",
		"SOCKS5://Proxy.Example",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		d, err := dialer.Parse(raw)
		if err != nil {
			if d != nil {
				t.Fatalf("Parse(%q) returned a Dialer beside its error %v", raw, err)
			}
			if u, perr := url.Parse(raw); perr == nil && u.User != nil {
				if p, ok := u.User.Password(); ok && len(p) >= 6 && strings.Count(raw, p) == 1 &&
					strings.Contains(err.Error(), p) {
					t.Fatalf("the error of Parse(%q) shows the password: %v", raw, err)
				}
			}
			return
		}
		switch d.Scheme {
		case dialer.SOCKS4, dialer.SOCKS4A, dialer.SOCKS5, dialer.SOCKS5H:
		default:
			t.Fatalf("Parse(%q): scheme %q", raw, d.Scheme)
		}
		host, port, err := net.SplitHostPort(d.Proxy)
		if err != nil || host == "" {
			t.Fatalf("Parse(%q): proxy address %q: %v", raw, d.Proxy, err)
		}
		if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
			t.Fatalf("Parse(%q): proxy port %q", raw, port)
		}
		if d.Forward != nil || d.Resolver != nil {
			t.Fatalf("Parse(%q) set Forward or Resolver", raw)
		}

		u := url.URL{Scheme: string(d.Scheme), Host: d.Proxy}
		switch {
		case d.Password != "":
			u.User = url.UserPassword(d.Username, d.Password)
		case d.Username != "":
			u.User = url.User(d.Username)
		}
		again, err := dialer.Parse(u.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, but Parse(%q): %v", raw, *d, u.String(), err)
		}
		if *again != *d {
			t.Fatalf("Parse(%q) = %+v, but Parse(%q) = %+v", raw, *d, u.String(), *again)
		}
	})
}

// FuzzParseHosts checks properties every NO_PROXY list has: "*" contains
// everything, adding entries loses nothing, case does not matter, and a
// plain domain contains itself and its subdomains.
func FuzzParseHosts(f *testing.F) {
	for _, s := range [][2]string{
		{"example.com,.example.org", "www.example.com:80"},
		{"10.0.0.0/8, ::1", "10.1.2.3:22"},
		{"[::1]:8080", "[::1]:8080"},
		{"*", "anything:1"},
		{"example.com:443", "example.com"},
		{"*.example.com", "WWW.EXAMPLE.COM.:80"},
		{"::ffff:10.0.0.0/104", "[::ffff:10.1.1.1]:80"},
		{"a, b\tc", "c"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, list, addr string) {
		h, err := dialer.ParseHosts(list)
		if err != nil {
			if name := strings.Trim(list, "."); isDomain(name) && len(name) <= 253 && !longLabel(name) {
				t.Fatalf("ParseHosts(%q): %v", list, err)
			}
			return
		}
		in := h.Contains(addr)
		if !dialer.MustParseHosts(list + ",*").Contains(addr) {
			t.Fatalf("%q with * does not contain %q", list, addr)
		}
		if in && !dialer.MustParseHosts(list+", other.example").Contains(addr) {
			t.Fatalf("%q contains %q, but not with one more entry", list, addr)
		}
		if isASCII(list) && isASCII(addr) {
			if dialer.MustParseHosts(strings.ToUpper(list)).Contains(strings.ToLower(addr)) != in {
				t.Fatalf("case matters: %q and %q", list, addr)
			}
		}
		again, err := dialer.ParseHosts(h.String())
		if err != nil || again.String() != h.String() || again.Contains(addr) != in {
			t.Fatalf("ParseHosts(%q).String() = %q, which reads back as %q, %v", list, h.String(), again.String(), err)
		}
		if name := strings.Trim(list, "."); isDomain(name) {
			if !h.Contains(name+":80") || !h.Contains("sub."+name+":80") || !h.Contains(name) {
				t.Fatalf("%q does not contain itself or its subdomains", list)
			}
		}
	})
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// longLabel reports whether a label of name is longer than DNS allows.
func longLabel(name string) bool {
	for _, label := range strings.Split(name, ".") {
		if len(label) > 63 {
			return true
		}
	}
	return false
}

// isDomain reports whether s is a plain domain name: labels of letters,
// digits and hyphens, with at least one letter, so that it is no IP
// address.
func isDomain(s string) bool {
	if s == "" {
		return false
	}
	letter := false
	for _, label := range strings.Split(s, ".") {
		if label == "" {
			return false
		}
		for i := range len(label) {
			c := label[i]
			switch {
			case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
				letter = true
			case c >= '0' && c <= '9', c == '-':
			default:
				return false
			}
		}
	}
	return letter
}

// FuzzParseSOCKSConf checks that ParseSOCKSConf never fails but with a
// *SOCKSConfError naming a line of its input, and that the routes it reads
// have destinations that ParseHosts reads back.
func FuzzParseSOCKSConf(f *testing.F) {
	for _, s := range []string{
		"route { from: 0.0.0.0/0 to: 10.0.0.0/255.0.0.0 via: 127.0.0.1 port = 1080 proxyprotocol: socks_v5 }",
		"resolveprotocol: fake\nroute {\n from: 0.0.0.0/0 to: .example port 1 - 1024 via: direct\n}\n",
		"route { to: fd00::/8 port != 22 via: ::1 port = 1083 method: none username }",
		"route { to: host.example port >= 1024 via: direct protocol: tcp udp }",
		"route { to: 10.0.0.0/33 via: direct }",
		"timeout.connect: 3 # comment\nroute.badexpire: 0",
		": {",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, conf string) {
		r, err := dialer.ParseSOCKSConf("f.conf", strings.NewReader(conf))
		if err != nil {
			var ce *dialer.SOCKSConfError
			if !errors.As(err, &ce) {
				if strings.Contains(err.Error(), "token too long") {
					return // bufio.Scanner's limit on a line
				}
				t.Fatalf("ParseSOCKSConf(%q): %T %v", conf, err, err)
			}
			if ce.File != "f.conf" || ce.Line < 1 || ce.Line > strings.Count(conf, "\n")+1 {
				t.Fatalf("ParseSOCKSConf(%q): error at %s:%d", conf, ce.File, ce.Line)
			}
			return
		}
		for _, rt := range r.Routes {
			again, err := dialer.ParseHosts(rt.Dests.String())
			if err != nil || again.String() != rt.Dests.String() {
				t.Fatalf("ParseSOCKSConf(%q): destinations %q read back as %q, %v", conf, rt.Dests.String(), again.String(), err)
			}
		}
	})
}
