package interop

import (
	"context"
	"testing"
)

// Socksify runs the client program name with args under socksify (Debian
// package dante-client), Dante's SOCKS client, with the client
// configuration at conf (socks.conf(5) syntax), as [Run] does, and returns
// its standard output. Its environment has SOCKS_CONF=conf and
// SOCKS_AUTOADD_LANROUTES=no: without that, socksify adds direct routes
// for the networks of the machine's interfaces, loopback among them, and
// so would send every loopback destination directly, past conf's routes.
func Socksify(t testing.TB, ctx context.Context, conf, name string, args ...string) []byte {
	t.Helper()
	out, err := TrySocksify(t, ctx, conf, name, args...)
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
	return out
}

// TrySocksify is [Socksify] returning the program's failure instead of
// failing the test, as [Try] does.
func TrySocksify(t testing.TB, ctx context.Context, conf, name string, args ...string) ([]byte, error) {
	t.Helper()
	env := []string{"SOCKS_CONF=" + conf, "SOCKS_AUTOADD_LANROUTES=no"}
	return tryEnv(t, ctx, nil, env, "socksify", append([]string{program(t, name)}, args...)...)
}
