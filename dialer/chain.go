package dialer

// Chain returns a dialer that reaches its targets through every hop in
// turn, first first, as proxychains' strict chain does: the first hop is
// reached through its own Forward, each next hop through the one before
// it, and the last hop connects to the target.
//
// The hops are copied: Chain changes none of them, and the Forward of all
// but the first is replaced. Each hop resolves names as its Scheme says,
// including the name of the hop after it: through a socks5h hop, the next
// hop's name goes to that proxy; through a socks5 hop, the client resolves
// it with the hop's Resolver.
//
// The chain's other commands are the last hop's: [Dialer.Listen] (BIND),
// [Dialer.ListenPacket] (UDP ASSOCIATE) and [Dialer.Resolve] ask the last
// hop, over a control connection that rides the hops before it. Datagrams
// do not: they go straight from the program to the last hop's relay
// address, which must therefore be reachable from the program.
func Chain(first *Dialer, rest ...*Dialer) *Dialer {
	last := new(Dialer)
	*last = *first
	for _, hop := range rest {
		next := new(Dialer)
		*next = *hop
		next.Forward = last
		last = next
	}
	return last
}
