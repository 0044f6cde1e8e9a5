package httpgate

import (
	"context"
	"fmt"
	"html"
	"image"
	"image/color"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/listener"
)

// Headless Chromium loads a page from a loopback origin through the mixed
// port, once as a SOCKS5 client (the stream is tapped) and once as an HTTP
// proxy client. The page shows the Via field the origin received, so the
// DOM Chromium rendered proves the gateway carried the request; the
// gateway's access record says how it arrived; the screenshot, kept as a
// test artifact, is of the page in its own colours.
func TestChromium(t *testing.T) {
	interop.Need(t, "chromium", "chromium")
	var mu sync.Mutex
	hits := map[string]int{}
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
		if !strings.HasPrefix(r.URL.Path, "/page/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><html><head><title>sockstap</title></head>`+
			`<body style="margin:0;background:#20a050"><p id="via">origin saw Via: %s</p></body></html>`,
			html.EscapeString(r.Header.Get("Via")))
	})
	port := o.URL[strings.LastIndex(o.URL, ":")+1:]
	// Chromium asks for Google's hosts of its own accord: the policy
	// keeps the gateway from looking them up or going anywhere but the
	// origin.
	policy := func(_ context.Context, r *listener.Request) error {
		if r.Target.Name == "localhost" && strconv.Itoa(int(r.Target.Port)) == port {
			return nil
		}
		return listener.Deny("only the test's origin")
	}
	w := newWorld(t, &Gateway{Via: "gw", Policy: policy}, nil)

	for _, tc := range []struct {
		name, proxy string
		arrival     Arrival
	}{
		{"socks5", "socks5://" + w.addr, ArrivalSOCKS5},
		{"http", "http://" + w.addr, ArrivalProxy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// localhost: a name Chromium resolves to loopback, which its
			// SOCKS5 client sends to the proxy as it is, and which the
			// host rules keep it from looking up anywhere else.
			path := "/page/" + tc.name
			url := "http://localhost:" + port + path
			shot := filepath.Join(t.ArtifactDir(), "page.png")
			dom := interop.Chromium(t, context.Background(), url, interop.Browse{
				Proxy: tc.proxy, Screenshot: shot, Width: 480, Height: 320,
			})
			t.Logf("screenshot: %s", shot)

			assert.Contains(t, dom, `<p id="via">origin saw Via: 1.1 gw</p>`, "the page came through the gateway")
			rec := w.recordWhere(func(r *Record) bool { return r.URL == url })
			assert.Equal(t, tc.arrival, rec.Arrival)
			assert.Equal(t, "GET", rec.Method)
			assert.Equal(t, "localhost:"+port, rec.Target)
			assert.Equal(t, http.StatusOK, rec.Status)
			assert.Positive(t, rec.BytesDown)
			mu.Lock()
			assert.Equal(t, 1, hits[path], "the origin served the page once")
			mu.Unlock()

			img := interop.ReadPNG(t, shot)
			require.Equal(t, image.Rect(0, 0, 480, 320), img.Bounds())
			assert.Equal(t, color.RGBA{0x20, 0xa0, 0x50, 0xff}, color.RGBAModel.Convert(img.At(470, 310)),
				"the screenshot is of the page, in its background colour")
		})
	}
}
