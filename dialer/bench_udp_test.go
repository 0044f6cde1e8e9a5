package dialer_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// startGateway builds examples/gateway and runs it with -udp on
// loopback (datagrams leaving from 127.0.0.1), in a process of its own,
// as danted runs in its own: on two shared cores, a relay inside the
// benchmark's process would share the Go scheduler with the clients and
// the echo server. It returns the gateway's address; b's cleanup stops it.
func startGateway(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "gateway")
	if out, err := exec.Command("go", "build", "-o", bin, "../examples/gateway").CombinedOutput(); err != nil {
		b.Fatalf("building the gateway: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-udp", "-udp-out", "127.0.0.1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		cmd.Wait()
	})
	// Its first record says where it listens; the rest (a record per
	// association) is drained.
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if _, rest, ok := strings.Cut(sc.Text(), "gateway listening\" addr="); ok {
				a, _, _ := strings.Cut(rest, " ")
				addr <- a
			}
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			b.Fatal("the gateway ended before it listened")
		}
		return a
	case <-time.After(wait):
		b.Fatal("the gateway did not start")
		return ""
	}
}

// udpPath is a way from a client's UDP socket to a loopback echo server:
// open returns a socket connected (directly, or through an association)
// to the echo server.
type udpPath struct {
	name string
	open func(b *testing.B, echo *net.UDPAddr) net.Conn
}

// udpPaths returns the paths the UDP benchmarks measure, in one run:
//
//   - direct: a connected UDP socket, no proxy;
//   - danted: a [dialer.PacketConn] through danted's relay;
//   - sockstap: the same, through examples/gateway's relay (a
//     listener.Listener with Config.UDP), in a process of its own.
//
// danted and the gateway start on first use.
func udpPaths(b *testing.B) []udpPath {
	var once sync.Once
	var danted string
	through := func(proxy func() string) func(b *testing.B, echo *net.UDPAddr) net.Conn {
		return func(b *testing.B, echo *net.UDPAddr) net.Conn {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			c, err := (&dialer.Dialer{Proxy: proxy()}).DialContext(ctx, "udp", echo.String())
			if err != nil {
				b.Fatal(err)
			}
			return c
		}
	}
	var oursOnce sync.Once
	var ours string
	return []udpPath{
		{"direct", func(b *testing.B, echo *net.UDPAddr) net.Conn {
			c, err := net.DialUDP("udp", nil, echo)
			if err != nil {
				b.Fatal(err)
			}
			return c
		}},
		{"danted", through(func() string {
			once.Do(func() { danted = interop.Dante(b, interop.Options{}).String() })
			return danted
		})},
		{"sockstap", through(func() string {
			oursOnce.Do(func() { ours = startGateway(b) })
			return ours
		})},
	}
}

// BenchmarkUDP measures datagrams through a UDP association, in round
// trips per second, one at a time: each op sends one datagram to a
// loopback echo server and reads it back, on each path of udpPaths. It
// logs the ratio of each proxied path to direct:
//
//	go test -run '^$' -bench 'UDP$' -benchtime 2s -v ./dialer
func BenchmarkUDP(b *testing.B) {
	echo := sockstest.EchoUDP(b)
	rates := map[string]float64{}
	for _, p := range udpPaths(b) {
		b.Run(p.name, func(b *testing.B) {
			c := p.open(b, echo)
			defer c.Close()
			msg := make([]byte, 512)
			buf := make([]byte, 2048)
			start := time.Now()
			for b.Loop() {
				c.SetDeadline(time.Now().Add(wait))
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
			rate := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "roundtrips/s")
			rates[p.name] = rate
		})
	}
	for _, name := range []string{"danted", "sockstap"} {
		if rates["direct"] > 0 && rates[name] > 0 {
			b.Logf("%s/direct = %.3f (%.0f vs %.0f round trips/s)", name, rates[name]/rates["direct"], rates[name], rates["direct"])
		}
	}
	if rates["danted"] > 0 && rates["sockstap"] > 0 {
		b.Logf("sockstap/danted = %.3f", rates["sockstap"]/rates["danted"])
	}
}

// The flow: each association keeps this many datagrams in flight, and
// takes a datagram for lost once none has come back for lossWait; a
// receiver takes the rest for lost once none has come for endWait.
const (
	inFlight = 32
	lossWait = 20 * time.Millisecond
	endWait  = 500 * time.Millisecond
)

