package interop

import (
	"context"
	"image"
	"image/color"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Chromium renders a page from loopback: its DOM comes back, and the
// screenshot is a PNG of the window's size in the page's colours.
func TestChromiumRendersPage(t *testing.T) {
	Need(t, "chromium", "chromium")
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, `<!doctype html><html><body style="margin:0;background:#1040c0"><p id="m">rendered by chromium</p></body></html>`)
	}))
	t.Cleanup(page.Close)
	shot := filepath.Join(t.TempDir(), "page.png")
	dom := Chromium(t, context.Background(), page.URL+"/", Browse{Screenshot: shot, Width: 320, Height: 200})
	assert.Contains(t, dom, `<p id="m">rendered by chromium</p>`)
	img := ReadPNG(t, shot)
	require.Equal(t, image.Rect(0, 0, 320, 200), img.Bounds())
	assert.Equal(t, color.RGBA{0x10, 0x40, 0xc0, 0xff}, color.RGBAModel.Convert(img.At(300, 190)), "the page's background")
}

// A Chromium that hangs (here on a proxy that accepts and never answers)
// is killed, with every process it started, when its context ends, and
// the test is failed.
func TestChromiumHangKilled(t *testing.T) {
	Need(t, "chromium", "chromium")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	held := make(chan net.Conn, 64)
	t.Cleanup(func() {
		ln.Close()
		for {
			select {
			case c := <-held:
				c.Close()
			default:
				return
			}
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			select {
			case held <- c: // held open, never answered
			default:
				c.Close()
			}
		}
	}()
	proxy := "http://" + ln.Addr().String()
	rec := &recorder{TB: t}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	start := time.Now()
	Chromium(rec, ctx, "http://localhost:8080/", Browse{Proxy: proxy})
	assert.Less(t, time.Since(start), stepTimeout+3*time.Second)
	assert.Contains(t, rec.failed, "context deadline exceeded")
	assert.Empty(t, processesWith(t, "--proxy-server="+proxy), "no process of that Chromium is left")
}

// processesWith returns the ids of the live processes whose command line
// has arg.
func processesWith(t *testing.T, arg string) []string {
	t.Helper()
	dirs, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var pids []string
	for _, d := range dirs {
		cmdline, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue // not a process, gone, or a zombie
		}
		for a := range strings.SplitSeq(string(cmdline), "\x00") {
			if a == arg {
				pids = append(pids, d.Name())
			}
		}
	}
	return pids
}

// A page Chromium cannot load fails the test with Chromium's error, though
// Chromium shows its error page and exits 0.
func TestChromiumLoadError(t *testing.T) {
	Need(t, "chromium", "chromium")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := ln.Addr().String()
	ln.Close()
	rec := &recorder{TB: t}
	Chromium(rec, context.Background(), "http://"+closed+"/", Browse{})
	// ERR_CONNECTION_REFUSED, or ERR_INTERNET_DISCONNECTED on a machine
	// with no network but loopback.
	assert.Regexp(t, `^interop: chromium could not load http://`+regexp.QuoteMeta(closed)+`/: ERR_[A-Z_]+$`, rec.failed)
}
