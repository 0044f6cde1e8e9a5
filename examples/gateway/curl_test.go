package main

import (
	"bufio"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// curl through the mixed port, as the README shows it: as an HTTP proxy
// client; through SOCKS5 with the name sent to the proxy, into the tap,
// where the access log and Via prove the gateway served the request and a
// second fetch of a cacheable page is a hit that opens no connection to
// the origin; and through SOCKS5 to a server that does not speak HTTP,
// which is relayed.
func TestGatewayCurl(t *testing.T) {
	interop.Need(t, "curl", "curl")
	o := newPageOrigin(t)
	addr, logs := start(t)
	ctx := context.Background()

	t.Run("http proxy", func(t *testing.T) {
		out := string(interop.Run(t, ctx, "curl", "-sS", "-i", "-x", "http://"+addr, o.URL+"/x"))
		assert.Contains(t, out, `page /x, via "1.1 sockstap-`)
		assert.Contains(t, out, "\r\nVia: 1.1 sockstap-")
		logLine(t, logs, "msg=http ", "arrival=http-proxy", "url="+o.URL+"/x", "status=200")
	})

	t.Run("socks5-hostname into the tap", func(t *testing.T) {
		url := "http://localhost:" + o.port() + "/curl"
		out := string(interop.Run(t, ctx, "curl", "-sS", "-i", "--socks5-hostname", addr, url))
		assert.Contains(t, out, `page /curl, via "1.1 sockstap-`)
		assert.Contains(t, out, "\r\nVia: 1.1 sockstap-")
		logLine(t, logs, "msg=http ", "arrival=socks5", "url="+url, "target=localhost:"+o.port(), "status=200", "cache=miss")
		requests, conns := o.requests.Load(), o.conns.Load()

		again := string(interop.Run(t, ctx, "curl", "-sS", "-i", "--socks5-hostname", addr, url))
		_, body, _ := strings.Cut(out, "\r\n\r\n")
		_, body2, _ := strings.Cut(again, "\r\n\r\n")
		assert.Equal(t, body, body2)
		assert.Contains(t, again, "\r\nAge: ")
		logLine(t, logs, "msg=http ", "arrival=socks5", "url="+url, "cache=hit")
		assert.Equal(t, requests, o.requests.Load(), "the hit reached the origin")
		assert.Equal(t, conns, o.conns.Load(), "the hit opened a connection to the origin")
	})

	t.Run("socks5 to a server that is not HTTP", func(t *testing.T) {
		// A line server: it answers one line, then closes, which ends
		// curl's telnet session.
		server := sockstest.Serve(t, func(c net.Conn) {
			defer c.Close()
			line, err := bufio.NewReader(c).ReadString('\n')
			if err == nil {
				c.Write([]byte("you said: " + line))
			}
		})
		out := interop.RunInput(t, ctx, []byte("hello\n"), "curl", "-sS", "--socks5", addr, "telnet://"+server.String())
		assert.Equal(t, "you said: hello\n", string(out))
		logLine(t, logs, "msg=socks ", "version=socks5", "decision=relay", "target="+server.String())
	})
}
