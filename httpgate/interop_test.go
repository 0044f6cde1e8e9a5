package httpgate

import (
	"context"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/interop"
)

// curl as an HTTP proxy client, through CONNECT to a TLS origin, and
// through SOCKS4a and SOCKS5h into the tap, where the gateway's access log
// and Via show that it served the request, and a second fetch of a
// cacheable page is a hit that opens no connection to the origin.
func TestCurl(t *testing.T) {
	interop.Need(t, "curl", "curl")
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprintf(w, "page %s via %q", r.URL.Path, r.Header.Get("Via"))
	})
	w := newWorld(t, &Gateway{Via: "gw", Cache: NewCache(1 << 20)}, nil)
	ctx := context.Background()
	port := o.URL[strings.LastIndex(o.URL, ":")+1:]

	t.Run("http proxy", func(t *testing.T) {
		out := interop.Run(t, ctx, "curl", "-sS", "-i", "-x", "http://"+w.addr, o.URL+"/x")
		assert.Contains(t, string(out), `page /x via "1.1 gw"`)
		assert.Contains(t, string(out), "Via: 1.1 gw")
	})

	t.Run("CONNECT to TLS", func(t *testing.T) {
		tlsOrigin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "secure %s", r.URL.Path)
		}))
		t.Cleanup(tlsOrigin.Close)
		ca := filepath.Join(t.TempDir(), "ca.pem")
		require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsOrigin.Certificate().Raw}), 0o600))
		out := interop.Run(t, ctx, "curl", "-sS", "-p", "-x", "http://"+w.addr, "--cacert", ca, tlsOrigin.URL+"/s")
		assert.Equal(t, "secure /s", string(out))
		assert.Equal(t, ArrivalConnect, w.recordWhere(func(r *Record) bool { return r.Arrival == ArrivalConnect }).Arrival)
	})

	for _, flag := range []string{"--socks4a", "--socks5-hostname"} {
		t.Run(flag, func(t *testing.T) {
			url := "http://localhost:" + port + "/tap" + flag
			conns := o.conns.Load()
			out := interop.Run(t, ctx, "curl", "-sS", "-i", flag, w.addr, url)
			assert.Contains(t, string(out), `via "1.1 gw"`)
			assert.Contains(t, string(out), "Via: 1.1 gw")
			want := map[string]string{"--socks4a": "socks4a", "--socks5-hostname": "socks5"}[flag]
			rec := w.logs.Wait(t, func(m map[string]string) bool { return m["msg"] == "http" && m["url"] == url })
			assert.Equal(t, want, rec["arrival"])
			assert.Equal(t, "miss", rec["cache"])
			assert.Equal(t, "localhost:"+port, rec["target"])

			out2 := interop.Run(t, ctx, "curl", "-sS", "-i", flag, w.addr, url)
			assert.Equal(t, body(out), body(out2))
			w.logs.Wait(t, func(m map[string]string) bool { return m["msg"] == "http" && m["url"] == url && m["cache"] == "hit" })
			assert.LessOrEqual(t, o.conns.Load(), conns+1, "the hit opened no new connection to the origin")
		})
	}
}

// body is what follows the header section of a response curl -i printed.
func body(out []byte) string {
	_, b, _ := strings.Cut(string(out), "\r\n\r\n")
	return b
}

// recordWhere waits for a record that match accepts.
func (w *world) recordWhere(match func(*Record) bool) *Record {
	w.t.Helper()
	for range 100 {
		w.mu.Lock()
		for _, rec := range w.records {
			if match(rec) {
				w.mu.Unlock()
				return rec
			}
		}
		w.mu.Unlock()
		w.record()
	}
	w.t.Fatal("no matching record")
	return nil
}
