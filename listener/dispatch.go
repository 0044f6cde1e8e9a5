package listener

import (
	"context"

	"github.com/sockstap/sockstap/socks5"
)

// A command says how dispatch serves one SOCKS command.
type command struct {
	// socks4 reports whether SOCKS4 has the command: CONNECT and BIND.
	// SOCKS5 has every command.
	socks4 bool

	// enabled reports whether the program enabled the command in its
	// Config; nil means always.
	enabled func(*Config) bool

	// serve serves a request the policy has allowed. It must end the
	// session (end, refuse, fail), before it returns or later, from a
	// goroutine it started with spawn.
	serve func(*session)
}

// commandTable is the table of the commands the listener knows, one entry
// each, whose serve function lives in a file of its own, named after it.
// A command missing from it, not enabled, or not of the request's version
// is answered "command not supported" (SOCKS5 0x07, SOCKS4 91).
var commandTable = map[socks5.Command]command{
	socks5.CmdConnect: {socks4: true, serve: (*session).connect},
}

// commands returns the commands of table that c enables: the listener's
// own table, made once.
func (c *Config) commands(table map[socks5.Command]command) map[socks5.Command]command {
	m := make(map[socks5.Command]command, len(table))
	for code, cmd := range table {
		if cmd.enabled == nil || cmd.enabled(c) {
			m[code] = cmd
		}
	}
	return m
}

// errNotSupported refuses a command the listener does not serve.
var errNotSupported = &socks5.ReplyError{Reply: socks5.CommandNotSupported}

// dispatch serves the request the same way whatever its command: it
// checks that the listener serves the command, in the request's version;
// asks the policy, once; then runs the command.
func (s *session) dispatch() {
	r := s.req
	cmd, ok := s.l.commands[r.Command]
	if !ok || r.Version == 4 && !cmd.socks4 {
		s.refuse(errNotSupported, "command not supported")
		return
	}
	if err := s.l.allowed(r); err != nil {
		s.refuse(err, "")
		return
	}
	cmd.serve(s)
}

// allowed asks the policy about r when it arrives: nil, or a *denied.
func (l *Listener) allowed(r *Request) error {
	if l.cfg.Policy == nil {
		// The built-in policy looks at the request and nothing else: it
		// needs no deadline, and a context with one costs a timer.
		return l.policy(l.ctx, r)
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.HandshakeTimeout)
	defer cancel()
	return l.policy(ctx, r)
}
