package listener

// Benchmarks of the relay, each measured three ways in the same run:
//
//   - direct: the client connects to the target itself;
//   - baseline: through baselineRelay below, the least a SOCKS5 relay can
//     do (a fixed handshake, then io.Copy both ways): on two cores a relay
//     shares the CPU with the client and the target, so this, not a direct
//     connection, is the ceiling;
//   - listener: through a Listener that relays (Config.Dialer set), with
//     its defaults otherwise and a logger that discards. (The default
//     logger writes a record per connection to stderr.)
//
// Every path runs the same client code against the same loopback targets.
//
//   - BenchmarkThroughput/{path}/streams={1,8}: each op sends 1 MiB on each
//     stream to a sink; MB/s is the total over the streams, cpu-s/GiB the
//     CPU time (user and kernel) the process spent per GiB moved.
//   - BenchmarkCycle/clients={1,16,64}: each op is a whole short
//     connection on each path: dial, SOCKS5 greeting and CONNECT (none
//     when direct), one byte echoed, close. The paths take turns in one
//     benchmark, so that the load of shared cores falls on them alike,
//     and each reports its figures with its name
//     before the unit: {path}-cycles/s is the rate over all clients,
//     {path}-allocs/op and {path}-B/op the allocations of the process.
//   - BenchmarkIdleRelay/{path}: the server-side cost of an idle connection,
//     measured in a process of its own (the relay, or for direct the echo
//     target) while this one holds the clients' and the targets' ends:
//     RSS, heap, stacks, descriptors, pipes and goroutines per connection,
//     measured once the relays' pool of pipes has closed those lent back
//     (within idleSettle). Its ns/op is the time of one round (start the
//     process, open and measure idleConns connections), not a figure of
//     merit.
//
// Cycles and throughput also report the CPU time of the whole process
// (client, target and relay) per op, in user and kernel mode: on shared
// cores it is steadier than elapsed time.
//
// listener/bench.sh runs them all and prints the ratios:
//
//	listener/bench.sh                       # one run, default -benchtime
//	COUNT=5 listener/bench.sh               # five runs, ratios of the means
//
// One run is
//
//	go test ./listener -run '^$' -bench 'Throughput|Cycle|IdleRelay' | tee bench.txt

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/internal/relay"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

const (
	// benchTimeout bounds each connection of a cycle or an idle round, and
	// throughputTimeout each throughput stream: a benchmark that goes wrong
	// fails instead of hanging.
	benchTimeout      = 10 * time.Second
	throughputTimeout = 2 * time.Minute

	// throughputChunk is what one op sends on each stream.
	throughputChunk = 1 << 20

	// idleConns is how many idle connections BenchmarkIdleRelay opens at
	// once: enough for the per-connection cost to stand well above the
	// process's noise, few enough for two cores and a descriptor limit of
	// a few thousand (a relay holds six: two sockets, two pipes).
	idleConns = 256

	// idleSettle bounds the wait of BenchmarkIdleRelay's server process
	// for the relays' pool of pipes to close those lent back (see
	// TestIdleRelayServer).
	idleSettle = 5 * time.Second
)

// A benchPath is a way from a client to a target.
type benchPath struct {
	name  string
	proxy *net.TCPAddr // the relay; nil for direct
}

// benchPaths starts a baseline relay and a relaying Listener, stopped by
// b's cleanup, and returns the three paths.
func benchPaths(b *testing.B) []benchPath {
	return []benchPath{
		{name: "direct"},
		{name: "baseline", proxy: sockstest.Serve(b, baselineRelay)},
		{name: "listener", proxy: startBenchListener(b)},
	}
}

// startBenchListener starts a relaying Listener on loopback whose logger
// discards, closed by tb's cleanup.
func startBenchListener(tb testing.TB) *net.TCPAddr {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	l := Wrap(ln, &Config{Dialer: &net.Dialer{}, Logger: slog.New(slog.DiscardHandler)})
	tb.Cleanup(func() { l.Close() })
	return ln.Addr().(*net.TCPAddr)
}

