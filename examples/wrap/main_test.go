package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

func get(t *testing.T, client *http.Client, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(body)
}

// launch runs wrap with args on a free loopback port and returns its
// address, the function that stops it as a signal would, and the channel
// run's result comes on. The test's cleanup stops it, if the test has not.
func launch(t *testing.T, args ...string) (addr string, stop context.CancelFunc, done chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addrs := make(chan net.Addr, 1)
	done = make(chan error, 1)
	go func() {
		done <- run(ctx, append([]string{"-listen", "127.0.0.1:0"}, args...), io.Discard, func(a net.Addr) { addrs <- a })
	}()
	select {
	case a := <-addrs:
		return a.String(), cancel, done
	case err := <-done:
		t.Fatalf("wrap ended: %v", err)
	case <-time.After(sockstest.Timeout):
		t.Fatal("wrap did not start")
	}
	return "", nil, nil
}

// awaitEnd waits for run's result on done.
func awaitEnd(t *testing.T, done chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(sockstest.Timeout):
		t.Fatal("wrap did not stop")
		return nil
	}
}

func TestWrap(t *testing.T) {
	addr, stop, done := launch(t)
	t.Cleanup(func() {
		stop()
		assert.NoError(t, awaitEnd(t, done))
	})

	plain := &http.Client{Transport: &http.Transport{}, Timeout: sockstest.Timeout}
	assert.Equal(t, "hello, plain HTTP client: you asked for /x\n", get(t, plain, "http://"+addr+"/x"))

	// x/net's SOCKS5 client sends the name to the proxy: the server taps
	// the stream and answers for a site that does not exist.
	d, err := proxy.SOCKS5("tcp", addr, nil, proxy.Direct)
	require.NoError(t, err)
	socks := &http.Client{
		Transport: &http.Transport{DialContext: d.(proxy.ContextDialer).DialContext},
		Timeout:   sockstest.Timeout,
	}
	assert.Equal(t, "hello, socks5 client of nowhere.test:80: you asked nowhere.test for /y\n",
		get(t, socks, "http://nowhere.test/y"))
	plain.CloseIdleConnections()
	socks.CloseIdleConnections()
}

// TestWrapDrain stops wrap while a SOCKS stream that is not HTTP is being
// relayed: the listener stops accepting, the relay goes on moving bytes,
// and wrap ends once the relay has.
func TestWrapDrain(t *testing.T) {
	echo := sockstest.Echo(t)
	addr, stop, done := launch(t, "-relay", "-drain", "1m")
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(sockstest.Timeout)))
	_, _, err = socks5.ClientHandshake(context.Background(), c,
		socks5.Request{Command: socks5.CmdConnect, Addr: socks5.AddrFromAddrPort(echo.AddrPort())})
	require.NoError(t, err)
	sockstest.Echoes(t, c, "not HTTP, so relayed")

	stop()
	sockstest.AwaitRefused(t, addr)
	sockstest.Echoes(t, c, "still relayed while wrap stops")
	select {
	case err := <-done:
		t.Fatalf("wrap ended with a relay under way: %v", err)
	default:
	}
	require.NoError(t, c.(*net.TCPConn).CloseWrite())
	rest, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Empty(t, rest)
	assert.NoError(t, awaitEnd(t, done))
}
