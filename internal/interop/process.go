package interop

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds on waiting for daemons.
const (
	readyTimeout = 10 * time.Second // from start to listening
	stopTimeout  = 5 * time.Second  // from SIGTERM to exit, then from SIGKILL to exit
	bindAttempts = 5                // ports tried when a daemon cannot bind the one it is given
	maxPolls     = 400              // checks of a daemon's sockets while it starts
	maxPollDelay = 50 * time.Millisecond
)

var loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})

// A process is a daemon the harness started, leader of a process group of
// its own, with its standard output and error in a log file.
type process struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once the process has been waited for
	waitErr error         // what Wait returned; read after exited is closed
	stopped sync.Once
	shown   bool // the output is in the test log already
}

// start starts the program at path with args, in dir, and registers a
// cleanup that stops it and, when the test has failed, copies its output
// into the test log.
func start(t testing.TB, dir, name, path string, args ...string) *process {
	t.Helper()
	log, err := os.CreateTemp(dir, name+"-*.log")
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
	defer log.Close() // the child has its own copy
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = log, log // a file: no copying goroutine that children could hold up
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// One group: stop reaches the children the daemon forks too.
		Setpgid: true,
		// The test binary dying (a timeout's panic) kills the daemon. The
		// signal follows the thread that started it, which Go keeps
		// unless a goroutine locked to it ends: a safety net, not a rule.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("interop: starting %s: %v", name, err)
	}
	p := &process{name: name, cmd: cmd, logPath: log.Name(), exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("interop: %v", err)
		}
		if t.Failed() && !p.shown {
			t.Logf("interop: %s %q:\n%s", name, args, p.output())
		}
	})
	return p
}

// pid returns the process id, which is also its process group's id.
func (p *process) pid() int { return p.cmd.Process.Pid }

// output returns what the process has written to its standard output and
// error so far.
func (p *process) output() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(log unreadable: %v)", err)
	}
	return string(b)
}

// stop ends the process group: SIGTERM, so that the daemon stops its
// children itself, then SIGKILL if the leader has not exited in time, and
// SIGKILL again for any member that outlived the leader. It waits for the
// leader; only the first call does anything.
func (p *process) stop() (err error) {
	p.stopped.Do(func() {
		pgid := p.pid()
		syscall.Kill(-pgid, syscall.SIGTERM)
		timer := time.NewTimer(stopTimeout)
		defer timer.Stop()
		select {
		case <-p.exited:
		case <-timer.C:
			syscall.Kill(-pgid, syscall.SIGKILL)
			timer.Reset(stopTimeout)
			select {
			case <-p.exited:
			case <-timer.C:
				err = fmt.Errorf("%s (pid %d) did not exit after SIGKILL", p.name, pgid)
				return
			}
		}
		// The leader is waited for, but the group's id stays reserved while
		// a member lives, so this reaches only what is left of ours.
		syscall.Kill(-pgid, syscall.SIGKILL)
	})
	return err
}

// errExited reports a daemon that exited before it listened.
var errExited = errors.New("exited before listening")

// awaitListen waits until the process owns a socket listening on ip and
// port (any port, when port is 0), and returns its address. It checks the
// process's sockets with a growing delay between checks, bounded in count
// and in total time, and returns early when the process exits.
func (p *process) awaitListen(ip netip.Addr, port uint16) (netip.AddrPort, error) {
	if err := procNet(); err != nil {
		return netip.AddrPort{}, err
	}
	deadline := time.NewTimer(readyTimeout)
	defer deadline.Stop()
	delay := time.Millisecond
	for range maxPolls {
		ap, ok, err := listening(p.pid(), ip, port)
		if err != nil {
			return netip.AddrPort{}, err
		}
		if ok {
			return ap, nil
		}
		next := time.NewTimer(delay)
		select {
		case <-p.exited:
			next.Stop()
			return netip.AddrPort{}, fmt.Errorf("%s %w (%v)", p.name, errExited, p.waitErr)
		case <-deadline.C:
			next.Stop()
			return netip.AddrPort{}, fmt.Errorf("%s not listening on %v port %d after %v", p.name, ip, port, readyTimeout)
		case <-next.C:
		}
		delay = min(2*delay, maxPollDelay)
	}
	return netip.AddrPort{}, fmt.Errorf("%s not listening on %v port %d after %d checks", p.name, ip, port, maxPolls)
}

// listen waits until p listens on 127.0.0.1 and port (any port when port is
// 0), and returns the address; it fails the test, with the process's
// output, if p does not.
func (p *process) listen(t testing.TB, port uint16) *net.TCPAddr {
	t.Helper()
	ap, err := p.awaitListen(loopback, port)
	if err != nil {
		p.shown = true
		t.Fatalf("interop: %v\n%s output:\n%s", err, p.name, p.output())
	}
	return net.TCPAddrFromAddrPort(ap)
}

// bindFailed matches what the daemons write when their port is taken.
var bindFailed = regexp.MustCompile(`(?i)address already in use|can't bind|cannot bind`)

// startOnFreePort finds a free port on 127.0.0.1, and calls launch to start
// a daemon that listens on it; when the daemon exits because another
// program took the port in between, it tries another port, up to
// bindAttempts times. It returns the daemon and its address once the
// daemon listens, or fails the test.
//
// The free port is one the kernel assigns to a listener that is closed at
// once; the daemon binds it a moment later. Readiness is the daemon's own
// socket listening, so a program that took the port meanwhile is never
// mistaken for the daemon.
func startOnFreePort(t testing.TB, name string, launch func(port uint16) *process) (*process, *net.TCPAddr) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		port := freePort(t)
		p := launch(port)
		ap, err := p.awaitListen(loopback, port)
		if err == nil {
			return p, net.TCPAddrFromAddrPort(ap)
		}
		out := p.output()
		if stopErr := p.stop(); stopErr != nil {
			t.Errorf("interop: %v", stopErr)
		}
		if attempt < bindAttempts && errors.Is(err, errExited) && bindFailed.MatchString(out) {
			t.Logf("interop: %s could not bind port %d (attempt %d of %d); trying another", name, port, attempt, bindAttempts)
			continue
		}
		p.shown = true
		t.Fatalf("interop: %v\n%s output:\n%s", err, name, out)
	}
}

// freePort returns a port on 127.0.0.1 that nobody listened on a moment ago.
func freePort(t testing.TB) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// writeFile writes a configuration file named name in dir, and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatalf("interop: %v", err)
	}
	return path
}
