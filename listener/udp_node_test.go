package listener

import (
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// TestNodeSocksAssociate has npm's socks client (SocksClient, the SOCKS
// library of Node.js programs), driven by internal/interop's NodeSocks,
// make a UDP association with the listener, declaring the address it
// sends from, and send datagrams through it to an echo server, by address
// and by a name the listener resolves.
func TestNodeSocksAssociate(t *testing.T) {
	t.Parallel()
	echo := sockstest.EchoUDP(t)
	for _, c := range []struct {
		name, host string
		target     socks5.Addr // the datagrams' destination, as the policy saw it
	}{
		{"address", "127.0.0.1", socks5.AddrFromAddrPort(echo.AddrPort())},
		{"name", "localhost", socks5.Addr{Name: "localhost", Port: uint16(echo.Port)}},
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
			n := interop.StartNodeSocks(t, interop.NodeSocksOptions{
				Command: "associate", Version: 5, Proxy: w.l.Addr().String(),
				Dest: net.JoinHostPort(c.host, strconv.Itoa(echo.Port)),
			})
			msgs := []string{"first", "second, a little longer", "third"}
			_, err := io.WriteString(n.Stdin, strings.Join(msgs, "\n")+"\n")
			require.NoError(t, err)
			require.NoError(t, n.Stdin.Close())
			relay := n.Next("established")
			assert.Equal(t, "127.0.0.1", relay.Host, "the relay is on the control connection's address")
			for range msgs {
				assert.Equal(t, echo.String(), n.Next("datagram").String(), "the header names the echo server")
			}
			assert.Equal(t, strings.Join(msgs, "\n")+"\n", string(n.Output()))
			r := rec.wait(t, decided(DecisionAssociate))
			assert.EqualValues(t, len(msgs), r.DatagramsUp)
			assert.EqualValues(t, len(msgs), r.DatagramsDown)
			assert.Equal(t, "127.0.0.1", r.Request.Target.IP.String(), "the client declared its address")
			assert.NotZero(t, r.Request.Target.Port)
			assert.NoError(t, r.Cause, "the client ended it")
			assert.Equal(t, c.target, <-dests)
		})
	}
}
