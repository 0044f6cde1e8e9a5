package sockstest_test

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
)

// TestReverseResolver checks the PTR answers, for IPv4 and IPv6, and that
// A queries still go to the zone.
func TestReverseResolver(t *testing.T) {
	r := sockstest.ReverseResolver(t,
		func(name string) ([]netip.Addr, bool) {
			if name == "host.test" {
				return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, true
			}
			return nil, false
		},
		func(ip netip.Addr) ([]string, bool) {
			switch ip {
			case netip.MustParseAddr("192.0.2.1"):
				return []string{"host.test"}, true
			case netip.MustParseAddr("2001:db8::1:2"):
				return []string{"v6.test", "other.test"}, true
			}
			return nil, false
		})
	ctx := context.Background()
	names, err := r.LookupAddr(ctx, "192.0.2.1")
	require.NoError(t, err)
	assert.Equal(t, []string{"host.test."}, names)
	names, err = r.LookupAddr(ctx, "2001:db8::1:2")
	require.NoError(t, err)
	assert.Equal(t, []string{"v6.test.", "other.test."}, names)
	_, err = r.LookupAddr(ctx, "192.0.2.7")
	var dnsErr *net.DNSError
	require.ErrorAs(t, err, &dnsErr)
	assert.True(t, dnsErr.IsNotFound)
	ips, err := r.LookupNetIP(ctx, "ip4", "host.test")
	require.NoError(t, err)
	assert.Equal(t, []netip.Addr{netip.MustParseAddr("192.0.2.1")}, ips)
}

// TestIdentd checks the test identd: the query comes as sent, less its
// end of line, and the answer goes back as it is.
func TestIdentd(t *testing.T) {
	got := make(chan string, 1)
	addr := sockstest.Identd(t, "127.0.0.1:0", func(q string) string {
		got <- q
		return sockstest.UserID("alice")(q)
	})
	c, err := net.Dial("tcp", addr.String())
	require.NoError(t, err)
	defer c.Close()
	_, err = c.Write([]byte("6191, 23\r\n"))
	require.NoError(t, err)
	c.SetDeadline(time.Now().Add(sockstest.Timeout))
	answer, err := io.ReadAll(c) // identd closes once it has answered
	require.NoError(t, err)
	assert.Equal(t, "6191, 23 : USERID : UNIX : alice\r\n", string(answer))
	assert.Equal(t, "6191, 23", <-got)
}
