package listener

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
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
