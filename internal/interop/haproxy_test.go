package interop

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A proxied is what a backend behind haproxy received on one connection:
// the PROXY protocol v2 header's fields, read by hand here, and the
// client's first message.
type proxied struct {
	backend  int
	verCmd   byte // version and command: 0x21 is version 2, PROXY
	family   byte // address family and transport: 0x11 is TCP over IPv4
	src, dst netip.AddrPort
	msg      string
}

// v2Signature opens every PROXY protocol version 2 header.
var v2Signature = []byte("\r\n\r\n\x00\r\nQUIT\n")

// backend listens on host and reports each connection it gets, after
// reading a v2 header with an IPv4 address block and a message of n bytes.
func backend(t *testing.T, host string, id, n int, got chan<- proxied) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(stepTimeout))
				b := make([]byte, 16+12+n)
				if _, err := io.ReadFull(c, b); err != nil {
					t.Errorf("backend %d: %v (read % x)", id, err, b)
					return
				}
				if !bytes.Equal(b[:12], v2Signature) || binary.BigEndian.Uint16(b[14:16]) != 12 {
					t.Errorf("backend %d: not a v2 header with an IPv4 address block: % x", id, b)
					return
				}
				addr := b[16:28]
				got <- proxied{
					backend: id,
					verCmd:  b[12],
					family:  b[13],
					src:     netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr[0:4])), binary.BigEndian.Uint16(addr[8:10])),
					dst:     netip.AddrPortFrom(netip.AddrFrom4([4]byte(addr[4:8])), binary.BigEndian.Uint16(addr[10:12])),
					msg:     string(b[28:]),
				}
				c.Write([]byte("ok"))
			}()
		}
	}()
	return ln
}

// TestHAProxy checks the balancer the harness configures: each connection
// reaches a backend with a PROXY v2 header naming the client (here bound
// to 127.0.0.2) and the balancer's own address, the backends take turns,
// and when one stops listening the connections go to the other.
func TestHAProxy(t *testing.T) {
	t.Parallel()
	const msg = "hello"
	got := make(chan proxied, 4)
	// The backend that stops listens on an address no other test uses:
	// its port, once free, could be taken on 127.0.0.1 by a test running
	// beside this one, and the balancer would reach that instead.
	one, two := backend(t, "127.77.0.1", 1, len(msg), got), backend(t, "127.0.0.1", 2, len(msg), got)
	lb := HAProxy(t, one.Addr().(*net.TCPAddr), two.Addr().(*net.TCPAddr))

	// send connects from 127.0.0.2 through the balancer, sends msg, and
	// returns what the backend saw, and the client's own address.
	send := func(t *testing.T) (proxied, netip.AddrPort) {
		t.Helper()
		d := net.Dialer{Timeout: stepTimeout, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
		c, err := d.Dial("tcp", lb.String())
		require.NoError(t, err)
		defer c.Close()
		require.NoError(t, c.SetDeadline(time.Now().Add(stepTimeout)))
		_, err = c.Write([]byte(msg))
		require.NoError(t, err)
		reply := make([]byte, 2)
		_, err = io.ReadFull(c, reply)
		require.NoError(t, err, "the backend's answer")
		timer := time.NewTimer(stepTimeout)
		defer timer.Stop()
		select {
		case p := <-got:
			return p, c.LocalAddr().(*net.TCPAddr).AddrPort()
		case <-timer.C:
			t.Fatal("no backend reported the connection")
			return proxied{}, netip.AddrPort{}
		}
	}

	var backends []int
	for range 2 {
		p, client := send(t)
		assert.Equal(t, byte(0x21), p.verCmd, "version 2, PROXY")
		assert.Equal(t, byte(0x11), p.family, "TCP over IPv4")
		assert.Equal(t, client, p.src, "the header's source is the client")
		assert.Equal(t, lb.AddrPort(), p.dst, "the header's destination is the balancer's address")
		assert.Equal(t, msg, p.msg, "the client's bytes follow the header")
		backends = append(backends, p.backend)
	}
	assert.ElementsMatch(t, []int{1, 2}, backends, "round robin")

	require.NoError(t, one.Close())
	for range 3 {
		p, _ := send(t)
		assert.Equal(t, 2, p.backend, "a connection went to the backend that stopped listening")
	}
}

func TestHAProxyConfig(t *testing.T) {
	conf := haproxyConfig(8080, []*net.TCPAddr{
		{IP: net.IPv4(127, 0, 0, 1), Port: 1081},
		{IP: net.IPv4(127, 0, 0, 1), Port: 1082},
	})
	for _, line := range []string{
		"\tmode tcp\n",
		"\tbind 127.0.0.1:8080\n",
		"\tserver gw1 127.0.0.1:1081 send-proxy-v2\n",
		"\tserver gw2 127.0.0.1:1082 send-proxy-v2\n",
		"\toption redispatch 1\n",
	} {
		assert.Contains(t, conf, line)
	}
	assert.NotContains(t, conf, " check", "no health checks")
}