// dial connects to target along the path, with a deadline of benchTimeout:
// through a relay, with a SOCKS5 greeting that offers no authentication
// and an IPv4 CONNECT, each sent once its answer to the previous one has
// come, as clients do.
func (p benchPath) dial(target *net.TCPAddr) (*net.TCPConn, error) {
	to := target
	if p.proxy != nil {
		to = p.proxy
	}
	c, err := net.DialTCP("tcp", nil, to)
	if err != nil {
		return nil, err
	}
	c.SetDeadline(time.Now().Add(benchTimeout))
	if p.proxy == nil {
		return c, nil
	}
	if err := connectFixed(c, target); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// connectFixed runs the client's side of a SOCKS5 handshake, no
// authentication and a CONNECT to an IPv4 target, on c.
func connectFixed(c *net.TCPConn, target *net.TCPAddr) error {
	var buf [10]byte
	if _, err := c.Write([]byte{5, 1, 0}); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf[:2]); err != nil {
		return fmt.Errorf("reading the method selection: %w", err)
	}
	if buf[0] != 5 || buf[1] != 0 {
		return fmt.Errorf("method selection % x", buf[:2])
	}
	ip := target.IP.To4()
	req := [10]byte{5, 1, 0, 1, ip[0], ip[1], ip[2], ip[3], byte(target.Port >> 8), byte(target.Port)}
	if _, err := c.Write(req[:]); err != nil {
		return err
	}
	if _, err := io.ReadFull(c, buf[:]); err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	if buf[0] != 5 || buf[1] != 0 || buf[3] != 1 {
		return fmt.Errorf("reply % x", buf)
	}
	return nil
}

// baselineRelay serves one connection as the least a SOCKS5 relay can: it
// reads a fixed greeting (version 5, one method, no authentication) and a
// fixed-size IPv4 CONNECT, dials, answers success, and copies both ways,
// passing each half-close on. io.Copy between two *net.TCPConn splices.
// No deadline, no policy, no log.
func baselineRelay(conn net.Conn) {
	client := conn.(*net.TCPConn)
	var buf [10]byte
	if _, err := io.ReadFull(client, buf[:3]); err != nil || [3]byte(buf[:3]) != [3]byte{5, 1, 0} {
		return
	}
	if _, err := client.Write([]byte{5, 0}); err != nil {
		return
	}
	if _, err := io.ReadFull(client, buf[:]); err != nil || [4]byte(buf[:4]) != [4]byte{5, 1, 0, 1} {
		return
	}
	target, err := net.DialTCP("tcp", nil, &net.TCPAddr{IP: net.IP(buf[4:8]), Port: int(buf[8])<<8 | int(buf[9])})
	if err != nil {
		return
	}
	defer target.Close()
	if _, err := client.Write([]byte{5, 0, 0, 1, 0, 0, 0, 0, 0, 0}); err != nil {
		return
	}
	done := make(chan struct{})
	go func() {
		io.Copy(target, client)
		target.CloseWrite()
		close(done)
	}()
	io.Copy(client, target)
	client.CloseWrite()
	<-done
}

