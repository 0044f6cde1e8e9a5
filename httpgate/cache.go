package httpgate

import "context"

// Cache is a shared HTTP cache (RFC 9111).
type Cache struct{}

func (c *Cache) serve(ex *exchange, ctx context.Context) {
	out := ex.outgoing(ctx, false)
	resp, err := ex.roundTrip(out)
	if err != nil {
		ex.upstreamError(err)
		return
	}
	ex.respond(resp, nil)
}
