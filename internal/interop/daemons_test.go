package interop

import (
	"fmt"
	"net"
	"testing"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMicrosocks(t *testing.T) {
	t.Parallel()
	t.Run("NoAuth", func(t *testing.T) {
		t.Parallel()
		target := sockstest.Echo(t)
		proxy := Microsocks(t, "", "")
		stream, err := connect5(t, proxy, target)
		require.NoError(t, err)
		assertEcho(t, stream)
	})
	t.Run("UserPass", func(t *testing.T) {
		t.Parallel()
		target := sockstest.Echo(t)
		proxy := Microsocks(t, "alice", "wonderland")
		testUserPass(t, proxy, target, "alice", "wonderland")
	})
}

func TestDante(t *testing.T) {
	t.Parallel()
	t.Run("NoAuth", func(t *testing.T) {
		t.Parallel()
		target := sockstest.Echo(t)
		proxy := Dante(t, Options{})
		t.Run("SOCKS5", func(t *testing.T) {
			stream, err := connect5(t, proxy, target)
			require.NoError(t, err)
			assertEcho(t, stream)
		})
		t.Run("SOCKS4", func(t *testing.T) {
			assertEcho(t, connect4(t, proxy, target))
		})
	})
	t.Run("UserPass", func(t *testing.T) {
		t.Parallel()
		target := sockstest.Echo(t)
		proxy := Dante(t, Options{User: DanteUser, Password: DantePassword})
		testUserPass(t, proxy, target, DanteUser, DantePassword)
	})
}

// testUserPass checks a SOCKS5 server that requires the username and
// password user and pass: they pass, a wrong password fails, and a client
// that offers no authentication is refused.
func testUserPass(t *testing.T, proxy, target *net.TCPAddr, user, pass string) {
	t.Helper()
	t.Run("Right", func(t *testing.T) {
		stream, err := connect5(t, proxy, target, socks5.UserPassClient{Username: user, Password: pass})
		require.NoError(t, err)
		assertEcho(t, stream)
	})
	t.Run("WrongPassword", func(t *testing.T) {
		_, err := connect5(t, proxy, target, socks5.UserPassClient{Username: user, Password: pass + "-wrong"})
		assert.ErrorIs(t, err, socks5.ErrAuthFailed)
	})
	t.Run("NoAuthOffered", func(t *testing.T) {
		_, err := connect5(t, proxy, target, socks5.NoAuth{})
		assert.ErrorIs(t, err, socks5.ErrNoAcceptableMethod)
	})
}

func TestSSHDynamic(t *testing.T) {
	t.Parallel()
	target := sockstest.Echo(t)
	proxy := SSHDynamic(t)
	t.Run("SOCKS5", func(t *testing.T) {
		stream, err := connect5(t, proxy, target)
		require.NoError(t, err)
		assertEcho(t, stream)
	})
	t.Run("SOCKS4", func(t *testing.T) {
		assertEcho(t, connect4(t, proxy, target))
	})
}

func TestPrivoxy(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name    string
		forward func(t *testing.T) string
	}{
		{"SOCKS5/microsocks", func(t *testing.T) string {
			return ForwardSOCKS5(Microsocks(t, "", ""), "", "")
		}},
		{"SOCKS5UserPass/microsocks", func(t *testing.T) string {
			return ForwardSOCKS5(Microsocks(t, "bob", "builder"), "bob", "builder")
		}},
		{"SOCKS4a/ssh", func(t *testing.T) string {
			return ForwardSOCKS4a(SSHDynamic(t))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			body := "origin page for " + t.Name()
			port := origin(t, body)
			proxy := Privoxy(t, c.forward(t))
			assert.Equal(t, body, getVia(t, proxy, fmt.Sprintf("http://127.0.0.1:%d/page", port)))
		})
	}
}
