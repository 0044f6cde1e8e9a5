package main

import (
	"bytes"
	"net"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sockstap/sockstap/internal/sockstest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func runSend(args ...string) (stdout, stderr string, code int) {
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestUDPSend(t *testing.T) {
	proxy := sockstest.StartUDPProxy(t)
	echo := sockstest.EchoUDP(t)

	t.Run("an answer through the proxy", func(t *testing.T) {
		out, errOut, code := runSend("-proxy", "socks5://"+proxy.Addr, echo.String(), "ping")
		assert.Equal(t, 0, code, errOut)
		assert.Equal(t, "ping\n", out)
		assert.Equal(t, "answer from "+echo.String()+"\n", errOut)
		assert.Equal(t, 1, proxy.Associations())
	})
	t.Run("a name the proxy resolves", func(t *testing.T) {
		out, errOut, code := runSend("-proxy", "socks5h://"+proxy.Addr, "localhost:"+strconv.Itoa(echo.Port), "by name")
		assert.Equal(t, 0, code, errOut)
		assert.Equal(t, "by name\n", out)
	})
	t.Run("through the environment's proxy", func(t *testing.T) {
		t.Setenv("ALL_PROXY", "socks5h://"+proxy.Addr)
		t.Setenv("NO_PROXY", "")
		out, errOut, code := runSend(echo.String(), "env")
		assert.Equal(t, 0, code, errOut)
		assert.Equal(t, "env\n", out)
	})
	t.Run("SOCKS4 has no UDP", func(t *testing.T) {
		out, errOut, code := runSend("-proxy", "socks4://"+proxy.Addr, echo.String(), "x")
		assert.Equal(t, 1, code)
		assert.Empty(t, out)
		assert.Contains(t, errOut, "socks4 has no UDP ASSOCIATE command (use socks5 or socks5h)")
	})
	t.Run("no answer", func(t *testing.T) {
		// A loopback port where nothing listens: the datagram goes nowhere.
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		require.NoError(t, err)
		nowhere := c.LocalAddr().String()
		require.NoError(t, c.Close())
		out, errOut, code := runSend("-proxy", "socks5://"+proxy.Addr, "-timeout", "50ms", nowhere, "x")
		assert.Equal(t, 1, code)
		assert.Empty(t, out)
		assert.Contains(t, errOut, "i/o timeout")
	})
	t.Run("usage", func(t *testing.T) {
		_, errOut, code := runSend("only-one-argument")
		assert.Equal(t, 2, code)
		assert.Contains(t, errOut, "usage: udpsend")
	})
}
