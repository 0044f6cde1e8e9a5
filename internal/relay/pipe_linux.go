package relay

import (
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

const (
	// pipeSize is the size a pipe is given, and the most one splice moves:
	// a socket's whole receive queue on loopback, so that a busy stream
	// moves in few calls. An empty pipe holds no pages.
	pipeSize = 1 << 20

	// fSetPipeSize is F_SETPIPE_SZ, the same on every Linux architecture.
	fSetPipeSize = 1031

	// pipesKept is the most pipes the pool keeps unused, and pipeTrim how
	// often it closes those that went unused: after a burst, the pool is
	// empty again within two periods.
	pipesKept = 32
	pipeTrim  = time.Second
)

// pipes is the pool the relays borrow their pipes from.
var pipes = pipePool{max: pipesKept, every: pipeTrim}

// pipe is a pipe, and the bytes in it.
type pipe struct {
	r, w int
	n    int // bytes taken from a source and not yet written
}

func newPipe() (*pipe, error) {
	var fds [2]int
	if err := syscall.Pipe2(fds[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		return nil, os.NewSyscallError("pipe2", err)
	}
	// A smaller pipe works too, in more calls: the error does not matter.
	syscall.Syscall(syscall.SYS_FCNTL, uintptr(fds[1]), fSetPipeSize, pipeSize)
	return &pipe{r: fds[0], w: fds[1]}, nil
}

func (p *pipe) close() {
	syscall.Close(p.r)
	syscall.Close(p.w)
}

// pipePool keeps a few empty pipes for the next transfers, and closes
// those that go unused for a trim period.
type pipePool struct {
	max   int           // the most pipes kept
	every time.Duration // the trim period

	out atomic.Int64 // pipes borrowed and not given back

	mu    sync.Mutex
	free  []*pipe // the most recently given back last
	low   int     // the fewest pipes free since the last trim
	timer *time.Timer
	armed bool // the timer will trim
}

// get returns a pipe from the pool, or a new one.
func (pp *pipePool) get() (*pipe, error) {
	pp.out.Add(1)
	pp.mu.Lock()
	if n := len(pp.free); n > 0 {
		p := pp.free[n-1]
		pp.free[n-1] = nil
		pp.free = pp.free[:n-1]
		pp.low = min(pp.low, n-1)
		pp.mu.Unlock()
		return p, nil
	}
	pp.mu.Unlock()
	p, err := newPipe()
	if err != nil {
		pp.out.Add(-1)
	}
	return p, err
}

// put gives p back: kept if it is empty and the pool has room, closed
// otherwise.
func (pp *pipePool) put(p *pipe) {
	pp.out.Add(-1)
	if p.n != 0 {
		p.close() // bytes no one will write: the pipe is no use to another
		return
	}
	pp.mu.Lock()
	if len(pp.free) >= pp.max {
		pp.mu.Unlock()
		p.close()
		return
	}
	pp.free = append(pp.free, p)
	if !pp.armed {
		pp.armed = true
		pp.low = len(pp.free)
		if pp.timer == nil {
			pp.timer = time.AfterFunc(pp.every, pp.trim)
		} else {
			pp.timer.Reset(pp.every)
		}
	}
	pp.mu.Unlock()
}

// trim closes the pipes that no get needed since the last trim: the
// oldest, at the front of free. It runs again while any are left.
func (pp *pipePool) trim() {
	pp.mu.Lock()
	k := min(pp.low, len(pp.free))
	unused := make([]*pipe, k)
	copy(unused, pp.free[:k])
	n := copy(pp.free, pp.free[k:])
	clear(pp.free[n:])
	pp.free = pp.free[:n]
	pp.low = n
	if n > 0 {
		pp.timer.Reset(pp.every)
	} else {
		pp.armed = false
	}
	pp.mu.Unlock()
	for _, p := range unused {
		p.close()
	}
}

// IdlePipes returns how many pipes the relays' pool keeps unused for the
// next transfers. The pool closes each within two seconds of its last use:
// an idle relay holds none.
func IdlePipes() int { return pipes.idle() }

// idle returns how many pipes the pool keeps.
func (pp *pipePool) idle() int {
	pp.mu.Lock()
	defer pp.mu.Unlock()
	return len(pp.free)
}
