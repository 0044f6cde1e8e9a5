package interop

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// nodeSocksDir is the folder of the node script that drives npm's socks
// package, with its package.json and package-lock.json; .ci/run installs
// the package there (npm ci).
func nodeSocksDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "node", "socks")
}

// NodeSocksOptions says what a run of npm's socks client asks for.
type NodeSocksOptions struct {
	Command string // "connect", "bind" or "associate"; the script says which it drives
	Version int    // 4 or 5
	Proxy   string // the SOCKS server, "host:port"
	Dest    string // the destination, "host:port": the target, BIND's expected peer, or where ASSOCIATE's datagrams go
	UserID  string // SOCKS4's USERID; empty sends none
}

// A NodeEvent is what npm's socks client reports: "bound" (BIND's first
// reply), "established" (the tunnel is open), "datagram" (ASSOCIATE: an
// answer came), "error"; Host and Port are the reply's address, when it
// has one, or the datagram's sender.
type NodeEvent struct {
	Event   string `json:"event"`
	Host    string `json:"host"`
	Port    int    `json:"port"`
	Message string `json:"message"`
}

// String returns "host:port".
func (e NodeEvent) String() string {
	return e.Host + ":" + strconv.Itoa(e.Port)
}

// NodeSocks is a run of npm's socks client (SocksClient), driven by the
// script in internal/interop/node/socks. Once the tunnel is open, what is
// written to Stdin goes through it, and Stdin's Close half-closes it;
// Output returns what came back, once the program has ended. Through an
// association, each line written to Stdin is a datagram, and each answer
// a line of Output; Stdin's Close ends the association.
type NodeSocks struct {
	Stdin io.WriteCloser

	t      testing.TB
	cmd    *exec.Cmd
	events chan NodeEvent
	stdout bytes.Buffer
	stderr bytes.Buffer
	exited chan struct{}
	err    error // Wait's; read after exited is closed
	once   sync.Once
}

// nodeTimeout bounds a run of the client, and each wait for an event.
const nodeTimeout = 20 * time.Second

// StartNodeSocks starts npm's socks client as opts says. It needs node
// (Debian's nodejs) and the npm package, installed by .ci/run (npm ci in
// internal/interop/node/socks): when either is missing it skips the test,
// or fails it under CI=true, as [Need] does. The test's cleanup kills the
// client if it still runs.
func StartNodeSocks(t testing.TB, opts NodeSocksOptions) *NodeSocks {
	t.Helper()
	node := Need(t, "node", "nodejs")
	dir := nodeSocksDir()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "socks", "package.json")); err != nil {
		Missing(t, "npm's socks is not installed: run npm ci in "+dir)
	}
	host, port, err := net.SplitHostPort(opts.Proxy)
	if err != nil {
		t.Fatalf("interop: proxy %q: %v", opts.Proxy, err)
	}
	dhost, dport, err := net.SplitHostPort(opts.Dest)
	if err != nil {
		t.Fatalf("interop: destination %q: %v", opts.Dest, err)
	}
	args := []string{"client.mjs", opts.Command, strconv.Itoa(opts.Version), host, port, dhost, dport}
	if opts.UserID != "" {
		args = append(args, opts.UserID)
	}
	evR, evW, err := os.Pipe()
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
	n := &NodeSocks{t: t, events: make(chan NodeEvent, 8), exited: make(chan struct{})}
	n.cmd = exec.Command(node, args...)
	n.cmd.Dir = dir
	n.cmd.ExtraFiles = []*os.File{evW} // descriptor 3
	n.cmd.Stdout, n.cmd.Stderr = &n.stdout, &n.stderr
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	n.cmd.WaitDelay = time.Second
	if n.Stdin, err = n.cmd.StdinPipe(); err != nil {
		t.Fatalf("interop: %v", err)
	}
	if err := n.cmd.Start(); err != nil {
		evR.Close()
		evW.Close()
		t.Fatalf("interop: starting node: %v", err)
	}
	evW.Close() // the child has its own
	go func() {
		defer evR.Close()
		defer close(n.events)
		sc := bufio.NewScanner(evR)
		for sc.Scan() {
			var e NodeEvent
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				e = NodeEvent{Event: "error", Message: fmt.Sprintf("unreadable event %q", sc.Bytes())}
			}
			n.events <- e
		}
	}()
	go func() {
		n.err = n.cmd.Wait()
		close(n.exited)
	}()
	t.Cleanup(func() {
		n.kill()
		<-n.exited
		if t.Failed() {
			t.Logf("interop: node %q: stderr:\n%s", args, n.stderr.Bytes())
		}
	})
	return n
}

// kill ends the client's process group.
func (n *NodeSocks) kill() {
	n.once.Do(func() { syscall.Kill(-n.cmd.Process.Pid, syscall.SIGKILL) })
}

// Next returns the client's next event, which must be want: an error
// event, another event, or none within 20 seconds fails the test.
func (n *NodeSocks) Next(want string) NodeEvent {
	n.t.Helper()
	select {
	case e, ok := <-n.events:
		switch {
		case !ok:
			n.t.Fatalf("interop: node ended before %q: %v\nstderr:\n%s", want, n.wait(), n.stderr.Bytes())
		case e.Event != want:
			n.t.Fatalf("interop: node reported %+v, want %q", e, want)
		}
		return e
	case <-time.After(nodeTimeout):
		n.t.Fatalf("interop: no %q from node within %v", want, nodeTimeout)
	}
	return NodeEvent{}
}

// wait waits for the client to exit, at most 20 seconds, and returns
// Wait's error.
func (n *NodeSocks) wait() error {
	select {
	case <-n.exited:
		return n.err
	case <-time.After(nodeTimeout):
		n.kill()
		<-n.exited
		return fmt.Errorf("node did not exit within %v", nodeTimeout)
	}
}

// Output waits for the client to exit, and returns what came back through
// the tunnel; a client that fails fails the test.
func (n *NodeSocks) Output() []byte {
	n.t.Helper()
	if err := n.wait(); err != nil {
		n.t.Fatalf("interop: node: %v\nstderr:\n%s", err, n.stderr.Bytes())
	}
	return n.stdout.Bytes()
}

// Failure waits for the client to exit, and returns the message of the
// error it reported; a client that exits without one fails the test.
func (n *NodeSocks) Failure() string {
	n.t.Helper()
	for e := range n.events {
		if e.Event == "error" {
			n.wait()
			return e.Message
		}
	}
	n.t.Fatalf("interop: node ended without an error: %v", n.wait())
	return ""
}
