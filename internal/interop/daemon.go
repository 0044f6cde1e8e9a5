package interop

import (
	"context"
	"net"
	"net/netip"
	"os"
	"testing"
)

// A Daemon is a program a test started with [Start], such as a build of
// one of sockstap's own commands.
type Daemon struct {
	p *process
}

// Start starts the program at path with args as the harness starts the
// daemons it knows: in a process group of its own, in a temporary
// directory of the test's, with its standard output and error in a file
// there, which goes to the test log when the test fails. The test's
// cleanup stops it (SIGTERM to the group, then SIGKILL) and waits for it.
func Start(t testing.TB, name, path string, args ...string) *Daemon {
	t.Helper()
	return &Daemon{p: start(t, t.TempDir(), name, path, args...)}
}

// Listen waits until d listens on 127.0.0.1 and port, or on 127.0.0.1 and
// any port when port is 0, and returns the address. It fails the test,
// with d's output, when d exits first or does not listen within 10
// seconds.
func (d *Daemon) Listen(t testing.TB, port uint16) *net.TCPAddr {
	t.Helper()
	return d.p.listen(t, port)
}

// Listening reports whether d owns a socket listening on addr now.
func (d *Daemon) Listening(addr *net.TCPAddr) (bool, error) {
	if err := procNet(); err != nil {
		return false, err
	}
	ap := addr.AddrPort()
	_, ok, err := listening(d.p.pid(), ap.Addr().Unmap(), ap.Port())
	return ok, err
}

// ConnectedTo reports whether d holds an established TCP connection to
// addr now.
func (d *Daemon) ConnectedTo(addr *net.TCPAddr) (bool, error) {
	if err := procNet(); err != nil {
		return false, err
	}
	return connected(d.p.pid(), addr.AddrPort())
}

// Pid returns d's process id.
func (d *Daemon) Pid() int { return d.p.pid() }

// Signal sends sig to d's process (not to the rest of its group).
func (d *Daemon) Signal(sig os.Signal) error { return d.p.cmd.Process.Signal(sig) }

// Exited is closed once d has exited and been waited for.
func (d *Daemon) Exited() <-chan struct{} { return d.p.exited }

// Wait waits until d exits, and returns what [os/exec.Cmd.Wait] returned
// for it; or, when ctx ends first, ctx's error.
func (d *Daemon) Wait(ctx context.Context) error {
	select {
	case <-d.p.exited:
		return d.p.waitErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Output returns what d has written to its standard output and error so
// far.
func (d *Daemon) Output() string { return d.p.output() }

// loopbackAddr returns the address of port on 127.0.0.1.
func loopbackAddr(port uint16) *net.TCPAddr {
	return net.TCPAddrFromAddrPort(netip.AddrPortFrom(loopback, port))
}
