package interop

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
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
	t.Run("SOCKS4ThenSOCKS5", func(t *testing.T) {
		t.Parallel()
		body := "proxychains, two hops"
		port := origin(t, body)
		first, second := Dante(t, Options{}), Microsocks(t, "", "")
		conf := ProxychainsConf(t, false,
			Proxy{Type: "socks4", Addr: first},
			Proxy{Type: "socks5", Addr: second})
		ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
		defer cancel()
		got := Proxychains(t, ctx, conf, "curl", "--silent", "--show-error", "--fail",
			"--noproxy", "*", fmt.Sprintf("http://127.0.0.1:%d/", port))
		assert.Equal(t, body, string(got))
	})
}

// TestProxychainsProxyDNS checks what ProxychainsConf's proxyDNS changes:
// with it, a name that resolves nowhere reaches the proxy, a SOCKS5 server
// of the test's own that takes the name for the origin's address; without
// it, curl fails to resolve the name and the proxy hears nothing.
func TestProxychainsProxyDNS(t *testing.T) {
	t.Parallel()
	const name = "origin.sockstap.invalid" // RFC 6761: resolves nowhere
	body := "reached by name"
	port := origin(t, body)
	url := fmt.Sprintf("http://%s:%d/", name, port)

	var mu sync.Mutex
	var asked []socks5.Addr
	proxy := sockstest.Serve(t, func(c net.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
		defer cancel()
		sess, err := socks5.ServerHandshake(ctx, c, nil)
		if err != nil {
			return
		}
		mu.Lock()
		asked = append(asked, sess.Request.Addr)
		mu.Unlock()
		if sess.Request.Addr.Name != name {
			sess.Reply(socks5.HostUnreachable, socks5.Addr{})
			return
		}
		up, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", sess.Request.Addr.Port), stepTimeout)
		if err != nil {
			sess.Reply(socks5.ReplyFor(err), socks5.Addr{})
			return
		}
		defer up.Close()
		bound, _ := socks5.AddrFromNet(up.LocalAddr())
		if sess.Reply(socks5.Succeeded, bound) != nil {
			return
		}
		sent := make(chan struct{})
		go func() {
			io.Copy(up, c)
			up.(*net.TCPConn).CloseWrite()
			close(sent)
		}()
		io.Copy(c, up)
		c.Close()
		<-sent
	})
	requests := func() []socks5.Addr {
		mu.Lock()
		defer mu.Unlock()
		return append([]socks5.Addr(nil), asked...)
	}

	t.Run("On", func(t *testing.T) {
		conf := ProxychainsConf(t, true, Proxy{Type: "socks5", Addr: proxy})
		ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
		defer cancel()
		got := Proxychains(t, ctx, conf, "curl", "--silent", "--show-error", "--fail", "--noproxy", "*", url)
		assert.Equal(t, body, string(got))
		assert.Equal(t, []socks5.Addr{{Name: name, Port: uint16(port)}}, requests())
	})
	t.Run("Off", func(t *testing.T) {
		before := len(requests())
		conf := ProxychainsConf(t, false, Proxy{Type: "socks5", Addr: proxy})
		ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
		defer cancel()
		_, err := Try(t, ctx, nil, "proxychains4", "-q", "-f", conf,
			"curl", "--silent", "--show-error", "--noproxy", "*", url)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "exit status 6", "curl's code for a name it could not resolve")
		assert.Len(t, requests(), before, "the proxy was asked")
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
