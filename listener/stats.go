package listener

import "github.com/sockstap/sockstap/socks5"

// Stats is a snapshot of what a [Listener] is doing: the connections it
// holds, by the state each is in, and counts since it was made. A program
// builds its metrics on it and on [Config.OnRecord]; the package itself
// depends on no metrics library.
type Stats struct {
	// Conns is every connection the listener holds now: the sum of the
	// states below.
	Conns int

	// Sniffing are the connections whose first bytes (and PROXY protocol
	// header) are awaited, to tell SOCKS from the program's own.
	Sniffing int

	// Handshakes are the SOCKS connections before their reply: the
	// handshake, the policy, the dial of a relay, a BIND's wait.
	Handshakes int

	// Relays are the connections whose bytes the listener relays.
	Relays int

	// Associations are the UDP associations under way: their control
	// connections, held for as long as the association lives.
	Associations int

	// Handing are the connections on their way to Accept: the program's
	// own, and tapped SOCKS streams, until Accept takes them.
	Handing int

	// Accepted counts the connections accepted from the wrapped listener,
	// Refused those of them closed at once, over MaxConns or for their
	// PROXY protocol header, and Tapped the SOCKS streams handed to
	// Accept, since the listener was made.
	Accepted, Refused, Tapped uint64
}

// A connState is what a connection the listener holds is doing, before
// it relays: tracked.state. A relay is tracked.relaying.
type connState = uint32

const (
	stateSniffing  connState = iota // accepted: the first bytes are awaited
	stateHandshake                  // SOCKS: up to the reply
	stateHanding                    // on its way to Accept
)

// Stats returns a snapshot of the listener's connections and counts.
func (l *Listener) Stats() Stats {
	s := Stats{
		Accepted: l.accepted.Load(),
		Refused:  l.refused.Load(),
		Tapped:   l.tapped.Load(),
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s.Conns = len(l.conns)
	for t := range l.conns {
		switch {
		case t.relaying && t.cmd == socks5.CmdUDPAssociate:
			s.Associations++
		case t.relaying:
			s.Relays++
		default:
			switch t.state.Load() {
			case stateSniffing:
				s.Sniffing++
			case stateHandshake:
				s.Handshakes++
			case stateHanding:
				s.Handing++
			}
		}
	}
	return s
}
