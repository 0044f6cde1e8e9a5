package interop

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// clientTimeout bounds each client program's run in these tests.
const clientTimeout = 10 * time.Second

func TestCurlSOCKS5Hostname(t *testing.T) {
	t.Parallel()
	body := "curl was here"
	port := origin(t, body)
	proxy := Microsocks(t, "", "")
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	// "localhost" is a name: with --socks5-hostname curl sends it to
	// microsocks to resolve.
	got := Run(t, ctx, "curl", "--silent", "--show-error", "--fail",
		"--socks5-hostname", proxy.String(), fmt.Sprintf("http://localhost:%d/", port))
	assert.Equal(t, body, string(got))
}

func TestNcatSOCKS5(t *testing.T) {
	t.Parallel()
	target := sockstest.Echo(t)
	proxy := Dante(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	msg := []byte("ncat through dante\n")
	// At the end of its input ncat half-closes; the echo server answers,
	// then closes, and ncat exits. (microsocks would not do here: it closes
	// both ways as soon as one side has finished sending.)
	got := RunInput(t, ctx, msg, "ncat", "--proxy", proxy.String(), "--proxy-type", "socks5",
		target.IP.String(), fmt.Sprint(target.Port))
	assert.Equal(t, string(msg), string(got))
}

func TestSocatSOCKS4A(t *testing.T) {
	t.Parallel()
	target := sockstest.Echo(t)
	proxy := SSHDynamic(t)
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	msg := []byte("socat through ssh -D\n")
	// socat sends the name "localhost" for ssh to resolve (SOCKS4a).
	got := RunInput(t, ctx, msg, "socat", "-t", "5", "-",
		fmt.Sprintf("SOCKS4A:%s:localhost:%d,socksport=%d", proxy.IP, target.Port, proxy.Port))
	assert.Equal(t, string(msg), string(got))
}

func TestProxychains(t *testing.T) {
	t.Parallel()
	t.Run("SOCKS5UserPass", func(t *testing.T) {
		t.Parallel()
		body := "proxychains, one hop"
		port := origin(t, body)
		proxy := Microsocks(t, "dave", "hunter2")
		conf := ProxychainsConf(t, false, Proxy{Type: "socks5", Addr: proxy, User: "dave", Password: "hunter2"})
		ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
		defer cancel()
		got := Proxychains(t, ctx, conf, "curl", "--silent", "--show-error", "--fail",
			"--noproxy", "*", fmt.Sprintf("http://127.0.0.1:%d/", port))
		assert.Equal(t, body, string(got))
	})
	t.Run("SOCKS4ThenSOCKS5/ProxyDNS", func(t *testing.T) {
		t.Parallel()
		body := "proxychains, two hops"
		port := origin(t, body)
		first, second := Dante(t, Options{}), Microsocks(t, "", "")
		conf := ProxychainsConf(t, true,
			Proxy{Type: "socks4", Addr: first},
			Proxy{Type: "socks5", Addr: second})
		ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
		defer cancel()
		// With proxy_dns curl never resolves "localhost": the name goes
		// through dante to microsocks, which resolves it.
		got := Proxychains(t, ctx, conf, "curl", "--silent", "--show-error", "--fail",
			"--noproxy", "*", fmt.Sprintf("http://localhost:%d/", port))
		assert.Equal(t, body, string(got))
	})
}

func TestTryReportsFailure(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
	defer cancel()
	// Port 1 on loopback has no listener: curl fails, with its message.
	out, err := Try(t, ctx, nil, "curl", "--silent", "--show-error", "http://127.0.0.1:1/")
	require.Error(t, err)
	assert.Empty(t, out)
	assert.Contains(t, err.Error(), "curl --silent --show-error http://127.0.0.1:1/")
	assert.Contains(t, err.Error(), "exit status 7", "curl's code for a refused connection")
	assert.Contains(t, err.Error(), "Failed to connect", "curl's standard error")
}

func TestTryTimeout(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	// socat waits for a connection that never comes: the
	// context ends it.
	_, err := Try(t, ctx, nil, "socat", "-u", "TCP-LISTEN:0,bind=127.0.0.1", "-")
	require.Error(t, err)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Less(t, time.Since(start), 5*time.Second)
}
