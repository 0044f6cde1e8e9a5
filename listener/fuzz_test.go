package listener

import (
	"context"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// pipeListener is a listener whose connections are in-memory pipes handed
// to it by the test.
type pipeListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{conns: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

// dial hands the listener a new connection and returns the client's end.
func (l *pipeListener) dial() net.Conn {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
	case <-l.closed:
		server.Close()
	}
	return client
}

// pipeDialer dials in-memory echo servers. It resolves every name to a
// documentation address, in memory: the listener resolves names for a
// dialer that is not a *net.Dialer (GuardDialer), and a fuzz target
// touches no network.
type pipeDialer struct{ wg *sync.WaitGroup }

func (pipeDialer) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return []netip.Addr{netip.MustParseAddr("192.0.2.1")}, nil
}

func (d pipeDialer) DialContext(ctx context.Context, _, addr string) (net.Conn, error) {
	if a, err := socks5.ParseAddr(addr); err == nil && a.Port == 1 {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: io.EOF}
	}
	c, s := net.Pipe()
	d.wg.Go(func() {
		defer s.Close()
		s.SetDeadline(time.Now().Add(time.Second))
		io.Copy(s, s)
	})
	return c, nil
}

// FuzzServe feeds the listener's server side whatever the fuzzer makes,
// cut into up to three writes at points the fuzzer chooses: no input may
// panic a connection's goroutine, and every connection must end.
func FuzzServe(f *testing.F) {
	seeds := [][]byte{
		{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 80, 'h', 'i'},
		{5, 1, 2, 1, 5, 'a', 'l', 'i', 'c', 'e', 3, 'p', 'w', 'd', 5, 1, 0, 3, 4, 'h', 'o', 's', 't', 0, 80},
		{5, 2, 0, 2, 5, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1},
		{5, 1, 0, 5, 3, 0, 1, 0, 0, 0, 0, 0, 0},
		{5, 1, 0, 5, 1, 0, 9, 1, 2, 3},
		{4, 1, 0, 80, 127, 0, 0, 1, 'f', 'r', 'e', 'd', 0, 'G', 'E', 'T', ' ', '/'},
		{4, 1, 0, 80, 0, 0, 0, 1, 0, 'e', 'x', '.', 't', 'e', 's', 't', 0},
		{4, 2, 0, 1, 1, 2, 3, 4, 0},
		{4, 3, 0, 80, 127, 0, 0, 1, 0},         // a SOCKS4 code SOCKS4 does not have
		{5, 1, 2, 1, 0, 4, 'p', 'a', 's', 's'}, // RFC 1929 with an empty username
		[]byte("GET / HTTP/1.1\r\n\r\n"),
		{5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0, 1},
		{5, 0},
		{4},
		{},
	}
	for _, s := range seeds {
		f.Add(s, uint16(1), uint16(3), uint16(9))
	}
	f.Fuzz(func(t *testing.T, data []byte, c1, c2, c3 uint16) {
		logger, logs := sockstest.NewLogger()
		creds := socks5.NewCredentials(map[string]string{"alice": "pwd"})
		var echoes sync.WaitGroup
		pl := newPipeListener()
		l := Wrap(pl, &Config{
			Dialer: pipeDialer{&echoes},
			Methods: []socks5.ServerMethod{
				socks5.UserPassServer{Check: creds.Check}, socks5.NoAuth{},
			},
			Policy: func(_ context.Context, r *Request) error {
				if r.Target.Port == 7 {
					return Deny("port 7")
				}
				return nil
			},
			Tap: func(r *Request, peek func(int) []byte) bool {
				return r.Target.Port == 80 && IsHTTP(peek(4))
			},
			HandshakeTimeout: 200 * time.Millisecond,
			SniffTimeout:     5 * time.Millisecond,
			PeekTimeout:      5 * time.Millisecond,
			IdleTimeout:      time.Second,
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
				c.SetDeadline(time.Now().Add(time.Second))
				io.Copy(io.Discard, c)
				c.Close()
			}
		}()

		client := pl.dial()
		client.SetDeadline(time.Now().Add(2 * time.Second))
		read := make(chan struct{})
		go func() {
			defer close(read)
			io.Copy(io.Discard, client)
		}()
		cuts := []int{int(c1), int(c2), int(c3)}
		prev := 0
		for _, c := range cuts {
			c = min(max(c, prev), len(data))
			if _, err := client.Write(data[prev:c]); err != nil {
				break
			}
			prev = c
		}
		client.Write(data[prev:])
		client.Close()
		<-read

		done := make(chan struct{})
		go func() {
			l.Close()
			<-accepted
			echoes.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("the listener did not close in time")
		}
		for _, r := range logs.All() {
			if r["msg"] == "socks panic" {
				t.Fatalf("panic serving %q: %s\n%s", data, r["cause"], r["stack"])
			}
		}
	})
}
