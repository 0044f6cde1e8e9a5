package dialer_test

import (
	"context"
	"io"
	"net"
	"slices"
	"testing"

	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// startBareSOCKS5 starts the least SOCKS5 server that a dial needs: it
// accepts no authentication or any username and password, grants every
// CONNECT without connecting anywhere, and waits for the client to close.
// Both dialers of the benchmark dial it, so its costs, which the
// allocation counts include, are the same for both.
func startBareSOCKS5(tb testing.TB) string {
	tb.Helper()
	return sockstest.Serve(tb, func(c net.Conn) {
		var buf [512]byte
		read := func(n int) []byte {
			if _, err := io.ReadFull(c, buf[:n]); err != nil {
				panic(errAbort)
			}
			return buf[:n]
		}
		defer func() {
			if p := recover(); p != nil && p != errAbort {
				panic(p)
			}
		}()
		methods := read(int(read(2)[1]))
		if slices.Contains(methods, 2) {
			c.Write([]byte{5, 2})
			ulen := read(2)[1]
			plen := read(int(ulen) + 1)[ulen]
			read(int(plen))
			c.Write([]byte{1, 0})
		} else {
			c.Write([]byte{5, 0})
		}
		h := read(4)
		switch h[3] {
		case 1:
			read(4 + 2)
		case 4:
			read(16 + 2)
		case 3:
			read(int(read(1)[0]) + 2)
		}
		c.Write([]byte{5, 0, 0, 1, 127, 0, 0, 1, 0, 0})
		io.Copy(io.Discard, c)
	}).String()
}

var errAbort = &struct{ error }{}

// BenchmarkDial measures a dial and its SOCKS5 handshake, ours against
// golang.org/x/net/proxy's SOCKS5 dialer, in the same run, against the
// same in-process server: with and without a password, with a context
// that cannot end (context.Background) and one that can (as
// net/http's Transport passes).
func BenchmarkDial(b *testing.B) {
	server := startBareSOCKS5(b)
	auth := &proxy.Auth{User: "alice", Password: "secret"}
	type ctxDialer = func(context.Context, string, string) (net.Conn, error)
	xnet := func(auth *proxy.Auth) ctxDialer {
		d, err := proxy.SOCKS5("tcp", server, auth, proxy.Direct)
		if err != nil {
			b.Fatal(err)
		}
		return d.(proxy.ContextDialer).DialContext
	}
	ours := func(auth *proxy.Auth) ctxDialer {
		d := &dialer.Dialer{Proxy: server, Scheme: dialer.SOCKS5H}
		if auth != nil {
			d.Username, d.Password = auth.User, auth.Password
		}
		return d.DialContext
	}
	for _, a := range []struct {
		name string
		auth *proxy.Auth
	}{{"noauth", nil}, {"userpass", auth}} {
		for _, cancellable := range []bool{false, true} {
			ctxName := "background"
			if cancellable {
				ctxName = "cancellable"
			}
			for _, impl := range []struct {
				name string
				dial ctxDialer
			}{{"sockstap", ours(a.auth)}, {"xnet", xnet(a.auth)}} {
				b.Run(a.name+"/"+ctxName+"/"+impl.name, func(b *testing.B) {
					ctx := context.Background()
					if cancellable {
						var cancel context.CancelFunc
						ctx, cancel = context.WithCancel(ctx)
						defer cancel()
					}
					b.ReportAllocs()
					for b.Loop() {
						c, err := impl.dial(ctx, "tcp", "192.0.2.1:80")
						if err != nil {
							b.Fatal(err)
						}
						c.Close()
					}
				})
			}
		}
	}
}
