package socks5

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
)

// A ServerMethod is an authentication method as the server runs it. A
// program adds a method of its own (GSS-API, RFC 1961, or a private one) by
// implementing it; the package has [NoAuth] and [UserPassServer].
type ServerMethod interface {
	// Method returns the method's code, as negotiated in the greeting.
	Method() AuthMethod

	// Verify runs the method's subnegotiation on rw once the server has
	// selected the method. On success it returns who the client proved to
	// be, and the stream the rest of the session runs over when the method
	// encapsulates it (GSS-API's per-message protection does). On failure
	// it has told the client whatever the method tells, and the server
	// closes the connection.
	Verify(ctx context.Context, rw io.ReadWriter) (AuthResult, error)
}

// AuthResult is what a [ServerMethod] established.
type AuthResult struct {
	// User is the identity the client proved: a username, a principal;
	// empty when the method establishes none.
	User string

	// Stream, when not nil, replaces the connection for the rest of the
	// session: the request, the reply and the data all run over it.
	Stream io.ReadWriter
}

// A ClientMethod is an authentication method as the client runs it; the
// package has [NoAuth] and [UserPassClient].
type ClientMethod interface {
	// Method returns the method's code, as offered in the greeting.
	Method() AuthMethod

	// Authenticate runs the method's subnegotiation on rw once the server
	// has selected the method. It returns the stream the rest of the
	// session runs over: rw itself, or a wrapper around it.
	Authenticate(ctx context.Context, rw io.ReadWriter) (io.ReadWriter, error)
}

// NoAuth is the method that needs no authentication, for either side.
type NoAuth struct{}

// Method returns [AuthNone].
func (NoAuth) Method() AuthMethod { return AuthNone }

// Verify accepts every client as nobody in particular.
func (NoAuth) Verify(context.Context, io.ReadWriter) (AuthResult, error) {
	return AuthResult{}, nil
}

// Authenticate has nothing to do.
func (NoAuth) Authenticate(_ context.Context, rw io.ReadWriter) (io.ReadWriter, error) {
	return rw, nil
}

// UserPassClient authenticates to a server with a username and a password
// (RFC 1929). Both are 1 to 255 bytes.
type UserPassClient struct {
	Username, Password string
}

// Method returns [AuthUserPass].
func (UserPassClient) Method() AuthMethod { return AuthUserPass }

// Authenticate sends the username and password and reads the server's verdict.
func (u UserPassClient) Authenticate(_ context.Context, rw io.ReadWriter) (io.ReadWriter, error) {
	if err := writeMessage(rw, UserPassRequest(u)); err != nil {
		return nil, err
	}
	resp, err := ReadUserPassResponse(rw)
	if err != nil {
		return nil, err
	}
	if resp.Status != 0 {
		return nil, ErrAuthFailed
	}
	return rw, nil
}

// UserPassServer verifies a username and a password (RFC 1929).
type UserPassServer struct {
	// Check reports whether password is the password of username. It
	// should take as long whatever its answer; [Credentials.Check] does.
	// A nil Check rejects everybody.
	Check func(ctx context.Context, username, password string) bool
}

// Method returns [AuthUserPass].
func (UserPassServer) Method() AuthMethod { return AuthUserPass }

// Verify reads the client's username and password, checks them, and answers
// with status 0 for success or 1 for failure. A request with an empty
// username or password, which RFC 1929 does not allow, is answered with
// status 1 too, and its error matches both [ErrAuthFailed] and
// [ErrMalformed]; one of another version, from a client that does not
// speak RFC 1929, is not answered.
func (u UserPassServer) Verify(ctx context.Context, rw io.ReadWriter) (AuthResult, error) {
	req, err := ReadUserPassRequest(rw)
	if err != nil {
		if errors.Is(err, errEmptyCredential) {
			writeMessage(rw, UserPassResponse{Status: 1})
			err = fmt.Errorf("%w: %w", ErrAuthFailed, err)
		}
		return AuthResult{}, err
	}
	ok := u.Check != nil && u.Check(ctx, req.Username, req.Password)
	resp := UserPassResponse{Status: 1}
	if ok {
		resp.Status = 0
	}
	if err := writeMessage(rw, resp); err != nil {
		return AuthResult{}, err
	}
	if !ok {
		return AuthResult{}, ErrAuthFailed
	}
	return AuthResult{User: req.Username}, nil
}

// Credentials is a fixed set of usernames and passwords that checks a pair
// in time that depends on neither: every entry is compared, username and
// password both, as digests of equal length, with no early return.
type Credentials struct {
	entries []credential
}

type credential struct {
	user, pass [sha256.Size]byte
}

// NewCredentials returns the credentials of users, a map from username to
// password.
func NewCredentials(users map[string]string) *Credentials {
	c := &Credentials{entries: make([]credential, 0, len(users))}
	for u, p := range users {
		c.entries = append(c.entries, credential{sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))})
	}
	return c
}

// Check reports whether username and password are one of the pairs. Its
// signature fits [UserPassServer.Check].
func (c *Credentials) Check(_ context.Context, username, password string) bool {
	u, p := sha256.Sum256([]byte(username)), sha256.Sum256([]byte(password))
	match := 0
	for _, e := range c.entries {
		match |= subtle.ConstantTimeCompare(u[:], e.user[:]) & subtle.ConstantTimeCompare(p[:], e.pass[:])
	}
	return match == 1
}
