//go:build unix

package relay

import (
	"context"
	"io"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"
)

// BenchmarkShortRelay measures what a relay costs a short connection: each
// op opens a client's and a target's connection, relays one byte each way,
// and ends with the client's close, the target's close after it, and the
// relay's. It runs two ways in the same run:
//
//   - relay: Start;
//   - gocopy: io.Copy both ways on two goroutines, each half-close passed
//     on, both connections closed at the end: Go's own splice, the least a
//     relay between TCP connections can do.
//
// The test's client and target run in the process, the same on both ways,
// so differences in the CPU times reported (user-ns/op, sys-ns/op) are the
// relays'.
func BenchmarkShortRelay(b *testing.B) {
	ways := []struct {
		name  string
		start func(client, target net.Conn, done chan<- struct{})
	}{
		{"relay", func(client, target net.Conn, done chan<- struct{}) {
			Start(context.Background(), client, target, 10*time.Minute, func(f func()) { go f() },
				func(Result) { done <- struct{}{} })
		}},
		{"gocopy", func(client, target net.Conn, done chan<- struct{}) {
			var wg sync.WaitGroup
			pass := func(dst, src net.Conn) {
				io.Copy(dst, src)
				dst.(*net.TCPConn).CloseWrite()
			}
			wg.Go(func() { pass(target, client) })
			wg.Go(func() { pass(client, target) })
			go func() {
				wg.Wait()
				client.Close()
				target.Close()
				done <- struct{}{}
			}()
		}},
	}
	for _, way := range ways {
		b.Run(way.name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			dial := func() (near, far net.Conn) {
				near, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				far, err = ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				deadline := time.Now().Add(10 * time.Second)
				near.SetDeadline(deadline)
				return near, far
			}
			done := make(chan struct{}, 1)
			buf := make([]byte, 1)
			b.ReportAllocs()
			cpu := rusage()
			for b.Loop() {
				client, relayClient := dial()
				target, relayTarget := dial()
				way.start(relayClient, relayTarget, done)
				if _, err := client.Write([]byte{'x'}); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(target, buf); err != nil {
					b.Fatal(err)
				}
				if _, err := target.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(client, buf); err != nil {
					b.Fatal(err)
				}
				client.Close()
				if _, err := io.ReadAll(target); err != nil {
					b.Fatal(err)
				}
				target.Close()
				<-done
			}
			end := rusage()
			b.ReportMetric(float64(end.Utime.Nano()-cpu.Utime.Nano())/float64(b.N), "user-ns/op")
			b.ReportMetric(float64(end.Stime.Nano()-cpu.Stime.Nano())/float64(b.N), "sys-ns/op")
		})
	}
}

func rusage() syscall.Rusage {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru
}
