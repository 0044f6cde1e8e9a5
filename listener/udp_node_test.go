package listener

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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

// TestNodeSocksAssociate has npm's socks client (SocksClient, the SOCKS
// library of Node.js programs) make a UDP association with the listener,
// declaring the port it sends from, and send datagrams through it to an
// echo server, by address and by a name the listener resolves:
// listener/testdata/nodeudp/associate.mjs, whose package .ci/run installs
// with npm ci.
func TestNodeSocksAssociate(t *testing.T) {
	t.Parallel()
	node := interop.Need(t, "node", "nodejs")
	dir, err := filepath.Abs(filepath.Join("testdata", "nodeudp"))
	require.NoError(t, err)
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socks")); err != nil {
		interop.Missing(t, "npm's socks is not installed: cd listener/testdata/nodeudp && npm ci")
	}
	echo := sockstest.EchoUDP(t)
	for _, c := range []struct {
		name, host string
		target     socks5.Addr // the destination as the request named it
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
			proxy := w.l.Addr().(*net.TCPAddr)
			msgs := []string{"first", "second, a little longer", "third"}
			args := append([]string{filepath.Join(dir, "associate.mjs"), proxy.IP.String(), strconv.Itoa(proxy.Port),
				c.host, strconv.Itoa(echo.Port)}, msgs...)
			out := interop.Run(t, runCtx(t), node, args...)
			var got []string
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				var a struct {
					Data, Host string
					Port       int
				}
				require.NoError(t, json.Unmarshal(sc.Bytes(), &a), "%s", sc.Bytes())
				assert.Equal(t, echo.String(), net.JoinHostPort(a.Host, strconv.Itoa(a.Port)), "the header names the echo server")
				got = append(got, a.Data)
			}
			assert.Equal(t, msgs, got)
			r := rec.wait(t, decided(DecisionAssociate))
			assert.EqualValues(t, len(msgs), r.DatagramsUp)
			assert.EqualValues(t, len(msgs), r.DatagramsDown)
			assert.Equal(t, "127.0.0.1", r.Request.Target.IP.String(), "the client declared its address")
			assert.NotZero(t, r.Request.Target.Port)
			assert.NoError(t, r.Cause, "the client ended it")
			assert.Equal(t, c.target, <-dests, "the datagrams' destination, as the policy saw it")
		})
	}
}
