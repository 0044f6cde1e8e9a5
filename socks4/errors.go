package socks4

import (
	"errors"
	"fmt"
)

// ErrMalformed is matched by every error that reports a message breaking
// the protocol: a wrong version, a user id or host name without its NUL
// within the length limit, an empty host name, a reply code the protocol
// does not define where one is expected.
var ErrMalformed = errors.New("socks4: malformed message")

// protoError is a message breaking the protocol.
type protoError struct {
	msg string
}

func malformed(format string, args ...any) error {
	return &protoError{msg: fmt.Sprintf(format, args...)}
}

func (e *protoError) Error() string { return "socks4: " + e.msg }

func (e *protoError) Is(target error) bool { return target == ErrMalformed }

// A ReplyError is a request's failure as a reply code: the client side
// returns it when the server's reply is not [Granted], and a server
// answers with its code. Find it with [errors.As].
type ReplyError struct {
	Reply Reply
	Err   error // the cause on the server side, if known; nil on the client side
}

// Error returns the reply code's meaning, and the cause when known.
func (e *ReplyError) Error() string {
	if e.Err != nil {
		return "socks4: " + e.Reply.String() + ": " + e.Err.Error()
	}
	return "socks4: " + e.Reply.String()
}

// Unwrap returns the cause, if known.
func (e *ReplyError) Unwrap() error { return e.Err }

// ReplyFor returns the reply code a server should answer for err, the error
// of dialing the request's target, or of handling it otherwise:
//
//   - nil: [Granted];
//   - a [*ReplyError] anywhere in the chain (an upstream SOCKS4 server's
//     answer, or a decision of the program, such as [IdentdMismatch] after
//     an identd lookup): its code, unless that code is [Granted], which an
//     error cannot be;
//   - anything else: [Rejected], SOCKS4's one code for "rejected or
//     failed". Unlike SOCKS5, SOCKS4 cannot tell a refused connection from
//     an unreachable host or a timeout.
func ReplyFor(err error) Reply {
	if err == nil {
		return Granted
	}
	if re, ok := errors.AsType[*ReplyError](err); ok && re.Reply != Granted {
		return re.Reply
	}
	return Rejected
}

// ioError is a read that failed in the middle of a message.
type ioError struct {
	what string
	err  error
}

func (e *ioError) Error() string { return "socks4: reading " + e.what + ": " + e.err.Error() }
func (e *ioError) Unwrap() error { return e.err }