// echoTarget writes back what it reads until the client closes. It reads
// and writes through a small buffer, rather than splicing as
// sockstest.Echo does, so that it holds no pipe and costs the cores little.
func echoTarget(c net.Conn) {
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// sinkTarget reads until the client closes its write side, then writes
// back how many bytes it read, as 8 bytes big-endian.
func sinkTarget(c net.Conn) {
	buf := make([]byte, 256<<10)
	var total uint64
	for {
		n, err := c.Read(buf)
		total += uint64(n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return
		}
	}
	c.Write(binary.BigEndian.AppendUint64(nil, total))
}

func BenchmarkThroughput(b *testing.B) {
	sink := sockstest.Serve(b, sinkTarget)
	for _, p := range benchPaths(b) {
		b.Run(p.name, func(b *testing.B) {
			for _, streams := range []int{1, 8} {
				b.Run("streams="+strconv.Itoa(streams), func(b *testing.B) {
					benchThroughput(b, p, sink, streams)
				})
			}
		})
	}
}

// benchThroughput opens streams connections to sink along p, then sends
// b.N chunks on each at once, and waits for the sink to count them all.
func benchThroughput(b *testing.B, p benchPath, sink *net.TCPAddr, streams int) {
	conns := make([]*net.TCPConn, streams)
	for i := range conns {
		c, err := p.dial(sink)
		require.NoError(b, err)
		defer c.Close()
		c.SetDeadline(time.Now().Add(throughputTimeout))
		conns[i] = c
	}
	data := make([]byte, throughputChunk)
	errs := make([]error, streams)
	var wg sync.WaitGroup
	b.SetBytes(int64(streams * throughputChunk))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i, c := range conns {
		wg.Go(func() { errs[i] = send(c, data, b.N) })
	}
	wg.Wait()
	used := cpu.report(b)
	b.StopTimer()
	require.NoError(b, errors.Join(errs...))
	gib := float64(b.N) * float64(streams*throughputChunk) / (1 << 30)
	b.ReportMetric(used.Seconds()/gib, "cpu-s/GiB")
}

// send writes data n times to c, closes c's write side, and checks the
// count the sink sends back.
func send(c *net.TCPConn, data []byte, n int) error {
	for range n {
		if _, err := c.Write(data); err != nil {
			return err
		}
	}
	if err := c.CloseWrite(); err != nil {
		return err
	}
	var got [8]byte
	if _, err := io.ReadFull(c, got[:]); err != nil {
		return fmt.Errorf("reading the sink's count: %w", err)
	}
	if sent, recv := uint64(n*len(data)), binary.BigEndian.Uint64(got[:]); recv != sent {
		return fmt.Errorf("sent %d bytes, the sink read %d", sent, recv)
	}
	return nil
}

func BenchmarkCycle(b *testing.B) {
	paths := benchPaths(b)
	// Each path its own target: the connections one leaves in TIME_WAIT
	// do not crowd another's ports.
	echoes := make([]*net.TCPAddr, len(paths))
	for i := range paths {
		echoes[i] = sockstest.Serve(b, echoTarget)
	}
	for _, clients := range []int{1, 16, 64} {
		b.Run("clients="+strconv.Itoa(clients), func(b *testing.B) {
			benchCycles(b, paths, echoes, clients)
		})
	}
}

// cycleRounds is how many turns each path takes in BenchmarkCycle (see
// benchCycles): a multiple of the paths, so that each path comes first,
// second and last as often.
const cycleRounds = 6

// cycleStats is what a path's cycles took, summed over its turns.
type cycleStats struct {
	elapsed       time.Duration
	cpu           cpuTime
	allocs, bytes uint64
}

// benchCycles runs b.N cycles along each path, to its echo target, from
// clients goroutines at once. The paths take turns, cycleRounds each
// (with -benchtime 1s, turns of about 50 ms), each round beginning with
// the next path, so that a change in the load of the shared cores, and a
// path's connections still closing when its turn ends, fall on every path
// alike. Each path reports its own figures, its name before the unit:
// listener-cycles/s, baseline-user-ns/op...
func benchCycles(b *testing.B, paths []benchPath, echoes []*net.TCPAddr, clients int) {
	stats := make([]cycleStats, len(paths))
	batch := max(clients, (b.N+cycleRounds-1)/cycleRounds)
	b.ResetTimer()
	for done, round := 0, 0; done < b.N; round++ {
		n := min(batch, b.N-done)
		for j := range paths {
			i := (round + j) % len(paths)
			require.NoError(b, stats[i].run(paths[i], echoes[i], clients, n))
		}
		done += n
	}
	b.StopTimer()
	for i, p := range paths {
		st, n := stats[i], float64(b.N)
		b.ReportMetric(n/st.elapsed.Seconds(), p.name+"-cycles/s")
		b.ReportMetric(float64(st.cpu.user)/n, p.name+"-user-ns/op")
		b.ReportMetric(float64(st.cpu.sys)/n, p.name+"-sys-ns/op")
		b.ReportMetric(float64(st.allocs)/n, p.name+"-allocs/op")
		b.ReportMetric(float64(st.bytes)/n, p.name+"-B/op")
	}
}

// run runs n cycles to echo along p, from clients goroutines at once, and
// adds what they took to st: elapsed and CPU time, and the allocations of
// the whole process (client, target and relay).
func (st *cycleStats) run(p benchPath, echo *net.TCPAddr, clients, n int) error {
	var next atomic.Int64
	errs := make([]error, clients)
	var wg sync.WaitGroup
	var mem0, mem1 runtime.MemStats
	runtime.ReadMemStats(&mem0)
	start := time.Now()
	cpu := startCPU()
	for i := range min(clients, n) {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if err := p.cycle(echo); err != nil {
					errs[i] = err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	used := startCPU()
	runtime.ReadMemStats(&mem1)
	st.elapsed += elapsed
	st.cpu.user += used.user - cpu.user
	st.cpu.sys += used.sys - cpu.sys
	st.allocs += mem1.Mallocs - mem0.Mallocs
	st.bytes += mem1.TotalAlloc - mem0.TotalAlloc
	return errors.Join(errs...)
}

// BenchmarkRelayDial measures a relay's dial of an IP address through a
// *net.Dialer, on loopback, the target accepting and closing: with the
// context package net alone sees (dialContext: the listener's, a request
// and a deadline), and with the context any other dialer gets (a timer's,
// around a request's), which a dialer of another type forwarding to the
// same *net.Dialer is given.
func BenchmarkRelayDial(b *testing.B) {
	target := sockstest.Serve(b, func(net.Conn) {})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(b, err)
	l := Wrap(ln, &Config{Dialer: &net.Dialer{}, Logger: slog.New(slog.DiscardHandler)})
	b.Cleanup(func() { l.Close() })
	ap := target.AddrPort()
	s := &session{l: l, request: Request{Version: 5, Command: socks5.CmdConnect,
		Target: socks5.Addr{IP: ap.Addr(), Port: ap.Port()}}}
	s.req = &s.request
	nd := &net.Dialer{}
	for _, d := range []struct {
		context string
		dialer  proxy.ContextDialer
	}{{"deadline", nd}, {"timer", forwardingDialer{nd}}} {
		b.Run("context="+d.context, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c, err := s.dial(d.dialer)
				require.NoError(b, err)
				c.Close()
			}
		})
	}
}

// forwardingDialer is a dialer of a type of its own that forwards to a
// *net.Dialer.
type forwardingDialer struct{ d *net.Dialer }

func (f forwardingDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return f.d.DialContext(ctx, network, address)
}

// cpuTime is the CPU time this process has used, in user and kernel mode.
type cpuTime struct{ user, sys time.Duration }

func startCPU() cpuTime {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return cpuTime{}
	}
	return cpuTime{time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())}
}

