package listener

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// socksConf writes a socks.conf(5) that sends everything through the
// SOCKS5 server at proxy, with extra lines first, and returns its path.
func socksConf(t *testing.T, proxy *net.TCPAddr, extra string) string {
	t.Helper()
	conf := fmt.Sprintf(`# every destination through the listener, SOCKS5, no authentication
%s
route {
	from: 0.0.0.0/0 to: 0.0.0.0/0 via: %s port = %d
	proxyprotocol: socks_v5
	method: none
}
`, extra, proxy.IP, proxy.Port)
	path := filepath.Join(t.TempDir(), "socks.conf")
	require.NoError(t, os.WriteFile(path, []byte(conf), 0o644))
	return path
}

// TestInteropSocksifyUDP runs socat's UDP client under socksify, Dante's
// SOCKS client library: socat sends its standard input as one datagram to
// a UDP echo server and writes what comes back; socksify carries the
// datagram through a UDP association with the listener. Given a name and
// "resolveprotocol: fake", socksify sends the name in the datagram's
// header, and the listener resolves it.
func TestInteropSocksifyUDP(t *testing.T) {
	t.Parallel()
	socat := interop.Need(t, "socat", "socat")
	echo := sockstest.EchoUDP(t)
	for _, c := range []struct {
		name, host, conf string
		target           socks5.Addr // the datagram's destination, as the policy saw it
	}{
		{"address", "127.0.0.1", "", socks5.AddrFromAddrPort(echo.AddrPort())},
		{"name", "localhost", "resolveprotocol: fake", socks5.Addr{Name: "localhost", Port: uint16(echo.Port)}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dests := make(chan socks5.Addr, 8)
			w, rec := udpWorld(t, &Config{Policy: func(_ context.Context, r *Request) error {
				if r.DialedIP.IsValid() {
					dests <- r.Target
				}
				return nil
			}})
			conf := socksConf(t, w.l.Addr().(*net.TCPAddr), c.conf)
			msg := "a datagram from socat, through socksify and sockstap, to " + c.name
			// socksify runs sh, whose socat inherits the library: sh
			// gives socat its input, which socksify has no way to.
			script := fmt.Sprintf("printf '%%s' '%s' | exec %s -T 5 - UDP:%s", msg, socat,
				net.JoinHostPort(c.host, strconv.Itoa(echo.Port)))
			got := interop.Socksify(t, runCtx(t), conf, "sh", "-c", script)
			assert.Equal(t, msg, string(got))
			r := rec.wait(t, decided(DecisionAssociate))
			assert.EqualValues(t, 1, r.DatagramsUp)
			assert.EqualValues(t, 1, r.DatagramsDown)
			assert.EqualValues(t, len(msg), r.BytesDown)
			assert.Equal(t, c.target, <-dests)
		})
	}
}
