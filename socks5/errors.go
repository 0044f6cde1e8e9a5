package socks5

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"

	"github.com/sockstap/sockstap/internal/deadline"
)

var (
	// ErrMalformed is matched by every error that reports a message
	// breaking the protocol: a wrong version, a reserved byte that is not
	// zero, a length out of range, an unknown address type.
	ErrMalformed = errors.New("socks5: malformed message")

	// ErrAddrType is matched, beside ErrMalformed, by the error that reports
	// an address type the protocol does not define; a server answers it
	// with [AddrTypeNotSupported].
	ErrAddrType = errors.New("socks5: address type not supported")

	// ErrNoAcceptableMethod reports that client and server share no
	// authentication method.
	ErrNoAcceptableMethod = errors.New("socks5: no acceptable authentication method")

	// ErrAuthFailed reports that the server rejected the credentials, or
	// that a client's credentials did not check out on the server.
	ErrAuthFailed = errors.New("socks5: authentication failed")
)

// protoError is a message breaking the protocol.
type protoError struct {
	msg  string
	also error // a sentinel the error matches beside ErrMalformed, if any
}

var (
	// errNoMethods is a greeting that offers no method: malformed, and
	// none of its methods acceptable.
	errNoMethods = &protoError{msg: "greeting offers no methods", also: ErrNoAcceptableMethod}

	// errEmptyCredential marks an RFC 1929 request with an empty username
	// or password: malformed, but of the right version, so a server
	// answers it with a failure status.
	errEmptyCredential = errors.New("socks5: empty username or password")
)

func malformed(format string, args ...any) error {
	return &protoError{msg: fmt.Sprintf(format, args...)}
}

func (e *protoError) Error() string { return "socks5: " + e.msg }

func (e *protoError) Is(target error) bool {
	return target == ErrMalformed || e.also != nil && target == e.also
}

// A ReplyError is a request's failure as a reply code: the client side
// returns it when the server's reply is not [Succeeded], and a server
// answers with its code. Find it with [errors.As].
type ReplyError struct {
	Reply Reply
	Err   error // the cause on the server side, if known; nil on the client side
}

func (e *ReplyError) Error() string {
	if e.Err != nil {
		return "socks5: " + e.Reply.String() + ": " + e.Err.Error()
	}
	return "socks5: " + e.Reply.String()
}

func (e *ReplyError) Unwrap() error { return e.Err }

// ReplyFor returns the reply code a server should answer for err, the error
// of dialing the request's target, or of handling it otherwise:
//
//   - nil: [Succeeded];
//   - a [*ReplyError] anywhere in the chain (an upstream SOCKS5 server's
//     answer, or a decision of the program): its code;
//   - connection refused: [ConnectionRefused];
//   - no such host, host unreachable, host down: [HostUnreachable];
//   - network unreachable: [NetworkUnreachable];
//   - permission denied, operation not permitted: [NotAllowed];
//   - address family not supported: [AddrTypeNotSupported];
//   - an unknown address type in the request ([ErrAddrType]): [AddrTypeNotSupported];
//   - a timeout (the dial's own, a deadline, an expired context):
//     [HostUnreachable]. The target did not answer in time, which to the
//     client is the same as not answering at all; [TTLExpired] is kept for
//     what its name says, an ICMP time-exceeded report;
//   - anything else: [GeneralFailure].
func ReplyFor(err error) Reply {
	if err == nil {
		return Succeeded
	}
	if re, ok := errors.AsType[*ReplyError](err); ok {
		return re.Reply
	}
	var dnsErr *net.DNSError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return ConnectionRefused
	case errors.As(err, &dnsErr),
		errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.EHOSTDOWN):
		return HostUnreachable
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ENETDOWN):
		return NetworkUnreachable
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM),
		errors.Is(err, os.ErrPermission):
		return NotAllowed
	case errors.Is(err, syscall.EAFNOSUPPORT), errors.Is(err, ErrAddrType):
		return AddrTypeNotSupported
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		deadline.IsTimeout(err):
		return HostUnreachable
	}
	return GeneralFailure
}
