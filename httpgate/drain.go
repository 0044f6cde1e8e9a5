package httpgate

import (
	"context"
	"errors"
	"sync"
)

// errShutdown is why a tunnel was closed when its server shut down.
var errShutdown = errors.New("httpgate: tunnel closed: the server shut down")

// tunnels counts the tunnels (CONNECT, upgrades) that the requests one
// [Server.Serve] serves turn into. The http.Server forgets a connection
// once it is hijacked, so that its Shutdown neither waits for a tunnel
// nor closes it: Serve does both through this.
type tunnels struct {
	ctx    context.Context // ends when the tunnels must close: their relays' context
	cancel context.CancelFunc

	mu     sync.Mutex
	n      int           // tunnels under way
	closed bool          // no tunnel starts any more
	idle   chan struct{} // closed when n drops to zero; nil while nobody waits for that
}

type tunnelsKey struct{}

func newTunnels() *tunnels {
	ts := &tunnels{}
	ts.ctx, ts.cancel = context.WithCancel(context.Background())
	return ts
}

// tunnelsOf returns the tunnels of the server whose request ctx is, or
// nil for a gateway served by an http.Server of the program's own.
func tunnelsOf(ctx context.Context) *tunnels {
	ts, _ := ctx.Value(tunnelsKey{}).(*tunnels)
	return ts
}

// start counts a tunnel, or reports false once the tunnels are closed.
func (ts *tunnels) start() bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if ts.closed {
		return false
	}
	ts.n++
	return true
}

// end counts a tunnel's end.
func (ts *tunnels) end() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.n--
	if ts.n == 0 && ts.idle != nil {
		close(ts.idle)
		ts.idle = nil
	}
}

// shutdown waits for the tunnels under way to end, and lets new ones
// start meanwhile; when ctx ends first, it closes them and waits for them
// to end. After it returns, no tunnel starts. It returns how many tunnels
// it closed.
func (ts *tunnels) shutdown(ctx context.Context) (cut int) {
	for {
		ts.mu.Lock()
		if ts.n == 0 {
			ts.closed = true
			ts.mu.Unlock()
			ts.cancel()
			return cut
		}
		if ts.idle == nil {
			ts.idle = make(chan struct{})
		}
		idle, closing := ts.idle, ts.closed
		ts.mu.Unlock()
		if closing {
			<-idle // their relays are ending
			continue
		}
		select {
		case <-idle:
		case <-ctx.Done():
			ts.mu.Lock()
			ts.closed = true
			cut = ts.n
			ts.mu.Unlock()
			ts.cancel() // ends their relays at once
		}
	}
}