// report reports the CPU time used since c, per op: client, target and
// relay together, all in this process. The same client and target run on
// every path, so differences between paths are the relays'. On a machine
// whose cores are shared, CPU time is steadier than elapsed time. It
// returns the time, user and kernel together.
func (c cpuTime) report(b *testing.B) time.Duration {
	now := startCPU()
	n := float64(b.N)
	b.ReportMetric(float64(now.user-c.user)/n, "user-ns/op")
	b.ReportMetric(float64(now.sys-c.sys)/n, "sys-ns/op")
	return now.user - c.user + now.sys - c.sys
}

// cycle is one short connection to echo along p: dial (and handshake),
// one byte there and back, close.
func (p benchPath) cycle(echo *net.TCPAddr) error {
	c, err := p.dial(echo)
	if err != nil {
		return err
	}
	defer c.Close()
	return pingPong(c)
}

// pingPong sends one byte on c and reads it back.
func pingPong(c *net.TCPConn) error {
	buf := [1]byte{'x'}
	if _, err := c.Write(buf[:]); err != nil {
		return err
	}
	buf[0] = 0
	if _, err := io.ReadFull(c, buf[:]); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	if buf[0] != 'x' {
		return fmt.Errorf("echo %q, want %q", buf[0], 'x')
	}
	return nil
}

// idleChildEnv names the environment variable that makes the test binary
// the server process of BenchmarkIdleRelay; its value is the path. When
// idleHeapEnv names a directory, the server process records every
// allocation and writes its heap profile there, as path.heap, at each
// measurement: what the last one holds is what the connections hold.
// When idleNoGCEnv is set, the server process runs with the garbage
// collector off: what it frees, it frees without one.
const (
	idleChildEnv = "SOCKSTAP_IDLE_RELAY_SERVER"
	idleHeapEnv  = "SOCKSTAP_IDLE_RELAY_HEAP"
	idleNoGCEnv  = "SOCKSTAP_IDLE_RELAY_NO_GC"
)

