package interop

import (
	"context"
	"image"
	"image/color"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

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
