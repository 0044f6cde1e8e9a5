package socks5_test

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// duplex is a connection made of a reader of what the peer sent and a
// buffer of what was written to it: for checking a side's output byte for
// byte, with no peer to run.
type duplex struct {
	in  *bytes.Reader
	out bytes.Buffer
}

func newDuplex(in ...[]byte) *duplex { return &duplex{in: bytes.NewReader(sockstest.Join(in...))} }

func (d *duplex) Read(p []byte) (int, error)  { return d.in.Read(p) }
func (d *duplex) Write(p []byte) (int, error) { return d.out.Write(p) }

// userPassWire is RFC 1929's request for user and pass.
func userPassWire(user, pass string) []byte {
	return sockstest.Join([]byte{0x01, byte(len(user))}, []byte(user), []byte{byte(len(pass))}, []byte(pass))
}

func TestCredentialsCheck(t *testing.T) {
	creds := socks5.NewCredentials(map[string]string{
		"alice": "secret",
		"bob":   "hunter2",
		"carol": "",
	})
	tests := []struct {
		user, pass string
		want       bool
	}{
		{"alice", "secret", true},
		{"bob", "hunter2", true},
		{"alice", "hunter2", false}, // another user's password
		{"bob", "secret", false},
		{"alice", "", false},
		{"", "secret", false},
		{"", "", false},
		{"mallory", "secret", false},
		{"Alice", "secret", false},
		{"alice", "Secret", false},
		{"alice", "secret ", false},
		{"alice\x00", "secret", false},
		{"alic", "esecret", false}, // the same bytes, split elsewhere
		{"carol", "", true},        // stored as given; RFC 1929 never sends an empty password
	}
	for _, tt := range tests {
		t.Run(tt.user+"/"+tt.pass, func(t *testing.T) {
			assert.Equal(t, tt.want, creds.Check(context.Background(), tt.user, tt.pass))
		})
	}

	t.Run("no users", func(t *testing.T) {
		for _, c := range []*socks5.Credentials{socks5.NewCredentials(nil), socks5.NewCredentials(map[string]string{})} {
			assert.False(t, c.Check(context.Background(), "alice", "secret"))
			assert.False(t, c.Check(context.Background(), "", ""))
		}
	})

	t.Run("the map is copied", func(t *testing.T) {
		users := map[string]string{"alice": "secret"}
		c := socks5.NewCredentials(users)
		users["alice"] = "changed"
		users["eve"] = "x"
		assert.True(t, c.Check(context.Background(), "alice", "secret"))
		assert.False(t, c.Check(context.Background(), "alice", "changed"))
		assert.False(t, c.Check(context.Background(), "eve", "x"))
	})
}

