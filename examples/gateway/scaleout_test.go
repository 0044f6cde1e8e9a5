package main

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// buildGateway builds this command into the test's temporary directory
// and returns the program's path.
func buildGateway(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	require.NoError(t, err, "the go command, to build the gateway")
	bin := filepath.Join(t.TempDir(), "gateway")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goTool, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)
	return bin
}

// An origin is an HTTP server on 127.0.0.1 behind the gateways. /small is a
// short page; /big is bigSize bytes of noise, sent in two halves, the
// second once the test closes release.
type origin struct {
	addr     *net.TCPAddr
	halfway  chan struct{} // closed once /big's first half is sent
	release  chan struct{} // closed by the test: send the second half
	bigSum   [sha256.Size]byte
	bigBytes []byte
}

const (
	smallPage = "a small page\n"
	bigSize   = 8 << 20
)

func startOrigin(t *testing.T) *origin {
	t.Helper()
	o := &origin{halfway: make(chan struct{}), release: make(chan struct{})}
	o.bigBytes = make([]byte, bigSize)
	rand.NewChaCha8([32]byte{'s', 'o', 'c', 'k', 's', 't', 'a', 'p'}).Read(o.bigBytes)
	o.bigSum = sha256.Sum256(o.bigBytes)
	mux := http.NewServeMux()
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, smallPage) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(bigSize))
		w.Write(o.bigBytes[:bigSize/2])
		w.(http.Flusher).Flush()
		close(o.halfway)
		select {
		case <-o.release:
		case <-r.Context().Done():
			return
		case <-time.After(time.Minute):
			t.Error("origin: the second half was never released")
			return
		}
		w.Write(o.bigBytes[bigSize/2:])
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	o.addr = ln.Addr().(*net.TCPAddr)
	return o
}

func (o *origin) url(path string) string { return fmt.Sprintf("http://%s%s", o.addr, path) }

// A backend is one gateway process behind the balancer.
type backend struct {
	name string
	d    *interop.Daemon
	addr *net.TCPAddr
}

// sessions counts the gateway's records of sessions from client ip.
func (b *backend) sessions(ip string) int {
	return strings.Count(b.d.Output(), "msg=socks client="+ip+":")
}

// waitUntil checks cond with a growing pause, bounded in count and time,
// until it holds; it fails the test with what when it never does.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(sockstest.Timeout)
	delay := time.Millisecond
	for i := 0; i < 300 && time.Now().Before(deadline); i++ {
		if cond() {
			return
		}
		<-time.After(delay)
		delay = min(2*delay, 50*time.Millisecond)
	}
	t.Fatalf("timed out waiting: %s", what)
}

