package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// relayTo opens a SOCKS5 relay through the gateway at addr to target.
func relayTo(t *testing.T, addr string, target *net.TCPAddr) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(sockstest.Timeout)))
	_, _, err = socks5.ClientHandshake(context.Background(), c,
		socks5.Request{Command: socks5.CmdConnect, Addr: socks5.AddrFromAddrPort(target.AddrPort())})
	require.NoError(t, err)
	return c.(*net.TCPConn)
}

// TestGatewayDrain stops a gateway with -drain while a relay is under
// way: new connections are refused at once, the relay goes on moving
// bytes both ways, and the gateway ends when the relay does.
func TestGatewayDrain(t *testing.T) {
	echo := sockstest.Echo(t)
	g := launch(t, "-drain", "1m")
	c := relayTo(t, g.addr, echo)
	sockstest.Echoes(t, c, "before the signal")

	g.stop()
	sockstest.AwaitRefused(t, g.addr)
	sockstest.Echoes(t, c, "while draining")
	select {
	case err := <-g.done:
		t.Fatalf("the gateway ended with a relay under way: %v", err)
	default:
	}

	require.NoError(t, c.CloseWrite())
	rest, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Empty(t, rest)
	require.NoError(t, g.wait(t))
	logs := g.logs.String()
	assert.Contains(t, logs, "gateway draining")
	assert.Contains(t, logs, "bytes_up=31 bytes_down=31", "the relay's record counts every byte")
	assert.NotContains(t, logs, "cause=", "the relay was cut")
}

// TestGatewayDrainEnds stops a gateway whose relay outlives -drain: the
// relay is closed when the drain ends, and so is the gateway.
func TestGatewayDrainEnds(t *testing.T) {
	echo := sockstest.Echo(t)
	g := launch(t, "-drain", "50ms")
	c := relayTo(t, g.addr, echo)
	sockstest.Echoes(t, c, "idle from now on")

	g.stop()
	require.NoError(t, g.wait(t))
	_, err := c.Read(make([]byte, 1))
	assert.Error(t, err, "the relay is closed")
	assert.Contains(t, g.logs.String(), `decision=relay reply=succeeded bytes_up=16 bytes_down=16`)
	assert.Contains(t, g.logs.String(), `cause="context canceled"`, "the relay's record says it was cut")
}

// TestGatewayNoDrain stops a gateway without -drain: its relays are
// closed at once.
func TestGatewayNoDrain(t *testing.T) {
	echo := sockstest.Echo(t)
	g := launch(t)
	c := relayTo(t, g.addr, echo)
	sockstest.Echoes(t, c, "hello")
	g.stop()
	require.NoError(t, g.wait(t))
	_, err := c.Read(make([]byte, 1))
	assert.Error(t, err, "the relay is closed")
	assert.False(t, strings.Contains(g.logs.String(), "draining"))
}

// TestGatewayDrainsEverything stops a gateway with -drain while a SOCKS
// relay, a CONNECT tunnel and a tapped HTTP request are under way: the
// port is closed at once, and each goes on to its end, whole.
func TestGatewayDrainsEverything(t *testing.T) {
	echo := sockstest.Echo(t)
	release := make(chan struct{})
	halfway := make(chan struct{})
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "first")
		w.(http.Flusher).Flush()
		close(halfway)
		select {
		case <-release:
			io.WriteString(w, "-last")
		case <-r.Context().Done():
		}
	}))
	defer origin.Close()
	g := launch(t, "-drain", "1m")

	relay := relayTo(t, g.addr, echo)
	sockstest.Echoes(t, relay, "relay before")
	tunnel := connectTo(t, g.addr, echo)
	sockstest.Echoes(t, tunnel, "tunnel before")
	download := make(chan string, 1)
	go func() {
		resp, err := socksClient(t, "socks5h://"+g.addr).Get(origin.URL + "/slow")
		if err != nil {
			download <- err.Error()
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		download <- fmt.Sprintf("%s %v", b, err)
	}()
	select {
	case <-halfway:
	case <-time.After(sockstest.Timeout):
		t.Fatal("the download did not begin")
	}

	g.stop()
	sockstest.AwaitRefused(t, g.addr)
	sockstest.Echoes(t, relay, "relay while draining")
	sockstest.Echoes(t, tunnel, "tunnel while draining")
	close(release)
	select {
	case got := <-download:
		assert.Equal(t, "first-last <nil>", got)
	case <-time.After(sockstest.Timeout):
		t.Fatal("the download did not end")
	}
	select {
	case err := <-g.done:
		t.Fatalf("the gateway ended with a relay and a tunnel under way: %v", err)
	default:
	}
	relay.Close()
	tunnel.Close()
	require.NoError(t, g.wait(t))
	logs := g.logs.String()
	assert.NotContains(t, logs, "cause=", "something was cut")
	assert.NotContains(t, logs, "tunnels closed")
	logLine(t, g.logs, "msg=http ", "arrival=connect", "status=200")
	logLine(t, g.logs, "msg=http ", "arrival=socks5", "url="+origin.URL+"/slow", "bytes_down=10")
}

// connectTo opens a CONNECT tunnel through the gateway's HTTP proxy at
// addr to target.
func connectTo(t *testing.T, addr string, target *net.TCPAddr) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	require.NoError(t, c.SetDeadline(time.Now().Add(sockstest.Timeout)))
	_, err = fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %[1]s\r\n\r\n", target)
	require.NoError(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Zero(t, br.Buffered())
	return c
}