func BenchmarkIdleRelay(b *testing.B) {
	n := idleConns
	// This process holds two descriptors a connection, the server process
	// up to six (it inherits the limit).
	if need := uint64(6*n + 64); !raiseFileLimit(need) {
		b.Skipf("the descriptor limit is below %d", need)
	}
	echo := sockstest.Serve(b, echoTarget)
	for _, path := range []string{"direct", "baseline", "listener"} {
		b.Run(path, func(b *testing.B) {
			var sum procStats
			rounds := 0
			b.ReportAllocs()
			for b.Loop() {
				d, err := idleRound(path, echo, n)
				require.NoError(b, err)
				sum = sum.add(d)
				rounds++
			}
			per := float64(rounds * n)
			b.ReportMetric(float64(sum.rssKiB)/per, "KiB/conn")
			b.ReportMetric(float64(sum.heapBytes)/1024/per, "heapKiB/conn")
			b.ReportMetric(float64(sum.stackBytes)/1024/per, "stackKiB/conn")
			b.ReportMetric(float64(sum.fds)/per, "fds/conn")
			b.ReportMetric(float64(sum.pipes)/per, "pipes/conn")
			b.ReportMetric(float64(sum.goroutines)/per, "goroutines/conn")
		})
	}
}

// raiseFileLimit raises the soft limit on open descriptors to need, when
// it is lower and the hard limit allows; it reports whether need fits.
func raiseFileLimit(need uint64) bool {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return false
	}
	if lim.Cur >= need {
		return true
	}
	if lim.Max < need {
		return false
	}
	lim.Cur = need
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) == nil
}

// idleRound starts a server process for path, opens n connections through
// it to echo (for direct, to the process's own echo target), moves a byte
// each way on each so that every copy is under way, and returns what the
// process holds beyond what it held before the connections, once the
// relays' pool of pipes is empty.
func idleRound(path string, echo *net.TCPAddr, n int) (procStats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	child, err := startIdleServer(ctx, path)
	if err != nil {
		return procStats{}, err
	}
	defer child.stop()
	p := benchPath{name: path, proxy: child.addr}
	if path == "direct" {
		p.proxy, echo = nil, child.addr
	}
	before, err := child.measure()
	if err != nil {
		return procStats{}, err
	}
	conns := make([]*net.TCPConn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := p.dial(echo)
		if err != nil {
			return procStats{}, err
		}
		conns = append(conns, c)
		if err := pingPong(c); err != nil {
			return procStats{}, err
		}
	}
	after, err := child.ask("settle")
	if err != nil {
		return procStats{}, err
	}
	return after.sub(before), nil
}

// procStats is what a process holds.
type procStats struct {
	rssKiB     int64 // resident set, VmRSS
	heapBytes  int64 // live heap objects
	stackBytes int64 // goroutine stacks
	fds        int64 // open descriptors
	pipes      int64 // pipes open, whose two ends are two of the descriptors
	goroutines int64
}

func (s procStats) add(t procStats) procStats {
	return procStats{s.rssKiB + t.rssKiB, s.heapBytes + t.heapBytes, s.stackBytes + t.stackBytes,
		s.fds + t.fds, s.pipes + t.pipes, s.goroutines + t.goroutines}
}

func (s procStats) sub(t procStats) procStats {
	return s.add(procStats{-t.rssKiB, -t.heapBytes, -t.stackBytes, -t.fds, -t.pipes, -t.goroutines})
}

func (s procStats) String() string {
	return fmt.Sprintf("%d %d %d %d %d %d", s.rssKiB, s.heapBytes, s.stackBytes, s.fds, s.pipes, s.goroutines)
}

func parseProcStats(line string) (procStats, error) {
	var s procStats
	_, err := fmt.Sscan(line, &s.rssKiB, &s.heapBytes, &s.stackBytes, &s.fds, &s.pipes, &s.goroutines)
	return s, err
}

// measureSelf returns what this process holds, after a garbage collection
// that also shrinks the goroutines' stacks and gives the freed memory back
// to the system, as a long-running server's would be in time; with
// collect false, as it is, with no collection.
func measureSelf(collect bool) (procStats, error) {
	// Each collection halves at most the stacks that use less than a
	// quarter of their size: a few bring them to where a long-running
	// server's are.
	if collect {
		for range 4 {
			runtime.GC()
		}
		debug.FreeOSMemory()
	}
	var s procStats
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &s.rssKiB); err != nil {
				return s, fmt.Errorf("VmRSS: %w", err)
			}
		}
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return s, err
	}
	s.fds = int64(len(fds))
	pipes := make(map[string]bool)
	for _, fd := range fds {
		if link, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(link, "pipe:") {
			pipes[link] = true
		}
	}
	s.pipes = int64(len(pipes))
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
	}
	metrics.Read(samples)
	s.heapBytes = int64(samples[0].Value.Uint64())
	s.stackBytes = int64(samples[1].Value.Uint64())
	s.goroutines = int64(runtime.NumGoroutine())
	return s, nil
}

