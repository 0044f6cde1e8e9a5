package listener

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks4"
	"github.com/sockstap/sockstap/socks5"
)

// rawExchange sends msg on a new connection to w and returns all that
// comes back until the listener closes the connection.
func (w *world) rawExchange(msg []byte) []byte {
	w.t.Helper()
	c := w.dial()
	_, err := c.Write(msg)
	require.NoError(w.t, err)
	return waitClosed(w.t, c)
}

// TestRefusalsAreAnswered checks that a client refused during the
// handshake hears why before the connection closes.
func TestRefusalsAreAnswered(t *testing.T) {
	creds := socks5.NewCredentials(map[string]string{"alice": "wonderland"})
	userPass := []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}}
	for _, tc := range []struct {
		name    string
		methods []socks5.ServerMethod
		send    []byte
		want    []byte
	}{
		{"NMETHODS 0", nil, []byte{5, 0}, []byte{5, 0xff}},
		{"NMETHODS 0, authentication required", userPass, []byte{5, 0}, []byte{5, 0xff}},
		{"ULEN 0", userPass, []byte{5, 1, 2, 1, 0, 4, 'p', 'a', 's', 's'}, []byte{5, 2, 1, 1}},
		{"PLEN 0", userPass, []byte{5, 1, 2, 1, 5, 'a', 'l', 'i', 'c', 'e', 0}, []byte{5, 2, 1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, &Config{Dialer: &net.Dialer{}, Methods: tc.methods})
			assert.Equal(t, tc.want, w.rawExchange(tc.send))
			rec := w.logs.Wait(t, func(r map[string]string) bool { return r["msg"] == "socks" })
			assert.Equal(t, "deny", rec["decision"], "record %v", rec)
		})
	}
}

// TestSocks4LongUserID checks that SOCKS4 user ids as long as clients send
// them (tokens, user@host) are accepted, up to socks4.MaxUserLen, and
// that a longer one is refused with 91 and the connection closed.
func TestSocks4LongUserID(t *testing.T) {
	w := newWorld(t, nil) // taps: no dialer
	for _, n := range []int{300, 1024, socks4.MaxUserLen} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			user := strings.Repeat("u", n)
			c, err := w.connect4("192.0.2.1", 80, user)
			require.NoError(t, err)
			_, err = c.Write([]byte("after a long id"))
			require.NoError(t, err)
			a := w.accept()
			assert.Equal(t, user, RequestOf(a).User)
			got := make([]byte, 15)
			_, err = io.ReadFull(a, got)
			require.NoError(t, err)
			assert.Equal(t, "after a long id", string(got))
		})
	}
	t.Run("over the limit", func(t *testing.T) {
		msg := append([]byte{4, 1, 0, 80, 192, 0, 2, 1}, strings.Repeat("u", socks4.MaxUserLen+1)...)
		msg = append(msg, 0)
		got := w.rawExchange(msg)
		require.Len(t, got, 8, "one reply, then the close: % x", got)
		assert.Equal(t, byte(socks4.Rejected), got[1])
	})
}

// TestEmptyMethodsAreNil checks the one rule for "authentication
// required": nil and empty Methods both offer no authentication, and
// neither locks clients out.
func TestEmptyMethodsAreNil(t *testing.T) {
	echo := sockstest.Echo(t)
	for _, tc := range []struct {
		name    string
		methods []socks5.ServerMethod
	}{{"nil", nil}, {"empty", []socks5.ServerMethod{}}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, &Config{Dialer: &net.Dialer{}, Methods: tc.methods})
			c, _, err := w.connect5(echo.String())
			require.NoError(t, err, "socks5 without authentication")
			_, err = c.Write([]byte("5"))
			require.NoError(t, err)
			_, err = io.ReadFull(c, make([]byte, 1))
			require.NoError(t, err)

			c, err = w.connect4("127.0.0.1", uint16(echo.Port), "fred")
			require.NoError(t, err, "socks4")
			_, err = c.Write([]byte("4"))
			require.NoError(t, err)
			_, err = io.ReadFull(c, make([]byte, 1))
			require.NoError(t, err)
		})
	}
}

// TestNilMethod: a nil method is a mistake Wrap says so about, rather
// than serve clients the program did not mean to.
func TestNilMethod(t *testing.T) {
	for i, methods := range [][]socks5.ServerMethod{
		{nil},
		{socks5.NoAuth{}, (*socks5.UserPassServer)(nil)},
	} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		assert.PanicsWithValue(t, fmt.Sprintf("listener: Config.Methods[%d] is nil", i), func() {
			Wrap(ln, &Config{Methods: methods})
		})
		ln.Close()
	}
}
