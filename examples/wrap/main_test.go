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

func TestWrap(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0"}, io.Discard, func(a net.Addr) { addrs <- a })
	}()
	var addr string
	select {
	case a := <-addrs:
		addr = a.String()
	case err := <-done:
		t.Fatalf("wrap ended: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(sockstest.Timeout):
			t.Error("wrap did not stop")
		}
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
