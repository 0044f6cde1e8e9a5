package relay

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// The splice path: each direction between two TCP sockets waits for its
// source to be readable through the runtime's poller, holding no pipe,
// then borrows a pipe from a pool and splices what the socket has queued
// into it and on to the destination. The pipe goes back to the pool when
// the source has nothing more queued, so an idle relay holds its two
// sockets and nothing else.
//
// Go's own splice (TCPConn.ReadFrom) holds a pipe for as long as the call
// lasts, which for a relay is the connection's whole life: two pipes, four
// descriptors, a relay, and its pool gives pipes back only at a garbage
// collection.
//
// The system calls are those of Go's splice, one for one. A raw Read
// forgets the readiness the poller saw before it, so its first call must
// look: a one-byte MSG_PEEK says whether anything is queued without taking
// a pipe. After a wake-up the splice itself looks. A splice from a
// non-blocking socket moves what is queued, up to the pipe's size, so
// asking first how much (FIONREAD) would be a second call for the same
// answer; and the end of the stream, which FIONREAD cannot tell from an
// empty queue, is a splice that moves 0 bytes. While bytes keep coming,
// the pipe is kept from one burst to the next; the splice that finds
// nothing queued gives it back before the wait.

// spliceNonblock makes splice's pipe end non-blocking; the sockets are so
// already.
const spliceNonblock = 0x2 // SPLICE_F_NONBLOCK

// splicer moves one direction's bytes, from src to dst, through pipes
// borrowed for each burst.
type splicer struct {
	src, dst       net.Conn
	srcRaw, dstRaw syscall.RawConn
	pool           *pipePool

	p *pipe // the pipe borrowed, while a burst lasts

	// What the last call of a callback found.
	calls int // calls of readable in this wait: after the first, each follows a wake-up
	eof   bool
	errno error

	readable, writable func(fd uintptr) bool
}

// rawTCP returns c's raw connection, for the splice path, when c is a TCP
// connection; nil otherwise.
func rawTCP(c net.Conn) syscall.RawConn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

func (s *splicer) init(src, dst net.Conn, srcRaw, dstRaw syscall.RawConn) {
	*s = splicer{src: src, dst: dst, srcRaw: srcRaw, dstRaw: dstRaw, pool: &pipes}
	s.readable, s.writable = s.onReadable, s.onWritable
}

// queued reports whether a read on the socket would not wait: it has
// bytes queued, its end, or an error.
func queued(raw syscall.RawConn) bool {
	waits := true
	raw.Control(func(fd uintptr) {
		var b [1]byte
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		waits = err == syscall.EAGAIN
	})
	return !waits
}

// pending reports whether a read on src would not wait.
func (s *splicer) pending() bool { return queued(s.srcRaw) }

// copy moves bytes from src to dst until src's sender closes its write
// side (nil error), an error, or src's read deadline; it counts what it
// moves on d as it goes.
func (s *splicer) copy(d *direction) error {
	defer s.release()
	for {
		s.calls, s.eof, s.errno = 0, false, nil
		err := s.srcRaw.Read(s.readable)
		if err == nil && s.errno != nil {
			err = s.opError("read", s.src, s.errno)
		}
		if err != nil || s.eof {
			return err
		}
		n := s.p.n
		s.errno = nil
		err = s.dstRaw.Write(s.writable)
		if err == nil && s.errno != nil {
			err = s.opError("write", s.dst, s.errno)
		}
		d.n.Add(int64(n - s.p.n))
		d.moved.Store(time.Now().UnixNano())
		if err != nil {
			return err
		}
	}
}

// onReadable is the callback of the source's raw Read: it returns false
// to wait for readability (with no pipe held), and true once it has
// spliced bytes into the pipe, found the end of the stream, or an error.
func (s *splicer) onReadable(fd uintptr) bool {
	s.calls++
	if s.p == nil {
		if s.calls == 1 {
			// Called before any wait: whether there is anything to read
			// is told by a peek, without taking a pipe.
			var b [1]byte
			n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			switch {
			case err == syscall.EAGAIN:
				return false
			case err != nil:
				s.errno = os.NewSyscallError("recvfrom", err)
				return true
			case n == 0:
				s.eof = true
				return true
			}
		}
		p, err := s.pool.get()
		if err != nil {
			s.errno = err
			return true
		}
		s.p = p
	}
	for {
		n, err := syscall.Splice(int(fd), nil, s.p.w, nil, pipeSize, spliceNonblock)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			// Nothing queued: wait, with the pipe given back.
			s.release()
			return false
		case err != nil:
			s.errno = os.NewSyscallError("splice", err)
		case n == 0:
			s.eof = true
		default:
			s.p.n = int(n)
		}
		return true
	}
}

// onWritable is the callback of the destination's raw Write: it splices
// the pipe's bytes out, returning false to wait for room.
func (s *splicer) onWritable(fd uintptr) bool {
	for s.p.n > 0 {
		n, err := syscall.Splice(s.p.r, nil, int(fd), nil, s.p.n, spliceNonblock)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return false
		case err != nil:
			s.errno = os.NewSyscallError("splice", err)
			return true
		case n == 0:
			s.errno = io.ErrNoProgress
			return true
		}
		s.p.n -= int(n)
	}
	return true
}

// release gives the pipe back, if one is held.
func (s *splicer) release() {
	if s.p != nil {
		s.pool.put(s.p)
		s.p = nil
	}
}

func (s *splicer) opError(op string, c net.Conn, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
