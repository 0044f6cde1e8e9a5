package interop

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// DanteUser and DantePassword are the account the tests authenticate to
// danted with. danted checks a username and password against the system's
// accounts (/etc/passwd and /etc/shadow), so the account must exist: .ci/run
// creates it, and [Dante] creates it too when the test runs as root. It is
// a system account with no home, no login shell and an account expiry date
// in 1970, which PAM (and so login, su or sshd) refuses, while danted's own
// password check, which reads only the password hash, accepts it.
const (
	DanteUser     = "sockstap-interop"
	DantePassword = "sockstap-interop-pw"
)

// Options configures a [Dante] server.
type Options struct {
	// User and Password, when User is not empty, make the server require
	// username/password authentication (RFC 1929) and no other method.
	// User must be a system account whose password is Password; use
	// [DanteUser] and [DantePassword].
	User, Password string
}

// Dante starts danted (Debian package dante-server) on 127.0.0.1 and returns
// its address. It serves SOCKS 4 and 5 CONNECT, BIND and (SOCKS5) UDP
// ASSOCIATE to any destination, for clients on 127.0.0.0/8, and connects
// out from 127.0.0.1. It does not speak SOCKS4a: it takes a request's
// 0.0.0.x address for the destination, and fails to connect to it. With opts.User it requires username/password
// authentication: as root it first makes sure the account exists (see
// [DanteUser]); otherwise the test is skipped, or failed under CI=true,
// since only root can read the password hashes danted checks.
func Dante(t testing.TB, opts Options) *net.TCPAddr {
	t.Helper()
	path := Need(t, "danted", "dante-server")
	method := "none"
	if opts.User != "" {
		method = "username"
		ensureAccount(t, opts.User, opts.Password)
	}
	dir := t.TempDir()
	_, addr := startOnFreePort(t, "danted", func(port uint16) *process {
		conf := writeFile(t, dir, "danted.conf", danteConfig(port, method, os.Geteuid() == 0))
		// -p: not the default pid file, the system-wide instance's.
		return start(t, dir, "danted", path, "-f", conf, "-p", filepath.Join(dir, "danted.pid"), "-N", "1")
	})
	return addr
}

// danteConfig returns danted's configuration. Server settings come before
// the rules. As root danted must be told whom to switch to: it checks
// passwords as root (user.privileged) and runs as nobody otherwise; as
// another user it stays that user.
func danteConfig(port uint16, method string, root bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "logoutput: stderr\n")
	fmt.Fprintf(&b, "internal: 127.0.0.1 port = %d\n", port)
	fmt.Fprintf(&b, "external: 127.0.0.1\n")
	fmt.Fprintf(&b, "clientmethod: none\n")
	fmt.Fprintf(&b, "socksmethod: %s\n", method)
	if root {
		fmt.Fprintf(&b, "user.privileged: root\n")
		fmt.Fprintf(&b, "user.unprivileged: nobody\n")
	}
	fmt.Fprintf(&b, "timeout.negotiate: 10\n")
	fmt.Fprintf(&b, "timeout.connect: 10\n")
	fmt.Fprintf(&b, "client pass {\n\tfrom: 127.0.0.0/8 to: 0.0.0.0/0\n\tlog: error connect disconnect\n}\n")
	// One rule serves the requests (from the client to the target) and
	// the replies to BIND and UDP ASSOCIATE (from the peer or the
	// target to the client), all on loopback.
	fmt.Fprintf(&b, "socks pass {\n\tfrom: 127.0.0.0/8 to: 0.0.0.0/0\n"+
		"\tcommand: connect bind bindreply udpassociate udpreply\n\tprotocol: tcp udp\n"+
		"\tlog: error connect disconnect\n}\n")
	return b.String()
}
