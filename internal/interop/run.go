package interop

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// runTimeout bounds a client program run with a context that has no
// deadline of its own.
const runTimeout = 20 * time.Second

// Run runs the client program name (a path, or a program the harness knows
// the Debian package of, found as [Need] finds it) with args, and returns
// what it wrote to its standard output. A program that fails, or outlives
// ctx (or 20 seconds, when ctx has no deadline), fails the test with its
// standard error.
func Run(t testing.TB, ctx context.Context, name string, args ...string) []byte {
	t.Helper()
	return RunInput(t, ctx, nil, name, args...)
}

// RunInput is [Run] with stdin as the program's standard input.
func RunInput(t testing.TB, ctx context.Context, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	out, err := Try(t, ctx, stdin, name, args...)
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
	return out
}

// Try runs the client program name as [RunInput] does, but returns its
// failure instead of failing the test: for a client that is expected to
// fail. The error carries the command line and the program's standard
// error. A program that is missing still skips or fails the test, as
// [Need] does.
func Try(t testing.TB, ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	t.Helper()
	return tryEnv(t, ctx, stdin, nil, name, args...)
}

// tryEnv is Try with env, "KEY=value" strings, added to the program's
// environment.
func tryEnv(t testing.TB, ctx context.Context, stdin []byte, env []string, name string, args ...string) ([]byte, error) {
	t.Helper()
	path := program(t, name)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, runTimeout)
		defer cancel()
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Dir = t.TempDir()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second // a grandchild holding the pipes open does not hold up Wait
	err := cmd.Run()
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return stdout.Bytes(), fmt.Errorf("%s %s: %w\nstderr:\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	if stderr.Len() > 0 {
		t.Logf("interop: %s wrote to stderr:\n%s", name, stderr.Bytes())
	}
	return stdout.Bytes(), nil
}
