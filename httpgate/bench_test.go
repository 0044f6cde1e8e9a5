package httpgate

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkProxy compares, in one run, requests from 16 keep-alive
// clients for 1 KiB bodies: straight to the origin; through a minimal
// forward proxy built of httputil.ReverseProxy; through the gateway with
// every rule on (framing check, hop-by-hop fields, Via, policy, access
// record, a cache that finds the response not storable); and through the
// gateway answering fresh cache hits. Compare ns/op: gateway against
// reverseproxy, hit against origin. Client, proxy and origin run in this
// one process; cpu-ns/op is the CPU time they used together per request,
// user and kernel: on a machine whose cores are shared with other work it
// is steadier than ns/op, and on a machine the proxy has to itself the
// requests per second it allows are as its inverse. Each sub-benchmark
// starts with no idle connection left by another: the reverse proxy's
// and the gateway's to the origin, with their goroutines and buffers,
// made the sub-benchmarks after them use 5 to 10% more CPU per request.
//
//	go test -run XXX -bench Proxy -benchtime 20000x ./httpgate
func BenchmarkProxy(b *testing.B) {
	page := strings.Repeat("x", 1024)
	originAddr := serveBench(b, func(ln net.Listener) {
		http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/cacheable" {
				w.Header().Set("Cache-Control", "max-age=3600")
			} else {
				w.Header().Set("Cache-Control", "no-store")
			}
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, page)
		}))
	})
	originURL := "http://" + originAddr

	rpTransport := &http.Transport{MaxIdleConnsPerHost: 64}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = pr.In.URL
			pr.Out.Host = pr.In.Host
		},
		Transport: rpTransport,
	}
	rpAddr := serveBench(b, func(ln net.Listener) { http.Serve(ln, rp) })

	g := &Gateway{Cache: NewCache(64 << 20), Logger: slog.New(slog.DiscardHandler)}
	gwAddr := serveBench(b, func(ln net.Listener) {
		(&Server{Gateway: g}).Serve(context.Background(), ln)
	})

	run := func(b *testing.B, proxy, target string) {
		tr := &http.Transport{MaxIdleConnsPerHost: 16, DisableCompression: true}
		if proxy != "" {
			tr.Proxy = http.ProxyURL(&url.URL{Scheme: "http", Host: proxy})
		}
		defer tr.CloseIdleConnections()
		client := &http.Client{Transport: tr}
		b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
		b.ReportAllocs()
		b.ResetTimer()
		start := cpuUsed()
		defer func() { b.ReportMetric(float64(cpuUsed()-start)/float64(b.N), "cpu-ns/op") }()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := client.Get(target)
				if err != nil {
					b.Error(err)
					return
				}
				n, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if n != 1024 {
					b.Errorf("body of %d bytes", n)
					return
				}
			}
		})
	}
	b.Run("origin", func(b *testing.B) { run(b, "", originURL+"/") })
	b.Run("reverseproxy", func(b *testing.B) { run(b, rpAddr, originURL+"/") })
	rpTransport.CloseIdleConnections()
	b.Run("gateway", func(b *testing.B) { run(b, gwAddr, originURL+"/") })
	g.state().upstream.closeIdle()
	b.Run("hit", func(b *testing.B) { run(b, gwAddr, originURL+"/cacheable") })
	g.state().upstream.closeIdle()
}

// serveBench serves with serve on a loopback listener, closed when the
// benchmark ends.
func serveBench(b *testing.B, serve func(net.Listener)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go serve(ln)
	b.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// cpuUsed is the CPU time the process has used so far, user and kernel.
func cpuUsed() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
