package listener

// Interop with npm's socks package, an independent client (its
// SocksClient, driven by internal/interop/node/socks/client.mjs): CONNECT
// and BIND, over SOCKS4 and SOCKS5, with bytes compared both ways.

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// Payload sizes: large enough to take several reads each way.
const (
	nodeUp   = 300 << 10
	nodeDown = 200 << 10
)

// readAllThenSend reads c to its end, sends down, and closes c: what the
// far end of a tunnel does in these tests, so that each half-close is
// needed for the exchange to finish. It returns what it read.
func readAllThenSend(c net.Conn, down []byte) ([]byte, error) {
	got, err := io.ReadAll(c)
	if err != nil {
		return got, err
	}
	if _, err := c.Write(down); err != nil {
		return got, err
	}
	return got, c.Close()
}

func TestNodeSocks(t *testing.T) {
	w, rec := bindWorld(t, &Config{Dialer: &net.Dialer{}})
	for _, version := range []int{5, 4} {
		t.Run(fmt.Sprintf("connect/socks%d", version), func(t *testing.T) {
			up, down := payload(uint64(version), nodeUp), payload(uint64(10+version), nodeDown)
			got := make(chan []byte, 1)
			far := sockstest.Serve(t, func(c net.Conn) {
				b, err := readAllThenSend(c, down)
				assert.NoError(t, err)
				got <- b
			})
			n := interop.StartNodeSocks(t, interop.NodeSocksOptions{
				Command: "connect", Version: version, Proxy: w.l.Addr().String(), Dest: far.String(), UserID: "node",
			})
			n.Next("established")
			_, err := n.Stdin.Write(up)
			require.NoError(t, err)
			require.NoError(t, n.Stdin.Close())
			assert.Equal(t, down, n.Output(), "the far end's bytes, through the tunnel")
			assert.Equal(t, up, <-got, "the client's bytes, at the far end")

			r := rec.wait(t, func(r *Record) bool { return r.Decision == DecisionRelay && r.Request.Version == version })
			assert.EqualValues(t, len(up), r.BytesUp)
			assert.EqualValues(t, len(down), r.BytesDown)
			assert.Equal(t, far.String(), r.Request.Target.String())
			if version == 4 {
				assert.Equal(t, "node", r.Request.User)
			}
		})

		t.Run(fmt.Sprintf("bind/socks%d", version), func(t *testing.T) {
			up, down := payload(uint64(20+version), nodeUp), payload(uint64(30+version), nodeDown)
			n := interop.StartNodeSocks(t, interop.NodeSocksOptions{
				Command: "bind", Version: version, Proxy: w.l.Addr().String(), Dest: "127.0.0.1:0", UserID: "node",
			})
			bound := n.Next("bound")
			first, err := netip.ParseAddrPort(bound.String())
			require.NoError(t, err, "%+v", bound)
			assert.Equal(t, netip.MustParseAddr("127.0.0.1"), first.Addr())
			peer := dialPeer(t, first)
			est := n.Next("established")
			assert.Equal(t, peer.LocalAddr().String(), est.String(), "the second reply names the peer")

			_, err = n.Stdin.Write(up)
			require.NoError(t, err)
			require.NoError(t, n.Stdin.Close())
			b, err := readAllThenSend(peer, down)
			require.NoError(t, err)
			assert.Equal(t, up, b, "the client's bytes, at the peer")
			assert.Equal(t, down, n.Output(), "the peer's bytes, at the client")

			r := rec.wait(t, func(r *Record) bool { return r.Decision == DecisionBind && r.Request.Version == version })
			assert.EqualValues(t, len(up), r.BytesUp)
			assert.EqualValues(t, len(down), r.BytesDown)
		})
	}

	// A peer other than the one named: npm's socks reports the refusal
	// in the second reply, by its code's name.
	for version, want := range map[int]string{
		5: "Socks5 Proxy rejected incoming bound connection - NotAllowed",
		4: "Socks4 Proxy rejected incoming bound connection - (Failed)", // socks names 91 Failed, 92 Rejected
	} {
		t.Run(fmt.Sprintf("bind refused/socks%d", version), func(t *testing.T) {
			n := interop.StartNodeSocks(t, interop.NodeSocksOptions{
				Command: "bind", Version: version, Proxy: w.l.Addr().String(), Dest: "127.0.0.2:0",
			})
			bound := n.Next("bound")
			first, err := netip.ParseAddrPort(bound.String())
			require.NoError(t, err)
			dialPeer(t, first)
			assert.Equal(t, want, n.Failure())
		})
	}
}
