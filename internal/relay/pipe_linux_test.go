package relay

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
)

// fdLink is what /proc/self/fd says descriptor fd is ("pipe:[inode]"), or
// "" when it is not open.
func fdLink(fd int) string {
	link, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	return link
}

// pipeOpen reports whether p's two ends are still the pipe whose ends
// /proc/self/fd named links: a closed pipe's numbers may have been given
// to new descriptors since, but not to the same pipe.
func pipeOpen(p *pipe, links [2]string) bool {
	return fdLink(p.r) == links[0] && fdLink(p.w) == links[1]
}

func links(p *pipe) [2]string { return [2]string{fdLink(p.r), fdLink(p.w)} }

// pipeBytes returns how many bytes wait in the pipe whose read end is fd.
func pipeBytes(t *testing.T, fd int) int {
	t.Helper()
	var n int32
	_, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TIOCINQ, uintptr(unsafe.Pointer(&n)))
	require.Zero(t, errno)
	return int(n)
}

// testPool returns a pool whose pipes the test's cleanup closes.
func testPool(t *testing.T, max int, every time.Duration) *pipePool {
	pp := &pipePool{max: max, every: every}
	t.Cleanup(func() {
		pp.mu.Lock()
		defer pp.mu.Unlock()
		if pp.timer != nil {
			pp.timer.Stop()
		}
		for _, p := range pp.free {
			p.close()
		}
		pp.free = nil
	})
	return pp
}

func TestPipePool(t *testing.T) {
	t.Run("a pipe given back is lent again", func(t *testing.T) {
		pp := testPool(t, 4, time.Hour)
		p, err := pp.get()
		require.NoError(t, err)
		assert.Equal(t, int64(1), pp.out.Load())
		pp.put(p)
		assert.Zero(t, pp.out.Load())
		assert.Equal(t, 1, pp.idle())
		q, err := pp.get()
		require.NoError(t, err)
		assert.Same(t, p, q)
		pp.put(q)
	})

	t.Run("a pipe with bytes in it is closed", func(t *testing.T) {
		pp := testPool(t, 4, time.Hour)
		p, err := pp.get()
		require.NoError(t, err)
		l := links(p)
		_, err = syscall.Write(p.w, []byte("left over"))
		require.NoError(t, err)
		p.n = len("left over")
		pp.put(p)
		assert.Zero(t, pp.idle(), "not kept")
		assert.False(t, pipeOpen(p, l), "closed")
	})

	t.Run("keeps at most max", func(t *testing.T) {
		pp := testPool(t, 2, time.Hour)
		var ps []*pipe
		for range 3 {
			p, err := pp.get()
			require.NoError(t, err)
			ps = append(ps, p)
		}
		third := links(ps[2])
		for _, p := range ps {
			pp.put(p)
		}
		assert.Equal(t, 2, pp.idle())
		assert.False(t, pipeOpen(ps[2], third), "the one over the bound is closed")
	})

	t.Run("closes the pipes no one needs", func(t *testing.T) {
		pp := testPool(t, 8, 10*time.Millisecond)
		var ps []*pipe
		var ls [][2]string
		for range 3 {
			p, err := pp.get()
			require.NoError(t, err)
			ps = append(ps, p)
			ls = append(ls, links(p))
		}
		for _, p := range ps {
			pp.put(p)
		}
		require.Eventually(t, func() bool { return pp.idle() == 0 }, sockstest.Timeout, time.Millisecond)
		for i, p := range ps {
			assert.False(t, pipeOpen(p, ls[i]), "pipe %d closed", i)
		}
		// Emptied, the pool lends and keeps pipes again.
		p, err := pp.get()
		require.NoError(t, err)
		pp.put(p)
		require.Eventually(t, func() bool { return pp.idle() == 0 }, sockstest.Timeout, time.Millisecond)
	})
}

// TestPipeSize checks that a pipe holds a whole splice's worth.
func TestPipeSize(t *testing.T) {
	p, err := newPipe()
	require.NoError(t, err)
	defer p.close()
	size, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(p.w), 1032, 0) // F_GETPIPE_SZ
	require.Zero(t, errno)
	if int(size) < pipeSize {
		t.Skipf("pipes here are at most %d bytes (/proc/sys/fs/pipe-max-size)", size)
	}
	assert.Equal(t, pipeSize, int(size))
}
