package interop

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// HAProxy starts haproxy (Debian package haproxy) on 127.0.0.1 as a TCP
// balancer (mode tcp) in front of backends, and returns its address. It
// hands each connection to the next backend in turn (round robin), and
// opens it with a PROXY protocol version 2 header (send-proxy-v2) that
// names the client's address and port, and the address and port the
// client connected to: what a sockstap listener behind a balancer reads.
//
// It runs no health checks. A backend that refuses the connection (one
// that has stopped listening) is not asked again for it: haproxy retries
// on another (option redispatch), so a client does not see a backend that
// has left. It logs each connection, with the backend that took it, to
// its standard error, which goes to the test log when the test fails.
func HAProxy(t testing.TB, backends ...*net.TCPAddr) *net.TCPAddr {
	t.Helper()
	if len(backends) == 0 {
		t.Fatalf("interop: HAProxy needs a backend")
	}
	path := Need(t, "haproxy", "haproxy")
	dir := t.TempDir()
	_, addr := startOnFreePort(t, "haproxy", func(port uint16) *process {
		conf := writeFile(t, dir, "haproxy.cfg", haproxyConfig(port, backends))
		// -db: in the foreground, one process, whatever the configuration says.
		return start(t, dir, "haproxy", path, "-db", "-f", conf)
	})
	return addr
}

// haproxyConfig returns haproxy's configuration: one frontend on
// 127.0.0.1 and port, one backend with a server for each of backends.
// The timeouts bound a test that goes wrong; a relay that is moving data
// never reaches them.
func haproxyConfig(port uint16, backends []*net.TCPAddr) string {
	var b strings.Builder
	fmt.Fprintf(&b, "global\n")
	fmt.Fprintf(&b, "\tlog stderr format raw daemon\n")
	fmt.Fprintf(&b, "\tmaxconn 1024\n")
	fmt.Fprintf(&b, "defaults\n")
	fmt.Fprintf(&b, "\tmode tcp\n")
	fmt.Fprintf(&b, "\tlog global\n")
	fmt.Fprintf(&b, "\toption tcplog\n")
	fmt.Fprintf(&b, "\ttimeout connect 5s\n")
	fmt.Fprintf(&b, "\ttimeout client 60s\n")
	fmt.Fprintf(&b, "\ttimeout server 60s\n")
	fmt.Fprintf(&b, "\tretries 3\n")
	fmt.Fprintf(&b, "\toption redispatch 1\n")
	fmt.Fprintf(&b, "frontend socks\n")
	fmt.Fprintf(&b, "\tbind 127.0.0.1:%d\n", port)
	fmt.Fprintf(&b, "\tdefault_backend gateways\n")
	fmt.Fprintf(&b, "backend gateways\n")
	fmt.Fprintf(&b, "\tbalance roundrobin\n")
	for i, a := range backends {
		fmt.Fprintf(&b, "\tserver gw%d %s send-proxy-v2\n", i+1, a)
	}
	return b.String()
}
