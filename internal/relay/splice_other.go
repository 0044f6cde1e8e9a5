//go:build !linux

package relay

import (
	"net"
	"syscall"
)

// splicer is the splice path, which only Linux has: elsewhere a direction
// copies through its destination's ReadFrom.
type splicer struct{}

// rawTCP returns nil: there is no splice path.
func rawTCP(c net.Conn) syscall.RawConn { return nil }

func (s *splicer) init(src, dst net.Conn, srcRaw, dstRaw syscall.RawConn) {}

func (s *splicer) copy(d *direction) error { panic("relay: no splice path") }

// IdlePipes returns 0: there is no pool of pipes.
func IdlePipes() int { return 0 }

// queued reports false: only the splice path looks.
func queued(raw syscall.RawConn) bool { return false }

func (s *splicer) pending() bool { return false }
