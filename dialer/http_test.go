package dialer_test

import (
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/proxy"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

// startOrigin starts an HTTP server on loopback that serves page, and
// returns it.
func startOrigin(t testing.TB, page []byte) *httptest.Server {
	t.Helper()
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(page)
	}))
	t.Cleanup(origin.Close)
	return origin
}

// randomPage returns n random bytes, a page no proxy could make up.
func randomPage(n int) []byte {
	page := make([]byte, n)
	rand.Read(page)
	return page
}

// fetch GETs url with an http.Client whose transport dials through d, and
// returns the body.
func fetch(t testing.TB, d proxy.ContextDialer, url string) ([]byte, error) {
	t.Helper()
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: wait}
	resp, err := client.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// TestHTTP fetches a page through our listener with each scheme, by a
// name that only the proxy can resolve: the proxy's dialer knows
// origin.sockstap.test, the client's resolver does not. socks4a and socks5h
// fetch the page, which proves the name was not resolved on the client;
// socks4 and socks5, which resolve names on the client, fail to.
func TestHTTP(t *testing.T) {
	page := randomPage(64 << 10)
	origin := startOrigin(t, page)
	originAddr := origin.Listener.Addr().(*net.TCPAddr)
	creds := socks5.NewCredentials(map[string]string{"alice": "secret"})
	p := startProxy(t, listener.Config{
		Dialer:  &mapDialer{names: map[string]string{"origin.sockstap.test": "127.0.0.1"}},
		Methods: []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}, socks5.NoAuth{}},
	})
	nowhere := fakeResolver(t, map[string][]netip.Addr{})
	byName := "http://" + net.JoinHostPort("origin.sockstap.test", itoa(originAddr.Port)) + "/page"

	for _, s := range []struct {
		scheme     dialer.Scheme
		user, pass string
	}{
		{dialer.SOCKS4A, "", ""},
		{dialer.SOCKS4A, "bob", ""},
		{dialer.SOCKS5H, "", ""},
		{dialer.SOCKS5H, "alice", "secret"},
	} {
		t.Run(label(s.scheme, s.user)+" by name", func(t *testing.T) {
			d := &dialer.Dialer{Proxy: p.addr, Scheme: s.scheme, Username: s.user, Password: s.pass, Resolver: nowhere}
			got, err := fetch(t, d, byName)
			require.NoError(t, err)
			assert.Equal(t, page, got)
		})
	}

	for _, s := range []dialer.Scheme{dialer.SOCKS4, dialer.SOCKS5} {
		t.Run(string(s)+" by name: resolved on the client, and not found", func(t *testing.T) {
			before := p.accepts.Load()
			d := &dialer.Dialer{Proxy: p.addr, Scheme: s, Resolver: nowhere}
			_, err := fetch(t, d, byName)
			require.Error(t, err)
			de, ok := errors.AsType[*net.DNSError](err)
			require.True(t, ok, "a name-resolution error: %v", err)
			assert.True(t, de.IsNotFound)
			assert.Equal(t, "origin.sockstap.test", de.Name)
			assert.Equal(t, before, p.accepts.Load(), "the proxy was not asked")
		})
	}

	for _, s := range []struct {
		scheme     dialer.Scheme
		user, pass string
	}{
		{dialer.SOCKS4, "bob", ""},
		{dialer.SOCKS4A, "", ""},
		{dialer.SOCKS5, "", ""},
		{dialer.SOCKS5, "alice", "secret"},
		{dialer.SOCKS5H, "", ""},
	} {
		t.Run(label(s.scheme, s.user)+" by address", func(t *testing.T) {
			d := &dialer.Dialer{Proxy: p.addr, Scheme: s.scheme, Username: s.user, Password: s.pass}
			got, err := fetch(t, d, origin.URL+"/page")
			require.NoError(t, err)
			assert.Equal(t, page, got)
		})
	}
}

// label names a subtest after a scheme and a user.
func label(s dialer.Scheme, user string) string {
	if user == "" {
		return string(s)
	}
	return string(s) + " as " + user
}
