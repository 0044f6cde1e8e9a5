package sockstest

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// AwaitRefused waits until nothing accepts connections on addr any more
// (a listener closed, a server stopping): it tries to connect, with a
// growing pause, at most 200 times and for at most Timeout, and fails the
// test if connections are still accepted then. A connection reset while
// it is being set up counts as accepted, and the next try decides.
func AwaitRefused(t testing.TB, addr string) {
	t.Helper()
	deadline := time.Now().Add(Timeout)
	delay := time.Millisecond
	for i := 0; i < 200 && time.Now().Before(deadline); i++ {
		c, err := net.DialTimeout("tcp", addr, Timeout)
		switch {
		case errors.Is(err, syscall.ECONNREFUSED):
			return
		case err == nil:
			c.Close()
		case !errors.Is(err, syscall.ECONNRESET):
			t.Fatalf("sockstest: connecting to %s: %v", addr, err)
		}
		pause := time.NewTimer(delay)
		<-pause.C
		delay = min(2*delay, 50*time.Millisecond)
	}
	t.Fatalf("sockstest: %s still accepts connections after %v", addr, Timeout)
}

// Echoes writes msg to c, which leads to an [Echo] server, and fails the
// test unless the same bytes come back.
func Echoes(t testing.TB, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("sockstest: writing to the echo: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("sockstest: reading the echo: %v (got %q)", err, got)
	}
	if string(got) != msg {
		t.Fatalf("sockstest: echoed %q, want %q", got, msg)
	}
}
