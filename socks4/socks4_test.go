package socks4_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/sockstap/sockstap/socks4"
)

func TestCommandString(t *testing.T) {
	for c, want := range map[socks4.Command]string{
		socks4.CmdConnect: "CONNECT",
		socks4.CmdBind:    "BIND",
		0:                 "command 0",
		3:                 "command 3",
		255:               "command 255",
	} {
		assert.Equal(t, want, c.String())
	}
}

func TestReplyString(t *testing.T) {
	for r, want := range map[socks4.Reply]string{
		socks4.Granted:           "request granted",
		socks4.Rejected:          "request rejected or failed",
		socks4.IdentdUnreachable: "request rejected: cannot connect to identd on the client",
		socks4.IdentdMismatch:    "request rejected: client and identd report different user ids",
		0:                        "reply 0",
		94:                       "reply 94",
	} {
		assert.Equal(t, want, r.String())
	}
	assert.Equal(t, socks4.Reply(90), socks4.Granted)
	assert.Equal(t, socks4.Reply(93), socks4.IdentdMismatch)
}

func TestReplyFor(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want socks4.Reply
	}{
		{"nil", nil, socks4.Granted},
		{"reply error", &socks4.ReplyError{Reply: socks4.IdentdUnreachable}, socks4.IdentdUnreachable},
		{"wrapped reply error", fmt.Errorf("dial: %w", &socks4.ReplyError{Reply: socks4.IdentdMismatch}), socks4.IdentdMismatch},
		{"reply error claiming success", &socks4.ReplyError{Reply: socks4.Granted}, socks4.Rejected},
		{"EOF", io.EOF, socks4.Rejected},
		{"deadline", context.DeadlineExceeded, socks4.Rejected},
		{"malformed", socks4.ErrMalformed, socks4.Rejected},
		{"anything", errors.New("connection refused"), socks4.Rejected},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			assert.Equal(t, c.want, socks4.ReplyFor(c.err))
		})
	}
}

func TestReplyError(t *testing.T) {
	cause := errors.New("dial tcp 192.0.2.1:80: connection refused")
	err := error(&socks4.ReplyError{Reply: socks4.Rejected, Err: cause})
	assert.EqualError(t, err, "socks4: request rejected or failed: dial tcp 192.0.2.1:80: connection refused")
	assert.ErrorIs(t, err, cause)

	err = fmt.Errorf("upstream: %w", &socks4.ReplyError{Reply: socks4.IdentdMismatch})
	re, ok := errors.AsType[*socks4.ReplyError](err)
	if assert.True(t, ok) {
		assert.Equal(t, socks4.IdentdMismatch, re.Reply)
	}
	assert.EqualError(t, err, "upstream: socks4: request rejected: client and identd report different user ids")
}
