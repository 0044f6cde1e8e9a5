package listener

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
)

// echoRelay opens a relay through w to an echo server, and checks that
// it echoes.
func echoRelay(t *testing.T, w *world) *net.TCPConn {
	t.Helper()
	c, _, err := w.connect5(sockstest.Echo(t).String())
	require.NoError(t, err)
	sockstest.Echoes(t, c, "first")
	return c
}

// TestCloseDuringShutdown closes the listener while a Shutdown waits for
// a relay, as an http.Server's Shutdown or the end of its Serve does:
// Close returns at once, and the relay goes on until it ends.
func TestCloseDuringShutdown(t *testing.T) {
	w := newWorld(t, &Config{Dialer: &net.Dialer{}})
	c := echoRelay(t, w)
	shut := make(chan error, 1)
	go func() { shut <- w.l.Shutdown(context.Background()) }()
	sockstest.AwaitRefused(t, w.l.Addr().String())

	closed := make(chan error, 1)
	go func() { closed <- w.l.Close() }()
	select {
	case err := <-closed:
		assert.NoError(t, err)
	case <-time.After(sockstest.Timeout):
		t.Fatal("Close waited for the relay that Shutdown lets run")
	}
	sockstest.Echoes(t, c, "after Close")
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a relay running", err)
	default:
	}
	require.NoError(t, c.CloseWrite())
	waitClosed(t, c)
	select {
	case err := <-shut:
		assert.NoError(t, err)
	case <-time.After(sockstest.Timeout):
		t.Fatal("Shutdown did not return once its relay ended")
	}
	_, err := w.l.Accept()
	assert.ErrorIs(t, err, net.ErrClosed)
}

// TestServeDrain ends Serve's context while it relays: with DrainTimeout
// it stops accepting and lets the relay finish; without, or once the
// drain is over, it closes the relay.
func TestServeDrain(t *testing.T) {
	serve := func(t *testing.T, cfg *Config) (*world, context.CancelFunc, chan error) {
		w := bareWorld(t, listen(t), cfg)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		done := make(chan error, 1)
		go func() { done <- Serve(ctx, w.l, nil) }()
		return w, cancel, done
	}
	ended := func(t *testing.T, done chan error) {
		t.Helper()
		select {
		case err := <-done:
			assert.NoError(t, err)
		case <-time.After(sockstest.Timeout):
			t.Fatal("Serve did not return")
		}
	}

	t.Run("Drains", func(t *testing.T) {
		w, stop, done := serve(t, &Config{Dialer: &net.Dialer{}, DrainTimeout: time.Minute})
		c := echoRelay(t, w)
		stop()
		sockstest.AwaitRefused(t, w.l.Addr().String())
		sockstest.Echoes(t, c, "while draining")
		select {
		case err := <-done:
			t.Fatalf("Serve returned %v with a relay running", err)
		default:
		}
		require.NoError(t, c.CloseWrite())
		waitClosed(t, c)
		ended(t, done)
		rec := w.logs.Wait(t, sockstest.Key("decision", "relay"))
		assert.Equal(t, "19", rec["bytes_up"], "first, while draining")
	})
	t.Run("DrainEnds", func(t *testing.T) {
		w, stop, done := serve(t, &Config{Dialer: &net.Dialer{}, DrainTimeout: 20 * time.Millisecond})
		c := echoRelay(t, w)
		stop()
		ended(t, done)
		waitClosed(t, c)
	})
	t.Run("NoDrain", func(t *testing.T) {
		w, stop, done := serve(t, &Config{Dialer: &net.Dialer{}})
		c := echoRelay(t, w)
		stop()
		ended(t, done)
		waitClosed(t, c)
	})
	t.Run("AnswersHTTP", func(t *testing.T) {
		// Serving a wrapped listener, Serve still answers what is not SOCKS.
		w, _, _ := serve(t, &Config{Dialer: &net.Dialer{}})
		c := w.dial()
		_, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		require.NoError(t, err)
		assert.Contains(t, string(waitClosed(t, c)), "501")
	})
}
