package listener

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// descriptors counts the process's open file descriptors: pipes, and all
// the others.
func descriptors(t testing.TB) (pipes, others int) {
	t.Helper()
	entries, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	for _, e := range entries {
		target, err := os.Readlink("/proc/self/fd/" + e.Name())
		if err != nil {
			continue // the directory's own descriptor, closed by now
		}
		if strings.HasPrefix(target, "pipe:") {
			pipes++
		} else {
			others++
		}
	}
	return pipes, others
}

func needProc(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts descriptors in /proc/self/fd")
	}
}

// TestRelaySplices shows that a relay's copy runs between the raw TCP
// connections, so that the kernel splices: each direction waiting in
// splice(2) holds a pipe, and nothing else in the process makes pipes. It
// runs in a process of its own, which no earlier splice has left pipes in.
func TestRelaySplices(t *testing.T) {
	needProc(t)
	if os.Getenv("SOCKSTAP_SPLICE_CHILD") != "1" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRelaySplices$", "-test.v")
		cmd.Env = append(os.Environ(), "SOCKSTAP_SPLICE_CHILD=1")
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Contains(t, string(out), "--- PASS: TestRelaySplices")
		return
	}

	basePipes, _ := descriptors(t)
	// An echo server that copies through a buffer of its own: sockstest's
	// splices, and its pipes would count.
	echo := sockstest.Serve(t, func(c net.Conn) {
		buf := make([]byte, 512)
		for {
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
	})
	w := newWorld(t, &Config{Dialer: &net.Dialer{}})
	target, err := socks5.ParseAddr(echo.String())
	require.NoError(t, err)

	for i := 1; i <= 2; i++ {
		c := w.dial()
		// Greeting, request and data in one write: the listener reads the
		// data ahead with the handshake, and must still splice once it has
		// sent it on.
		msg := []byte{5, 1, 0}
		msg, err = socks5.Request{Command: socks5.CmdConnect, Addr: target}.AppendBinary(msg)
		require.NoError(t, err)
		msg = append(msg, "read ahead"...)
		_, err = c.Write(msg)
		require.NoError(t, err)
		_, err = socks5.ReadMethodSelection(c)
		require.NoError(t, err)
		_, err = socks5.ReadResponse(c)
		require.NoError(t, err)
		got := make([]byte, len("read ahead"))
		_, err = io.ReadFull(c, got)
		require.NoError(t, err)
		assert.Equal(t, "read ahead", string(got))

		// Both directions now wait in splice, a pipe (two descriptors)
		// each.
		want := basePipes + 4*i
		require.Eventually(t, func() bool {
			p, _ := descriptors(t)
			return p == want
		}, sockstest.Timeout, time.Millisecond, "relay %d: want %d pipe descriptors", i, want)
	}
}

// TestNoLeaks puts the listener under a mixed load, closes it, and finds
// the goroutines and descriptors as they were.
func TestNoLeaks(t *testing.T) {
	needProc(t)
	echo := sockstest.Echo(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	_, before := descriptors(t)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	logger, _ := sockstest.NewLogger()
	l := Wrap(ln, &Config{
		Dialer:           &net.Dialer{},
		Tap:              TapHTTP,
		PeekTimeout:      20 * time.Millisecond,
		SniffTimeout:     20 * time.Millisecond,
		HandshakeTimeout: 500 * time.Millisecond,
		Logger:           logger,
	})
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(sockstest.Timeout))
				io.Copy(io.Discard, c)
			}()
		}
	}()

	closedPort := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		defer ln.Close()
		return ln.Addr().String()
	}()
	kinds := []func(net.Conn) error{
		func(c net.Conn) error { // relayed and echoed
			a, _ := socks5.ParseAddr(echo.String())
			if _, _, err := socks5.ClientHandshake(context.Background(), c, socks5.Request{Command: socks5.CmdConnect, Addr: a}); err != nil {
				return err
			}
			if _, err := io.WriteString(c, "ping"); err != nil {
				return err
			}
			_, err := io.ReadFull(c, make([]byte, 4))
			return err
		},
		func(c net.Conn) error { // tapped
			a, _ := socks5.ParseAddr(echo.String())
			if _, _, err := socks5.ClientHandshake(context.Background(), c, socks5.Request{Command: socks5.CmdConnect, Addr: a}); err != nil {
				return err
			}
			_, err := io.WriteString(c, "GET / HTTP/1.1\r\n\r\n")
			return err
		},
		func(c net.Conn) error { // refused target
			// Tap peeks, so the reply comes before the dial: then the
			// connection closes.
			a, _ := socks5.ParseAddr(closedPort)
			_, _, err := socks5.ClientHandshake(context.Background(), c, socks5.Request{Command: socks5.CmdConnect, Addr: a})
			if err != nil {
				return err
			}
			if n, err := c.Read(make([]byte, 1)); err != io.EOF {
				return fmt.Errorf("read %d bytes, %v; want EOF", n, err)
			}
			return nil
		},
		func(c net.Conn) error { // plain
			_, err := io.WriteString(c, "not socks")
			return err
		},
		func(c net.Conn) error { // a handshake left half done
			_, err := c.Write([]byte{5, 1})
			return err
		},
		func(c net.Conn) error { // SOCKS4 relayed
			_, err := c.Write([]byte{4, 1, byte(echo.Port >> 8), byte(echo.Port), 127, 0, 0, 1, 0, 'x'})
			if err != nil {
				return err
			}
			_, err = io.ReadFull(c, make([]byte, 9))
			return err
		},
	}
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 60 {
		wg.Go(func() {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(sockstest.Timeout))
			if err := kinds[i%len(kinds)](c); err != nil {
				errs <- fmt.Errorf("kind %d: %w", i%len(kinds), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		assert.NoError(t, err)
	}

	require.NoError(t, l.Close())
	<-accepted
	require.Eventually(t, func() bool {
		_, after := descriptors(t)
		return after == before
	}, sockstest.Timeout, time.Millisecond, "descriptors other than pipes back to %d", before)
}
