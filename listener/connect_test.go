package listener

import (
	"context"
	"net"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// requestDialer dials TCP and reports the request its context carries.
type requestDialer struct{ seen chan *Request }

func (d requestDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	r, _ := FromContext(ctx)
	d.seen <- r
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

// TestDialContextCarriesTheRequest checks that Config.Dialer can tell
// whom it dials for: listener.FromContext works on its context, for a
// dialer of any kind, with or without a Policy, for an IP address and
// for a name.
func TestDialContextCarriesTheRequest(t *testing.T) {
	echo := sockstest.Echo(t)
	targets := []string{echo.String(), net.JoinHostPort("localhost", strconv.Itoa(echo.Port))}
	creds := socks5.NewCredentials(map[string]string{"alice": "pw"})
	alice := socks5.UserPassClient{Username: "alice", Password: "pw"}
	for _, policy := range []Policy{nil, allowAll} {
		t.Run("any dialer", func(t *testing.T) {
			d := requestDialer{seen: make(chan *Request, 1)}
			w := newWorld(t, &Config{
				Dialer:  d,
				Policy:  policy,
				Methods: []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}},
			})
			for _, target := range targets {
				c, _, err := w.connect5(target, alice)
				require.NoError(t, err)
				r := <-d.seen
				require.NotNil(t, r, "the dial's context carries the request")
				assert.Equal(t, target, r.Target.String())
				assert.Equal(t, "alice", r.User)
				assert.Equal(t, c.LocalAddr().String(), r.Client.String())
			}
		})
		t.Run("*net.Dialer", func(t *testing.T) {
			seen := make(chan *Request, 1)
			nd := &net.Dialer{ControlContext: func(ctx context.Context, _, _ string, _ syscall.RawConn) error {
				r, _ := FromContext(ctx)
				select { // localhost may have two addresses to try
				case seen <- r:
				default:
				}
				return nil
			}}
			w := newWorld(t, &Config{Dialer: nd, Policy: policy})
			for _, target := range targets {
				_, _, err := w.connect5(target)
				require.NoError(t, err)
				r := <-seen
				require.NotNil(t, r, "the dial's context carries the request")
				assert.Equal(t, target, r.Target.String())
			}
		})
	}
}
