package socks5_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/socks5"
)

// dialError is err as net.Dialer reports it.
func dialError(err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", err)}
}

// timeoutError is a net.Error that timed out, and nothing else.
type timeoutError struct{}

func (timeoutError) Error() string   { return "timed out" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func TestReplyFor(t *testing.T) {
	_, addrTypeErr := socks5.ReadRequest(bytes.NewReader([]byte{5, 1, 0, 0x02, 1, 2, 3, 4, 0, 80}))
	require.ErrorIs(t, addrTypeErr, socks5.ErrAddrType)

	tests := []struct {
		name string
		err  error
		want socks5.Reply
	}{
		{"nil", nil, socks5.Succeeded},
		{"reply error", &socks5.ReplyError{Reply: socks5.NotAllowed}, socks5.NotAllowed},
		{"wrapped reply error", fmt.Errorf("upstream: %w", &socks5.ReplyError{Reply: socks5.TTLExpired}), socks5.TTLExpired},
		{"reply error before its cause", &socks5.ReplyError{Reply: socks5.CommandNotSupported, Err: syscall.ECONNREFUSED}, socks5.CommandNotSupported},
		{"refused", dialError(syscall.ECONNREFUSED), socks5.ConnectionRefused},
		{"no such host", &net.DNSError{Err: "no such host", Name: "nowhere.invalid", IsNotFound: true}, socks5.HostUnreachable},
		{"wrapped no such host", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "server misbehaving", Name: "x.invalid"}}, socks5.HostUnreachable},
		{"host unreachable", dialError(syscall.EHOSTUNREACH), socks5.HostUnreachable},
		{"host down", dialError(syscall.EHOSTDOWN), socks5.HostUnreachable},
		{"network unreachable", dialError(syscall.ENETUNREACH), socks5.NetworkUnreachable},
		{"network down", dialError(syscall.ENETDOWN), socks5.NetworkUnreachable},
		{"EACCES", dialError(syscall.EACCES), socks5.NotAllowed},
		{"EPERM", dialError(syscall.EPERM), socks5.NotAllowed},
		{"permission", fmt.Errorf("policy: %w", os.ErrPermission), socks5.NotAllowed},
		{"address family", dialError(syscall.EAFNOSUPPORT), socks5.AddrTypeNotSupported},
		{"unknown address type", addrTypeErr, socks5.AddrTypeNotSupported},
		{"dial timeout", &net.OpError{Op: "dial", Net: "tcp", Err: timeoutError{}}, socks5.HostUnreachable},
		{"deadline", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), socks5.HostUnreachable},
		{"context deadline", context.DeadlineExceeded, socks5.HostUnreachable},
		{"context canceled", context.Canceled, socks5.GeneralFailure},
		{"EOF", io.EOF, socks5.GeneralFailure},
		{"other", errors.New("disk on fire"), socks5.GeneralFailure},
		{"malformed", fmt.Errorf("x: %w", socks5.ErrMalformed), socks5.GeneralFailure},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, socks5.ReplyFor(tt.err))
		})
	}
}

func TestReplyForRealErrors(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		require.NoError(t, ln.Close())

		var d net.Dialer
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			c.Close()
			t.Skip("something else took the port that was just closed")
		}
		assert.ErrorIs(t, err, syscall.ECONNREFUSED)
		assert.Equal(t, socks5.ConnectionRefused, socks5.ReplyFor(err))
	})

	t.Run("timeout", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		require.NoError(t, a.SetReadDeadline(time.Now().Add(-time.Second)))
		_, err := a.Read(make([]byte, 1))
		require.Error(t, err)
		assert.Equal(t, socks5.HostUnreachable, socks5.ReplyFor(err))
	})

	t.Run("expired context", func(t *testing.T) {
		ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
		defer cancel()
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", "127.0.0.1:1")
		if c != nil {
			c.Close()
		}
		require.Error(t, err)
		assert.Equal(t, socks5.HostUnreachable, socks5.ReplyFor(err))
	})
}

func TestReplyError(t *testing.T) {
	e := &socks5.ReplyError{Reply: socks5.ConnectionRefused}
	assert.Equal(t, "socks5: connection refused", e.Error())
	assert.NoError(t, e.Unwrap())

	cause := dialError(syscall.ECONNREFUSED)
	e = &socks5.ReplyError{Reply: socks5.ConnectionRefused, Err: cause}
	assert.Equal(t, "socks5: connection refused: "+cause.Error(), e.Error())
	assert.ErrorIs(t, e, syscall.ECONNREFUSED, "the cause is in the chain")

	var re *socks5.ReplyError
	require.ErrorAs(t, fmt.Errorf("dial: %w", e), &re)
	assert.Equal(t, socks5.ConnectionRefused, re.Reply)
}
