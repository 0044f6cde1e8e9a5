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
//
// A command is added with a file (bind.go, say) holding its serve
// function, an entry here, and the Config field that enables it (nil or
// false: off), read by the entry's enabled. By the time serve runs, the
// request is the session's (s.req), the policy has allowed it, and the
// client's bytes read ahead are in s.rd, over s.data. Serve then:
//
//   - answers with s.reply(err, bound): nil for success, or the error
//     whose code is sent; as many times as the command answers (BIND:
//     once listening, once the peer has come);
//   - holds what it opens with s.t.add(closer), so that the session's
//     end, Close and Shutdown close it; add reports false (and closes it)
//     when the connection is closed already;
//   - marks a session that moves data for long with
//     s.l.startRelay(s.t), so that Shutdown waits for it;
//   - asks the policy about what the request did not name (BIND's peer,
//     a UDP datagram's destination) with s.l.policy and DialedIP set,
//     and dials through s.l.relayDialer (GuardDialer) with the request
//     in the context (NewContext);
//   - starts its goroutines with s.spawn, which recovers a panic and
//     ends the session;
//   - counts what it moves in s.traffic (atomic: bytes and datagrams,
//     each way), and sets s.rec.Decision (DecisionBind,
//     DecisionAssociate, DecisionResolve...);
//   - ends the session once: s.end() (or s.claim() then s.finish() when
//     two goroutines may end it at once), s.refuse(err, reason) to
//     answer a refusal and end, s.fail(cause) after a reply has gone.
var commandTable = map[socks5.Command]command{
	socks5.CmdConnect: {socks4: true, serve: (*session).connect},

	socks5.CmdBind:       {socks4: true, enabled: func(c *Config) bool { return c.Bind }, serve: (*session).bind},
	socks5.CmdResolve:    {enabled: func(c *Config) bool { return c.Resolve }, serve: (*session).resolve},
	socks5.CmdResolvePTR: {enabled: func(c *Config) bool { return c.Resolve }, serve: (*session).resolvePTR},

	// UDP ASSOCIATE: udp.go.
	socks5.CmdUDPAssociate: {enabled: func(c *Config) bool { return c.UDP }, serve: (*session).associate},
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
	if err := s.identify(); err != nil { // SOCKS4's identd check, when enabled
		s.refuse(err, "")
		return
	}
	s.t.cmd = r.Command // for Stats, which reads it once the session relays
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