// TestScaleOut runs the README's recipe: two gateways behind HAProxy in
// mode tcp with send-proxy-v2. A client on 127.0.0.2 is the client the
// gateways log, not the balancer on 127.0.0.1; one gateway is drained with
// SIGTERM while it serves a download through SOCKS (tapped, as the
// gateway serves HTTP by default), which completes with every byte, while
// new connections go to the other.
func TestScaleOut(t *testing.T) {
	interop.Need(t, "haproxy", "haproxy")
	interop.Need(t, "curl", "curl")
	bin := buildGateway(t)
	o := startOrigin(t)

	var gws []*backend
	for _, name := range []string{"gateway1", "gateway2"} {
		d := interop.Start(t, name, bin, "-listen", "127.0.0.1:0", "-proxyproto", "127.0.0.1/32", "-drain", "1m")
		gws = append(gws, &backend{name: name, d: d, addr: d.Listen(t, 0)})
	}
	lb := interop.HAProxy(t, gws[0].addr, gws[1].addr)
	curl := func(ctx context.Context, args ...string) ([]byte, error) {
		return interop.Try(t, ctx, nil, "curl", append([]string{
			"-sS", "--fail", "--interface", "127.0.0.2", "--socks5", lb.String()}, args...)...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	t.Run("ClientAddress", func(t *testing.T) {
		for range 4 {
			out, err := curl(ctx, o.url("/small"))
			require.NoError(t, err)
			assert.Equal(t, smallPage, string(out))
		}
		waitUntil(t, "four sessions from 127.0.0.2 logged", func() bool {
			return gws[0].sessions("127.0.0.2")+gws[1].sessions("127.0.0.2") == 4
		})
		for _, gw := range gws {
			assert.Equal(t, 2, gw.sessions("127.0.0.2"), "%s: round robin", gw.name)
			assert.Zero(t, gw.sessions("127.0.0.1"), "%s logged the balancer as the client", gw.name)
		}
	})

	t.Run("Drain", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "big")
		before := make([]int, len(gws))
		for i, gw := range gws {
			before[i] = gw.sessions("127.0.0.2")
		}
		download := make(chan error, 1)
		go func() {
			_, err := curl(ctx, "-o", file, o.url("/big"))
			download <- err
		}()
		select {
		case <-o.halfway:
		case err := <-download:
			t.Fatalf("the download ended before its first half: %v", err)
		case <-ctx.Done():
			t.Fatal("the download never reached its first half")
		}
		// The carrier logged the download's SOCKS session when it tapped
		// it, and holds a connection to the origin.
		var carrier, other *backend
		for i, gw := range gws {
			if gw.sessions("127.0.0.2") > before[i] {
				carrier, other = gw, gws[1-i]
			}
		}
		require.NotNil(t, carrier, "no gateway logged the download's session")
		ok, err := carrier.d.ConnectedTo(o.addr)
		require.NoError(t, err)
		require.True(t, ok, "%s is not connected to the origin", carrier.name)
		t.Logf("%s carries the download: draining it", carrier.name)

		require.NoError(t, carrier.d.Signal(syscall.SIGTERM))
		waitUntil(t, carrier.name+" stops listening", func() bool {
			ok, err := carrier.d.Listening(carrier.addr)
			require.NoError(t, err)
			return !ok
		})
		others := other.sessions("127.0.0.2")
		for range 3 {
			out, err := curl(ctx, o.url("/small"))
			require.NoError(t, err, "a new connection while %s drains", carrier.name)
			assert.Equal(t, smallPage, string(out))
		}
		waitUntil(t, "three new sessions on "+other.name, func() bool {
			return other.sessions("127.0.0.2") == others+3
		})
		select {
		case <-carrier.d.Exited():
			t.Fatalf("%s exited with a relay under way:\n%s", carrier.name, carrier.d.Output())
		default:
		}

		close(o.release)
		select {
		case err := <-download:
			require.NoError(t, err, "the download through the drained gateway")
		case <-ctx.Done():
			t.Fatal("the download did not complete")
		}
		got, err := os.ReadFile(file)
		require.NoError(t, err)
		assert.Equal(t, bigSize, len(got))
		assert.Equal(t, o.bigSum, sha256.Sum256(got), "the download's checksum")

		wctx, wcancel := context.WithTimeout(ctx, sockstest.Timeout)
		defer wcancel()
		assert.NoError(t, carrier.d.Wait(wctx), "%s's exit", carrier.name)
		out := carrier.d.Output()
		assert.Contains(t, out, "gateway draining")
		assert.Contains(t, out, "gateway stopped")
		assert.NotContains(t, out, "context canceled", "a request was cut")
		assert.NotContains(t, out, "cause=", "a request was cut")
		served := regexp.MustCompile(`msg=http client=127\.0\.0\.2:\d+ .*arrival=socks5 .*url=` +
			regexp.QuoteMeta(o.url("/big")) + ` .*status=200 .*bytes_down=(\d+)`).FindStringSubmatch(out)
		require.NotNil(t, served, "the download's access record:\n%s", out)
		assert.Equal(t, strconv.Itoa(bigSize), served[1], "the access record counts the whole body")
	})
}