func TestUserPassServerVerify(t *testing.T) {
	creds := socks5.NewCredentials(map[string]string{"alice": "secret"})

	t.Run("right password", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Send(userPassWire("alice", "secret")...),
			sockstest.Expect(0x01, 0x00),
		)
		res, err := socks5.UserPassServer{Check: creds.Check}.Verify(context.Background(), conn)
		require.NoError(t, err)
		assert.Equal(t, "alice", res.User)
		assert.Nil(t, res.Stream, "username/password does not wrap the stream")
		require.NoError(t, wait())
	})

	t.Run("wrong password", func(t *testing.T) {
		d := newDuplex(userPassWire("alice", "guess"))
		res, err := socks5.UserPassServer{Check: creds.Check}.Verify(context.Background(), d)
		assert.ErrorIs(t, err, socks5.ErrAuthFailed)
		assert.Empty(t, res.User)
		require.Len(t, d.out.Bytes(), 2)
		assert.Equal(t, byte(0x01), d.out.Bytes()[0], "RFC 1929 version")
		assert.NotZero(t, d.out.Bytes()[1], "a failure is a status other than 0")
	})

	t.Run("nil Check rejects everybody", func(t *testing.T) {
		d := newDuplex(userPassWire("alice", "secret"))
		_, err := socks5.UserPassServer{}.Verify(context.Background(), d)
		assert.ErrorIs(t, err, socks5.ErrAuthFailed)
		assert.Equal(t, []byte{0x01, 0x01}, d.out.Bytes())
	})

	t.Run("callback sees the context and the pair", func(t *testing.T) {
		type key struct{}
		ctx := context.WithValue(context.Background(), key{}, "marker")
		var gotUser, gotPass string
		var gotMarker any
		check := func(ctx context.Context, user, pass string) bool {
			gotUser, gotPass, gotMarker = user, pass, ctx.Value(key{})
			return true
		}
		d := newDuplex(userPassWire("bob", "pw"), trailer)
		res, err := socks5.UserPassServer{Check: check}.Verify(ctx, d)
		require.NoError(t, err)
		assert.Equal(t, "bob", res.User)
		assert.Equal(t, "bob", gotUser)
		assert.Equal(t, "pw", gotPass)
		assert.Equal(t, "marker", gotMarker)
		assert.Equal(t, []byte{0x01, 0x00}, d.out.Bytes())
		assert.Equal(t, len(trailer), d.in.Len(), "nothing read past the subnegotiation")
	})

	t.Run("malformed", func(t *testing.T) {
		d := newDuplex([]byte{0x05, 0x01, 'u', 0x01, 'p'})
		_, err := socks5.UserPassServer{Check: creds.Check}.Verify(context.Background(), d)
		assert.ErrorIs(t, err, socks5.ErrMalformed)
		assert.NotErrorIs(t, err, socks5.ErrAuthFailed)
	})
}

func TestUserPassClientAuthenticate(t *testing.T) {
	t.Run("accepted", func(t *testing.T) {
		conn, wait := sockstest.Play(t,
			sockstest.Expect(userPassWire("alice", "secret")...),
			sockstest.Send(0x01, 0x00),
		)
		rw, err := socks5.UserPassClient{Username: "alice", Password: "secret"}.Authenticate(context.Background(), conn)
		require.NoError(t, err)
		assert.Equal(t, conn, rw, "the session goes on over the connection itself")
		require.NoError(t, wait())
	})

	for _, status := range []byte{0x01, 0x02, 0xff} {
		d := newDuplex([]byte{0x01, status}, trailer)
		_, err := socks5.UserPassClient{Username: "alice", Password: "guess"}.Authenticate(context.Background(), d)
		assert.ErrorIs(t, err, socks5.ErrAuthFailed, "status %#x", status)
		assert.Equal(t, userPassWire("alice", "guess"), d.out.Bytes())
		assert.Equal(t, len(trailer), d.in.Len())
	}

	t.Run("bad response", func(t *testing.T) {
		d := newDuplex([]byte{0x05, 0x00})
		_, err := socks5.UserPassClient{Username: "alice", Password: "secret"}.Authenticate(context.Background(), d)
		assert.ErrorIs(t, err, socks5.ErrMalformed)
	})

	t.Run("credentials that cannot travel", func(t *testing.T) {
		d := newDuplex()
		_, err := socks5.UserPassClient{Username: "", Password: "secret"}.Authenticate(context.Background(), d)
		assert.Error(t, err)
		assert.Zero(t, d.out.Len(), "nothing is sent")
	})

	t.Run("server hangs up", func(t *testing.T) {
		d := newDuplex()
		_, err := socks5.UserPassClient{Username: "a", Password: "b"}.Authenticate(context.Background(), d)
		assert.ErrorIs(t, err, io.EOF)
	})
}

func TestMethodCodes(t *testing.T) {
	assert.Equal(t, socks5.AuthNone, socks5.NoAuth{}.Method())
	assert.Equal(t, socks5.AuthUserPass, socks5.UserPassServer{}.Method())
	assert.Equal(t, socks5.AuthUserPass, socks5.UserPassClient{}.Method())

	var _ socks5.ServerMethod = socks5.NoAuth{}
	var _ socks5.ClientMethod = socks5.NoAuth{}
	var _ socks5.ServerMethod = socks5.UserPassServer{}
	var _ socks5.ClientMethod = socks5.UserPassClient{}
}
