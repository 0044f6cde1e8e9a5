package listener

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// serve runs Serve on a loopback port until the test ends, and returns
// the port's address.
func serve(t *testing.T, cfg *Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if cfg == nil {
		cfg = &Config{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, cfg) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(sockstest.Timeout):
			t.Error("Serve did not return")
		}
	})
	return ln.Addr().String()
}

// TestServeAnswersHTTP checks that an HTTP client that mistakes a SOCKS
// port for an HTTP proxy hears so, in HTTP, before the close: not an
// empty reply.
func TestServeAnswersHTTP(t *testing.T) {
	addr := serve(t, nil)

	t.Run("raw", func(t *testing.T) {
		for _, req := range []string{
			"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
			"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
			"HEAD / HTTP/1.0\r\n\r\n",
		} {
			c, err := net.Dial("tcp", addr)
			require.NoError(t, err)
			defer c.Close()
			c.SetDeadline(time.Now().Add(sockstest.Timeout))
			_, err = io.WriteString(c, req)
			require.NoError(t, err)
			resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: strings.Fields(req)[0]})
			require.NoError(t, err, "request %q", req)
			assert.Equal(t, http.StatusNotImplemented, resp.StatusCode)
			assert.True(t, resp.Close, "Connection: close")
			if resp.Request.Method != http.MethodHead {
				body, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				assert.Contains(t, string(body), "SOCKS")
			}
			waitClosed(t, c)
		}
	})

	t.Run("not HTTP is closed unanswered", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		require.NoError(t, err)
		defer c.Close()
		_, err = c.Write([]byte{0x16, 3, 1, 0, 5, 'h', 'e', 'l', 'l', 'o'})
		require.NoError(t, err)
		assert.Empty(t, waitClosed(t, c))
	})

	t.Run("curl", func(t *testing.T) {
		interop.Need(t, "curl", "curl")
		out, err := interop.Try(t, runCtx(t), nil, "curl", "--silent", "--show-error", "--noproxy", "",
			"--max-time", "10", "--write-out", "\n%{http_code}", "--proxy", "http://"+addr, "http://example.com/")
		require.NoError(t, err)
		assert.Contains(t, string(out), "SOCKS")
		assert.True(t, strings.HasSuffix(string(out), "\n501"), "curl saw %q", out)
	})
}
