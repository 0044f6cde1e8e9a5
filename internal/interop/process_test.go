package interop

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStartOnFreePortRetries makes the first port a daemon is started on
// one that is taken, and checks that the harness sees the daemon exit for
// it and starts it again on another port.
func TestStartOnFreePortRetries(t *testing.T) {
	t.Parallel()
	path := Need(t, "microsocks", "microsocks")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	takenPort := uint16(taken.Addr().(*net.TCPAddr).Port)

	dir := t.TempDir()
	var ports []uint16
	p, addr := startOnFreePort(t, "microsocks", func(port uint16) *process {
		if len(ports) == 0 {
			port = takenPort
		}
		ports = append(ports, port)
		return start(t, dir, "microsocks", path, "-i", "127.0.0.1", "-p", fmt.Sprint(port))
	})
	require.Len(t, ports, 2, "attempts")
	assert.Equal(t, int(ports[1]), addr.Port)
	assert.NotEqual(t, int(takenPort), addr.Port)
	ap, ok, err := listening(p.pid(), loopback, ports[1])
	require.NoError(t, err)
	assert.True(t, ok, "microsocks does not own the listener on %d", ports[1])
	assert.Equal(t, addr.AddrPort(), ap)
}

// TestStopKillsGroup starts a shell whose background child ignores
// SIGTERM and outlives it, and checks that stop leaves nothing of the
// process group.
func TestStopKillsGroup(t *testing.T) {
	t.Parallel()
	sh := Need(t, "sh", "dash")
	p := start(t, t.TempDir(), "sh", sh, "-c", `(trap "" TERM; echo ready; exec sleep 600) & exec sleep 600`)
	pgid := p.pid()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; !strings.Contains(p.output(), "ready"); i++ {
		require.Less(t, i, 300, "the child that ignores SIGTERM did not start")
		<-tick.C
	}
	require.NoError(t, p.stop())
	select {
	case <-p.exited:
	default:
		t.Fatal("stop returned before the leader was waited for")
	}
	// The orphan is reaped by init, not by us, and maybe not at once: what
	// counts is that no member of the group is left running.
	var live []int
	for range 300 {
		if live = liveMembers(t, pgid); len(live) == 0 {
			break
		}
		<-tick.C
	}
	assert.Empty(t, live, "processes of group %d still running", pgid)
	assert.NoError(t, p.stop(), "a second stop")
}

// liveMembers returns the processes of group pgid that are not zombies,
// from /proc/PID/stat: "pid (comm) state ppid pgrp ...", where comm may
// hold spaces and parentheses.
func liveMembers(t *testing.T, pgid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	require.NoError(t, err)
	var live []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // gone since Glob
		}
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 3 || f[0] == "Z" || f[2] != strconv.Itoa(pgid) {
			continue
		}
		pid, _ := strconv.Atoi(strings.Fields(s)[0])
		live = append(live, pid)
	}
	return live
}

// TestDaemon starts a program with Start, signals it, and checks that its
// output and its exit status come back.
func TestDaemon(t *testing.T) {
	t.Parallel()
	sh := Need(t, "sh", "dash")
	d := Start(t, "sh", sh, "-c", `trap 'echo got TERM; exit 3' TERM; echo ready; sleep 600 & wait`)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for i := 0; !strings.Contains(d.Output(), "ready"); i++ {
		require.Less(t, i, 300, "the shell did not start")
		<-tick.C
	}
	require.NoError(t, d.Signal(syscall.SIGTERM))
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	err := d.Wait(ctx)
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit)
	assert.Equal(t, 3, exit.ExitCode())
	assert.Contains(t, d.Output(), "got TERM")
	select {
	case <-d.Exited():
	default:
		t.Error("Exited is open after Wait returned")
	}
}

// TestDaemonListening checks that Listen finds the port a daemon chose,
// and that Listening sees it stop listening.
func TestDaemonListening(t *testing.T) {
	t.Parallel()
	path := Need(t, "microsocks", "microsocks")
	d := Start(t, "microsocks", path, "-i", "127.0.0.1", "-p", "0")
	addr := d.Listen(t, 0)
	ok, err := d.Listening(addr)
	require.NoError(t, err)
	assert.True(t, ok)
	other, err := d.Listening(loopbackAddr(uint16(addr.Port) - 1))
	require.NoError(t, err)
	assert.False(t, other, "a port the daemon does not listen on")
	require.NoError(t, d.Signal(syscall.SIGKILL))
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	require.Error(t, d.Wait(ctx), "killed")
	ok, err = d.Listening(addr)
	require.NoError(t, err)
	assert.False(t, ok, "listening after it exited")
}
