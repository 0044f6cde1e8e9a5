package listener

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
