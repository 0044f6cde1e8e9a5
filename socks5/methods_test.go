package socks5_test

import (
	"context"
	"errors"
	"io"

	"github.com/sockstap/sockstap/socks5"
)

// Two authentication methods of a program's own, written against the
// package's interfaces only: they prove that a program adds a method
// without touching the package.

// methodToken is a private method that exchanges a token: the client sends
// its length and its bytes, the server answers 0x00 when it knows the
// token and 0x01 when not.
const methodToken socks5.AuthMethod = 0x80

var errBadToken = errors.New("unknown token")

type tokenServer struct{ tokens map[string]string } // token to user

func (tokenServer) Method() socks5.AuthMethod { return methodToken }

func (s tokenServer) Verify(_ context.Context, rw io.ReadWriter) (socks5.AuthResult, error) {
	var n [1]byte
	if _, err := io.ReadFull(rw, n[:]); err != nil {
		return socks5.AuthResult{}, err
	}
	tok := make([]byte, n[0])
	if _, err := io.ReadFull(rw, tok); err != nil {
		return socks5.AuthResult{}, err
	}
	user, ok := s.tokens[string(tok)]
	if !ok {
		rw.Write([]byte{0x01})
		return socks5.AuthResult{}, errBadToken
	}
	if _, err := rw.Write([]byte{0x00}); err != nil {
		return socks5.AuthResult{}, err
	}
	return socks5.AuthResult{User: user}, nil
}

type tokenClient struct{ token string }

func (tokenClient) Method() socks5.AuthMethod { return methodToken }

func (c tokenClient) Authenticate(_ context.Context, rw io.ReadWriter) (io.ReadWriter, error) {
	if _, err := rw.Write(append([]byte{byte(len(c.token))}, c.token...)); err != nil {
		return nil, err
	}
	var status [1]byte
	if _, err := io.ReadFull(rw, status[:]); err != nil {
		return nil, err
	}
	if status[0] != 0 {
		return nil, errBadToken
	}
	return rw, nil
}

// methodXOR is a private method that encapsulates the session, as GSS-API
// does with per-message protection: the client sends a key byte, and from
// then on every byte either way, the request and the reply included, is
// XORed with it.
const methodXOR socks5.AuthMethod = 0x81

// xorStream is the encapsulated stream.
type xorStream struct {
	rw  io.ReadWriter
	key byte
}

func (x *xorStream) Read(p []byte) (int, error) {
	n, err := x.rw.Read(p)
	for i := range p[:n] {
		p[i] ^= x.key
	}
	return n, err
}

func (x *xorStream) Write(p []byte) (int, error) {
	return x.rw.Write(xorBytes(p, x.key))
}

func xorBytes(p []byte, key byte) []byte {
	q := make([]byte, len(p))
	for i, c := range p {
		q[i] = c ^ key
	}
	return q
}

type xorServer struct{}

func (xorServer) Method() socks5.AuthMethod { return methodXOR }

func (xorServer) Verify(_ context.Context, rw io.ReadWriter) (socks5.AuthResult, error) {
	var key [1]byte
	if _, err := io.ReadFull(rw, key[:]); err != nil {
		return socks5.AuthResult{}, err
	}
	return socks5.AuthResult{User: "xor", Stream: &xorStream{rw: rw, key: key[0]}}, nil
}

type xorClient struct{ key byte }

func (xorClient) Method() socks5.AuthMethod { return methodXOR }

func (c xorClient) Authenticate(_ context.Context, rw io.ReadWriter) (io.ReadWriter, error) {
	if _, err := rw.Write([]byte{c.key}); err != nil {
		return nil, err
	}
	return &xorStream{rw: rw, key: c.key}, nil
}
