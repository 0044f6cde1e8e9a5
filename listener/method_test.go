package listener

import (
	"context"
	"io"
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// maskMethod is a private method that, like GSS-API's protection,
// encapsulates the rest of the session: after a one-byte key the client
// sends, every byte both ways travels XORed with the key.
const maskMethod socks5.AuthMethod = 0x85

type masked struct {
	rw  io.ReadWriter
	key byte
}

func (m *masked) Read(p []byte) (int, error) {
	n, err := m.rw.Read(p)
	for i := range p[:n] {
		p[i] ^= m.key
	}
	return n, err
}

func (m *masked) Write(p []byte) (int, error) {
	q := make([]byte, len(p))
	for i, b := range p {
		q[i] = b ^ m.key
	}
	return m.rw.Write(q)
}

type maskServer struct{}

func (maskServer) Method() socks5.AuthMethod { return maskMethod }

func (maskServer) Verify(_ context.Context, rw io.ReadWriter) (socks5.AuthResult, error) {
	key := make([]byte, 1)
	if _, err := io.ReadFull(rw, key); err != nil {
		return socks5.AuthResult{}, err
	}
	return socks5.AuthResult{User: "masked", Stream: &masked{rw, key[0]}}, nil
}

type maskClient struct{ key byte }

func (maskClient) Method() socks5.AuthMethod { return maskMethod }

func (c maskClient) Authenticate(_ context.Context, rw io.ReadWriter) (io.ReadWriter, error) {
	if _, err := rw.Write([]byte{c.key}); err != nil {
		return nil, err
	}
	return &masked{rw, c.key}, nil
}

func TestPluggedMethodWrapsTheStream(t *testing.T) {
	echo := sockstest.Echo(t)
	for _, tc := range []struct {
		name string
		tap  bool
	}{{"relay", false}, {"tap", true}} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, &Config{
				Dialer:  &net.Dialer{},
				Methods: []socks5.ServerMethod{maskServer{}},
				Tap:     func(*Request, func(int) []byte) bool { return tc.tap },
			})
			c := w.dial()
			a, err := socks5.ParseAddr(echo.String())
			require.NoError(t, err)
			_, stream, err := socks5.ClientHandshake(context.Background(), c,
				socks5.Request{Command: socks5.CmdConnect, Addr: a}, maskClient{key: 0x5a})
			require.NoError(t, err)
			_, err = stream.Write([]byte("under the mask"))
			require.NoError(t, err)
			if tc.tap {
				in := w.accept()
				got := make([]byte, 14)
				_, err = io.ReadFull(in, got)
				require.NoError(t, err)
				assert.Equal(t, "under the mask", string(got), "the program reads the stream unmasked")
				assert.Equal(t, "masked", RequestOf(in).User)
				_, err = in.Write([]byte("answer"))
				require.NoError(t, err)
				got = make([]byte, 6)
				_, err = io.ReadFull(stream, got)
				require.NoError(t, err)
				assert.Equal(t, "answer", string(got))
				return
			}
			got := make([]byte, 14)
			_, err = io.ReadFull(stream, got)
			require.NoError(t, err)
			assert.Equal(t, "under the mask", string(got), "echoed unmasked by the target, masked again on the way back")
		})
	}
}
