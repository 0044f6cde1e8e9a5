package dialer

import (
	"context"
	"errors"

	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/socks5"
)

// ErrIPv4Only is matched by the error of a dial through SOCKS4 or SOCKS4a
// to a target that only IPv6 can reach: an IPv6 address, or, through
// socks4, a name that has only IPv6 addresses. SOCKS5 carries IPv6.
var ErrIPv4Only = errors.New("dialer: SOCKS4 carries only IPv4 addresses")

var errIPv6Target = &ipv6Error{msg: "an IPv6 target cannot be sent through SOCKS4 (use socks5)"}

// ipv6Error is an IPv6 target through SOCKS4.
type ipv6Error struct{ msg string }

func (e *ipv6Error) Error() string        { return "dialer: " + e.msg }
func (e *ipv6Error) Is(target error) bool { return target == ErrIPv4Only }

// ipv6NameError is a name, resolved for SOCKS4, that has only IPv6
// addresses.
type ipv6NameError struct{ name string }

func (e *ipv6NameError) Error() string {
	return "dialer: " + e.name + " has only IPv6 addresses, which SOCKS4 cannot carry (use socks4a or socks5)"
}

func (e *ipv6NameError) Is(target error) bool { return target == ErrIPv4Only }

// unreachableError is the failure to connect to the proxy itself: through
// its Forward dialer, so for the last hop of a chain, the failure of any
// hop before it. A [Router] tries its next peer after one.
type unreachableError struct{ err error }

func (e *unreachableError) Error() string { return "reaching the proxy: " + e.err.Error() }
func (e *unreachableError) Unwrap() error { return e.err }
func (e *unreachableError) Timeout() bool { return deadline.IsTimeout(e.err) }

// unreachable reports whether err says the proxy could not be reached.
func unreachable(err error) bool {
	_, ok := errors.AsType[*unreachableError](err)
	return ok
}

// ctxError is a handshake's error when the context ended during it.
type ctxError struct{ ctx, err error }

func (e *ctxError) Error() string {
	if errors.Is(e.err, e.ctx) {
		return e.err.Error()
	}
	return e.ctx.Error() + ": " + e.err.Error()
}

func (e *ctxError) Unwrap() []error { return []error{e.ctx, e.err} }

// Timeout reports whether the context's deadline passed, so that the
// *net.OpError around the error reports a timeout.
func (e *ctxError) Timeout() bool { return e.ctx == context.DeadlineExceeded }

// ErrUnsupportedCommand is matched by the error of a request that the
// dialer's protocol has no command for: UDP ASSOCIATE, RESOLVE and
// RESOLVE_PTR through SOCKS4 and SOCKS4a, which know CONNECT and BIND only.
var ErrUnsupportedCommand = errors.New("dialer: the protocol has no such command")

// commandError is a command the scheme's protocol does not have.
type commandError struct {
	scheme Scheme
	cmd    socks5.Command
}

func (e *commandError) Error() string {
	return "dialer: " + string(e.scheme) + " has no " + e.cmd.String() + " command (use socks5 or socks5h)"
}

func (e *commandError) Is(target error) bool { return target == ErrUnsupportedCommand }

// timeoutError is an error that timed out deep in its chain, said at the
// top, so that the *net.OpError around it reports a timeout.
type timeoutError struct{ err error }

func (e *timeoutError) Error() string { return e.err.Error() }
func (e *timeoutError) Unwrap() error { return e.err }
func (e *timeoutError) Timeout() bool { return true }
