package dialer_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// A tee sits between the dialer and a real SOCKS server, and records what
// the dialer sends: what the server received, byte for byte.
type tee struct {
	addr string
	mu   sync.Mutex
	sent bytes.Buffer
}

func (t *tee) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sent.Write(p)
}

// received returns what the server has received so far, and forgets it.
func (t *tee) received() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	b := bytes.Clone(t.sent.Bytes())
	t.sent.Reset()
	return b
}

// startTee starts a tee in front of the server at upstream.
func startTee(t testing.TB, upstream *net.TCPAddr) *tee {
	t.Helper()
	te := &tee{}
	te.addr = sockstest.Serve(t, func(c net.Conn) {
		u, err := net.DialTCP("tcp", nil, upstream)
		if err != nil {
			return
		}
		defer u.Close()
		var wg sync.WaitGroup
		wg.Go(func() {
			io.Copy(c, u)
			c.Close()
		})
		// Recorded before it is forwarded, so before the server answers.
		io.Copy(io.MultiWriter(te, u), c)
		u.CloseWrite()
		wg.Wait()
	}).String()
	return te
}

// request5 and request4 are the CONNECT requests a server must have
// received: to the name, for the schemes that send it, or to 127.0.0.1.
func request5(name string, port uint16) []byte {
	b := []byte{5, 1, 0}
	if name != "" {
		b = append(append(b, 3, byte(len(name))), name...)
	} else {
		b = append(b, 1, 127, 0, 0, 1)
	}
	return binary.BigEndian.AppendUint16(b, port)
}

func request4(name string, port uint16, user string) []byte {
	b := binary.BigEndian.AppendUint16([]byte{4, 1}, port)
	if name != "" {
		b = append(b, 0, 0, 0, 1)
	} else {
		b = append(b, 127, 0, 0, 1)
	}
	b = append(append(b, user...), 0)
	if name != "" {
		b = append(append(b, name...), 0)
	}
	return b
}

// interopCase is one scheme, and credentials, against a real server.
type interopCase struct {
	scheme     dialer.Scheme
	user, pass string
}

// testRealServer fetches a page from a loopback origin through server with
// an http.Client for each case, and checks what the server received: the
// schemes that send names sent "localhost", which only the server
// resolved; the others sent the address the client resolved
// origin.sockstap.test to, a name that only the client knows.
func testRealServer(t *testing.T, server *net.TCPAddr, cases []interopCase) {
	page := randomPage(32 << 10)
	origin := startOrigin(t, page)
	port := uint16(origin.Listener.Addr().(*net.TCPAddr).Port)
	te := startTee(t, server)
	resolver := fakeResolver(t, map[string][]netip.Addr{"origin.sockstap.test": {loopback4}})

	for _, c := range cases {
		t.Run(label(c.scheme, c.user), func(t *testing.T) {
			d := &dialer.Dialer{Proxy: te.addr, Scheme: c.scheme, Username: c.user, Password: c.pass, Resolver: resolver}
			name, host := "", "origin.sockstap.test"
			if c.scheme == dialer.SOCKS4A || c.scheme == dialer.SOCKS5H {
				name, host = "localhost", "localhost"
			}
			te.received()
			got, err := fetch(t, d, "http://"+net.JoinHostPort(host, itoa(int(port)))+"/page")
			require.NoError(t, err)
			assert.Equal(t, page, got)

			sent := te.received()
			var want []byte
			switch c.scheme {
			case dialer.SOCKS4, dialer.SOCKS4A:
				want = request4(name, port, c.user)
			default:
				want = request5(name, port)
				if c.user != "" {
					auth := append([]byte{1, byte(len(c.user))}, c.user...)
					auth = append(append(auth, byte(len(c.pass))), c.pass...)
					assert.True(t, bytes.Contains(sent, auth), "the server received the credentials: % x", sent)
				}
			}
			assert.True(t, bytes.Contains(sent, want), "the server received % x, want it to contain % x", sent, want)
		})
	}
}

// testRefused checks that a real server's refusal comes back as the
// SOCKS5 reply code it sent.
func testRefused(t *testing.T, server *net.TCPAddr, user, pass string, want socks5.Reply) {
	t.Run("target refused", func(t *testing.T) {
		d := &dialer.Dialer{Proxy: server.String(), Scheme: dialer.SOCKS5, Username: user, Password: pass}
		target := closedAddr(t)
		_, err := d.Dial("tcp", target)
		assertOpError(t, err, "tcp", server.String(), target)
		re, ok := errors.AsType[*socks5.ReplyError](err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, want, re.Reply)
	})
}

func TestInteropDante(t *testing.T) {
	t.Parallel()
	t.Run("no authentication", func(t *testing.T) {
		t.Parallel()
		server := interop.Dante(t, interop.Options{})
		// danted does not speak SOCKS4a.
		testRealServer(t, server, []interopCase{
			{scheme: dialer.SOCKS4}, {scheme: dialer.SOCKS4, user: "bob"},
			{scheme: dialer.SOCKS5}, {scheme: dialer.SOCKS5H},
		})
		testRefused(t, server, "", "", socks5.ConnectionRefused)
	})
	t.Run("username", func(t *testing.T) {
		t.Parallel()
		server := interop.Dante(t, interop.Options{User: interop.DanteUser, Password: interop.DantePassword})
		testRealServer(t, server, []interopCase{
			{dialer.SOCKS5, interop.DanteUser, interop.DantePassword},
			{dialer.SOCKS5H, interop.DanteUser, interop.DantePassword},
		})
		t.Run("wrong password", func(t *testing.T) {
			d := &dialer.Dialer{Proxy: server.String(), Username: interop.DanteUser, Password: "wrong"}
			_, err := d.Dial("tcp", "127.0.0.1:80")
			assert.ErrorIs(t, err, socks5.ErrAuthFailed)
		})
	})
}

func TestInteropMicrosocks(t *testing.T) {
	t.Parallel()
	t.Run("no authentication", func(t *testing.T) {
		t.Parallel()
		server := interop.Microsocks(t, "", "")
		testRealServer(t, server, []interopCase{{scheme: dialer.SOCKS5}, {scheme: dialer.SOCKS5H}})
		testRefused(t, server, "", "", socks5.ConnectionRefused)
	})
	t.Run("username", func(t *testing.T) {
		t.Parallel()
		server := interop.Microsocks(t, "alice", "wonderland")
		testRealServer(t, server, []interopCase{
			{dialer.SOCKS5, "alice", "wonderland"},
			{dialer.SOCKS5H, "alice", "wonderland"},
		})
		t.Run("wrong password", func(t *testing.T) {
			d := &dialer.Dialer{Proxy: server.String(), Username: "alice", Password: "wrong"}
			_, err := d.Dial("tcp", "127.0.0.1:80")
			assert.ErrorIs(t, err, socks5.ErrAuthFailed)
		})
	})
}

func TestInteropSSH(t *testing.T) {
	t.Parallel()
	server := interop.SSHDynamic(t)
	testRealServer(t, server, []interopCase{
		{scheme: dialer.SOCKS4}, {scheme: dialer.SOCKS4A}, {scheme: dialer.SOCKS4A, user: "bob"},
		{scheme: dialer.SOCKS5}, {scheme: dialer.SOCKS5H},
	})
}
