package interop

import (
	"net"
	"testing"
)

// Microsocks starts microsocks (Debian package microsocks), a SOCKS5-only
// server, on 127.0.0.1 and returns its address. With user set it requires
// username/password authentication (RFC 1929) with user and pass, and
// offers no other method; with user empty it requires none.
//
// microsocks binds port 0 as asked, so the kernel picks the port and the
// harness reads it from the daemon's listening socket: no race.
func Microsocks(t testing.TB, user, pass string) *net.TCPAddr {
	t.Helper()
	path := Need(t, "microsocks", "microsocks")
	args := []string{"-i", "127.0.0.1", "-p", "0"}
	if user != "" {
		args = append(args, "-u", user, "-P", pass)
	}
	p := start(t, t.TempDir(), "microsocks", path, args...)
	return p.listen(t, 0)
}
