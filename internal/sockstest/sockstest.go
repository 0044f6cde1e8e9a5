// Package sockstest holds what the packages' tests share: a scripted peer
// that plays one side of a conversation byte for byte, and loopback
// servers.
package sockstest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Timeout bounds every step of a script and every wait in the helpers: a
// test that goes wrong fails instead of hanging.
const Timeout = 10 * time.Second

// A Step is one move of a scripted peer.
type Step struct {
	expect []byte // read exactly these bytes
	send   []byte // write these bytes
	close  bool   // close the connection
	drain  bool   // read until the other side closes
}

// Expect is a step that reads len(b) bytes and fails unless they are b.
func Expect(b ...byte) Step { return Step{expect: b} }

// Send is a step that writes b in one Write.
func Send(b ...byte) Step { return Step{send: b} }

// Close is a step that closes the peer's end of the connection.
func Close() Step { return Step{close: true} }

// Drain is a step that reads and discards until the other side closes.
func Drain() Step { return Step{drain: true} }

// Join concatenates byte slices: a message built of parts, a message and
// the data behind it.
func Join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// Play plays script on one end of a synchronous in-memory connection
// (net.Pipe) in its own goroutine, and returns the other end for the code
// under test. wait blocks until the script has ended, and returns the
// first step that failed. The peer's end is closed when the script ends.
// The test's cleanup closes both ends and waits for the peer.
func Play(t testing.TB, script ...Step) (conn net.Conn, wait func() error) {
	t.Helper()
	mine, theirs := net.Pipe()
	return mine, PlayOn(t, mine, theirs, script...)
}

// PlayOn plays script on peer, the other end of conn, as [Play] does.
func PlayOn(t testing.TB, conn, peer net.Conn, script ...Step) (wait func() error) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		defer peer.Close()
		done <- run(peer, script)
	}()
	var err error
	var waited bool
	wait = func() error {
		if !waited {
			waited = true
			select {
			case err = <-done:
			case <-time.After(Timeout):
				err = errors.New("sockstest: script did not end in time")
			}
		}
		return err
	}
	t.Cleanup(func() {
		conn.Close()
		peer.Close()
		wait()
	})
	return wait
}

func run(c net.Conn, script []Step) error {
	for i, s := range script {
		c.SetDeadline(time.Now().Add(Timeout))
		switch {
		case s.expect != nil:
			got := make([]byte, len(s.expect))
			n, err := io.ReadFull(c, got)
			if err != nil {
				return fmt.Errorf("step %d: expected % x, read % x: %w", i, s.expect, got[:n], err)
			}
			if !bytes.Equal(got, s.expect) {
				return fmt.Errorf("step %d: expected % x, read % x", i, s.expect, got)
			}
		case s.send != nil:
			if _, err := c.Write(s.send); err != nil {
				return fmt.Errorf("step %d: sending % x: %w", i, s.send, err)
			}
		case s.close:
			return c.Close()
		case s.drain:
			if _, err := io.Copy(io.Discard, c); err != nil {
				return fmt.Errorf("step %d: draining: %w", i, err)
			}
		}
	}
	return nil
}

// Echo starts a TCP server on 127.0.0.1 that writes back whatever each
// connection sends, and closes its side once the client has closed its
// write side. The test's cleanup stops it and waits for its goroutines.
func Echo(t testing.TB) *net.TCPAddr {
	t.Helper()
	return Serve(t, func(c net.Conn) {
		io.Copy(c, c)
	})
}

// Serve starts a TCP server on 127.0.0.1 that runs handle on each
// connection in a goroutine of its own and closes it when handle returns.
// The test's cleanup stops the server, closes the connections still open
// and waits for every goroutine.
func Serve(t testing.TB, handle func(net.Conn)) *net.TCPAddr {
	t.Helper()
	return ServeOn(t, "127.0.0.1:0", handle)
}

// EchoOn is [Echo] on address, such as "[::1]:0" for IPv6 loopback.
func EchoOn(t testing.TB, address string) *net.TCPAddr {
	t.Helper()
	return ServeOn(t, address, func(c net.Conn) {
		io.Copy(c, c)
	})
}

// ServeOn is [Serve] on address, such as "[::1]:0" for IPv6 loopback.
func ServeOn(t testing.TB, address string, handle func(net.Conn)) *net.TCPAddr {
	t.Helper()
	ln, err := net.Listen("tcp", address)
	if err != nil {
		t.Fatalf("sockstest: %v", err)
	}
	var (
		mu     sync.Mutex
		live   = map[net.Conn]struct{}{}
		closed bool
		wg     sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if closed {
				mu.Unlock()
				c.Close()
				return
			}
			live[c] = struct{}{}
			mu.Unlock()
			wg.Go(func() {
				defer func() {
					mu.Lock()
					delete(live, c)
					mu.Unlock()
					c.Close()
				}()
				handle(c)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for c := range live {
			c.Close()
		}
		mu.Unlock()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(Timeout):
			t.Errorf("sockstest: server goroutines did not end in time")
		}
	})
	return ln.Addr().(*net.TCPAddr)
}