// benchBuffer is the receive buffer of the flow's client sockets (the
// echo server's is as large): a burst of eight associations' datagrams
// in flight at once (256 of 1,400 bytes) overflows the default one, and
// would be lost before any relay saw them.
const benchBuffer = 4 << 20

// BenchmarkUDPFlow measures the rate of datagrams relayed with many in
// flight, and how many are lost: each op is one datagram sent to a
// loopback echo server and (unless lost) received back, on one of
// assocs associations (sockets, for direct) that each keep inFlight
// datagrams on their way, with payloads of size bytes. It reports
// datagrams/s (received back, each relayed both ways) and loss% (sent and
// not received), and logs, for each size and number of associations,
// the ratios of the paths' rates, measured in the same run:
//
//	go test -run '^$' -bench UDPFlow -benchtime 100000x -v ./dialer
func BenchmarkUDPFlow(b *testing.B) {
	echo := sockstest.EchoUDP(b)
	paths := udpPaths(b)
	type key struct {
		path         string
		size, assocs int
	}
	rates := map[key]float64{}
	losses := map[key]float64{}
	for _, size := range []int{64, 1400} {
		for _, assocs := range []int{1, 8} {
			for _, p := range paths {
				name := fmt.Sprintf("%s/size=%d/assocs=%d", p.name, size, assocs)
				b.Run(name, func(b *testing.B) {
					conns := make([]net.Conn, assocs)
					for i := range conns {
						conns[i] = p.open(b, echo)
						defer conns[i].Close()
						if rb, ok := conns[i].(interface{ SetReadBuffer(int) error }); ok {
							rb.SetReadBuffer(benchBuffer)
						}
					}
					b.ResetTimer()
					start := time.Now()
					sent, got := flow(b, conns, b.N, size)
					elapsed := time.Since(start)
					b.StopTimer()
					k := key{p.name, size, assocs}
					rates[k] = float64(got) / elapsed.Seconds()
					losses[k] = 100 * float64(sent-got) / float64(sent)
					b.ReportMetric(rates[k], "datagrams/s")
					b.ReportMetric(losses[k], "loss%")
				})
			}
		}
	}
	for _, size := range []int{64, 1400} {
		for _, assocs := range []int{1, 8} {
			d, dd, s := rates[key{"direct", size, assocs}], rates[key{"danted", size, assocs}], rates[key{"sockstap", size, assocs}]
			if d == 0 || dd == 0 || s == 0 {
				continue
			}
			b.Logf("size=%d assocs=%d: sockstap/danted = %.2f, sockstap/direct = %.2f, danted/direct = %.2f (datagrams/s: direct %.0f, danted %.0f, sockstap %.0f; loss%%: danted %.2f, sockstap %.2f)",
				size, assocs, s/dd, s/d, dd/d, d, dd, s,
				losses[key{"danted", size, assocs}], losses[key{"sockstap", size, assocs}])
		}
	}
}

// flow sends n datagrams of size bytes, spread over conns, each conn
// keeping inFlight on their way, and reads them back; it returns how many
// were sent and how many came back.
func flow(b *testing.B, conns []net.Conn, n, size int) (sent, got int64) {
	var wg sync.WaitGroup
	var nsent, ngot atomic.Int64
	for i, c := range conns {
		quota := n / len(conns)
		if i < n%len(conns) {
			quota++
		}
		if quota == 0 {
			continue
		}
		window := make(chan struct{}, inFlight)
		for range inFlight {
			window <- struct{}{}
		}
		wg.Go(func() { // the sender
			msg := make([]byte, size)
			timer := time.NewTimer(lossWait)
			defer timer.Stop()
			for range quota {
				select {
				case <-window:
				default:
					timer.Reset(lossWait)
					select {
					case <-window:
					case <-timer.C: // one lost, and its place in the window with it
					}
				}
				if _, err := c.Write(msg); err != nil {
					b.Error(err)
					return
				}
				nsent.Add(1)
			}
		})
		wg.Go(func() { // the receiver
			buf := make([]byte, 2048)
			for got := 0; got < quota; got++ {
				c.SetReadDeadline(time.Now().Add(endWait))
				if _, err := c.Read(buf); err != nil {
					if !deadline.IsTimeout(err) {
						b.Error(err)
					}
					return // the rest are lost
				}
				ngot.Add(1)
				select {
				case window <- struct{}{}:
				default:
				}
			}
		})
	}
	wg.Wait()
	return nsent.Load(), ngot.Load()
}
