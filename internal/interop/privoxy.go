package interop

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
)

// Privoxy starts privoxy (Debian package privoxy) on 127.0.0.1 as an HTTP
// proxy that sends requests on as forward lines say, and returns its
// address. A forward line is one of privoxy's forward-socks4,
// forward-socks4a, forward-socks5 or forward-socks5t directives, or a
// forward one; build them with [ForwardSOCKS5] and [ForwardSOCKS4a].
//
// privoxy gets no actions file and no filter file, and filtering is
// toggled off: it changes neither requests nor responses beyond what HTTP
// proxying itself does. It logs every request and every connection to
// its standard error, which goes to the test log when the test fails.
func Privoxy(t testing.TB, forwardLines ...string) *net.TCPAddr {
	t.Helper()
	path := Need(t, "privoxy", "privoxy")
	dir := t.TempDir()
	_, addr := startOnFreePort(t, "privoxy", func(port uint16) *process {
		conf := writeFile(t, dir, "config", privoxyConfig(dir, port, forwardLines))
		return start(t, dir, "privoxy", path, "--no-daemon", conf)
	})
	return addr
}

// ForwardSOCKS5 returns the privoxy forward line that sends every request
// through the SOCKS5 server at addr, with names resolved by the server, and
// with username/password authentication when user is not empty.
func ForwardSOCKS5(addr *net.TCPAddr, user, pass string) string {
	cred := ""
	if user != "" {
		cred = user + ":" + pass + "@"
	}
	return fmt.Sprintf("forward-socks5 / %s%s .", cred, addr)
}

// ForwardSOCKS4a returns the privoxy forward line that sends every request
// through the SOCKS4a server at addr, with names resolved by the server.
func ForwardSOCKS4a(addr *net.TCPAddr) string {
	return fmt.Sprintf("forward-socks4a / %s .", addr)
}

// privoxyConfig returns privoxy's configuration: confdir is the test's
// directory (privoxy finds nothing to load there), the error page
// templates are the package's, and no remote control of privoxy is allowed.
func privoxyConfig(dir string, port uint16, forwardLines []string) string {
	lines := []string{
		"confdir " + dir,
		fmt.Sprintf("listen-address 127.0.0.1:%d", port),
		"toggle 0",
		"enable-remote-toggle 0",
		"enable-remote-http-toggle 0",
		"enable-edit-actions 0",
		"forwarded-connect-retries 0",
		"socket-timeout 10",
		"debug 1",    // every request
		"debug 2",    // connections
		"debug 4096", // startup
	}
	if _, err := os.Stat("/etc/privoxy/templates"); err == nil {
		lines = append(lines, "templdir /etc/privoxy/templates")
	}
	lines = append(lines, forwardLines...)
	return strings.Join(lines, "\n") + "\n"
}