// idleServer is a server process of BenchmarkIdleRelay.
type idleServer struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr *net.TCPAddr
}

// startIdleServer starts this test binary as the server process for path
// (TestIdleRelayServer), with env added to its environment, and reads the
// address it serves on.
func startIdleServer(ctx context.Context, path string, env ...string) (*idleServer, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestIdleRelayServer$", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(append(os.Environ(), idleChildEnv+"="+path), env...)
	cmd.Stderr = os.Stderr
	cmd.WaitDelay = benchTimeout
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &idleServer{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	line, err := s.line("addr ")
	if err != nil {
		s.stop()
		return nil, err
	}
	ap, err := net.ResolveTCPAddr("tcp", line)
	if err != nil {
		s.stop()
		return nil, err
	}
	s.addr = ap
	return s, nil
}

// line returns the rest of the next line of the process's output that
// begins with prefix.
func (s *idleServer) line(prefix string) (string, error) {
	for s.out.Scan() {
		if rest, ok := strings.CutPrefix(s.out.Text(), prefix); ok {
			return rest, nil
		}
	}
	if err := s.out.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("server process: no %q line", prefix)
}

// waitIdlePipes waits, for at most limit, until the relays' pool of pipes
// is empty: polled in memory, for a poll that read /proc would leave
// garbage that the measure after it may not wholly give back.
func waitIdlePipes(limit time.Duration) {
	deadline := time.Now().Add(limit)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for relay.IdlePipes() > 0 && time.Now().Before(deadline) {
		<-tick.C
	}
}

// measure returns what the process holds, after a garbage collection.
func (s *idleServer) measure() (procStats, error) { return s.ask("measure") }

// count returns what the process holds, with no garbage collection
// first: what a descriptor freed only by a finalizer would not show.
func (s *idleServer) count() (procStats, error) { return s.ask("count") }

func (s *idleServer) ask(cmd string) (procStats, error) {
	if _, err := io.WriteString(s.in, cmd+"\n"); err != nil {
		return procStats{}, err
	}
	line, err := s.line("stats ")
	if err != nil {
		return procStats{}, err
	}
	return parseProcStats(line)
}

// stop ends the process: it closes the process's input, which makes it
// stop serving and exit, and waits for it.
func (s *idleServer) stop() error {
	s.in.Close()
	return s.cmd.Wait()
}

// TestIdleRelayServer is no test: it is the server process that
// BenchmarkIdleRelay starts and measures, and skips unless started so. It
// serves the path the environment names on loopback, writes "addr" and its
// address, then for each "measure" or "count" line on its input writes
// "stats" and what it holds (see measureSelf), and for each "settle" line
// the same as for "measure" once the relays' pool of pipes is empty (see
// waitIdlePipes), until its input ends.
func TestIdleRelayServer(t *testing.T) {
	path := os.Getenv(idleChildEnv)
	if path == "" {
		t.Skip("the server process of BenchmarkIdleRelay")
	}
	if os.Getenv(idleNoGCEnv) != "" {
		debug.SetGCPercent(-1)
	}
	heapDir := os.Getenv(idleHeapEnv)
	if heapDir != "" {
		runtime.MemProfileRate = 1
	}
	var addr *net.TCPAddr
	switch path {
	case "direct":
		addr = sockstest.Serve(t, echoTarget)
	case "baseline":
		addr = sockstest.Serve(t, baselineRelay)
	case "listener":
		addr = startBenchListener(t)
	default:
		t.Fatalf("%s=%q: no such path", idleChildEnv, path)
	}
	fmt.Println("addr", addr)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		cmd := in.Text()
		if cmd != "measure" && cmd != "count" && cmd != "settle" {
			continue
		}
		if cmd == "settle" {
			waitIdlePipes(idleSettle)
		}
		collect := cmd != "count"
		s, err := measureSelf(collect)
		require.NoError(t, err)
		if collect && heapDir != "" {
			f, err := os.Create(filepath.Join(heapDir, path+".heap"))
			require.NoError(t, err)
			require.NoError(t, pprof.WriteHeapProfile(f))
			require.NoError(t, f.Close())
		}
		fmt.Println("stats", s)
	}
}
