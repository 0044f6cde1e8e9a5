package interop

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/sockstap/sockstap/socks5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stepTimeout bounds each exchange of a test with a daemon.
const stepTimeout = 5 * time.Second

// connect5 dials the SOCKS5 server at proxy and asks it, with our client
// handshake offering methods, to connect to target. It returns the
// connection, closed by the test's cleanup, and the stream that goes on to
// the target.
func connect5(t *testing.T, proxy, target *net.TCPAddr, methods ...socks5.ClientMethod) (io.ReadWriter, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", proxy.String())
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	req := socks5.Request{Command: socks5.CmdConnect, Addr: socks5.AddrFromAddrPort(target.AddrPort())}
	_, stream, err := socks5.ClientHandshake(ctx, c, req, methods...)
	if err != nil {
		return nil, err
	}
	require.NoError(t, c.SetDeadline(time.Now().Add(stepTimeout)))
	return stream, nil
}

// connect4 dials the SOCKS4 server at proxy and sends a CONNECT request to
// target, as raw bytes: VN 4, CD 1, DSTPORT, DSTIP, a user id and its NUL.
// It checks the 8-byte reply, VN 0 and CD 90 (granted), and returns the
// connection, which goes on to the target.
func connect4(t *testing.T, proxy, target *net.TCPAddr) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", proxy.String(), stepTimeout)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(stepTimeout)))
	ip := target.AddrPort().Addr().Unmap().As4()
	req := []byte{0x04, 0x01}
	req = binary.BigEndian.AppendUint16(req, target.AddrPort().Port())
	req = append(req, ip[:]...)
	req = append(req, "sockstap\x00"...)
	_, err = c.Write(req)
	require.NoError(t, err)
	reply := make([]byte, 8)
	_, err = io.ReadFull(c, reply)
	require.NoError(t, err, "reading the SOCKS4 reply")
	require.Equal(t, []byte{0x00, 0x5a}, reply[:2], "SOCKS4 reply % x: want VN 0, CD 90", reply)
	return c
}

// assertEcho sends a message over rw, which leads to a [sockstest.Echo]
// server, and asserts that the same bytes come back.
func assertEcho(t *testing.T, rw io.ReadWriter) {
	t.Helper()
	msg := []byte(fmt.Sprintf("hello through %s, %d", t.Name(), time.Now().UnixNano()))
	_, err := rw.Write(msg)
	require.NoError(t, err)
	got := make([]byte, len(msg))
	_, err = io.ReadFull(rw, got)
	require.NoError(t, err, "reading the echo")
	assert.Equal(t, string(msg), string(got))
}

// origin starts an HTTP server on loopback that answers every GET with
// body, and returns its port. It listens on 127.0.0.1 and, when the host
// has IPv6 loopback, on ::1 with the same port: a proxy that resolves
// "localhost" and tries only its first address finds it either way.
func origin(t *testing.T, body string) int {
	t.Helper()
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			http.Error(w, "GET only", http.StatusMethodNotAllowed)
			return
		}
		io.WriteString(w, body)
	})
	for range 5 {
		srv := httptest.NewServer(handler)
		port := srv.Listener.Addr().(*net.TCPAddr).Port
		ln6, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", port))
		switch {
		case err == nil:
			srv6 := &http.Server{Handler: handler}
			done := make(chan struct{})
			go func() { srv6.Serve(ln6); close(done) }()
			t.Cleanup(func() { srv6.Close(); <-done })
			t.Cleanup(srv.Close)
			return port
		case errors.Is(err, syscall.EADDRINUSE):
			srv.Close() // the port is someone else's on ::1: try another
		default:
			t.Cleanup(srv.Close) // no IPv6 loopback
			return port
		}
	}
	t.Fatalf("no port free on both 127.0.0.1 and ::1")
	return 0
}

// getVia fetches rawURL through the HTTP proxy at proxy and returns the
// body, after checking the status is 200.
func getVia(t *testing.T, proxy *net.TCPAddr, rawURL string) string {
	t.Helper()
	proxyURL := &url.URL{Scheme: "http", Host: proxy.String()}
	tr := &http.Transport{Proxy: http.ProxyURL(proxyURL), DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: stepTimeout}
	resp, err := client.Get(rawURL)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %s", b)
	return string(b)
}
