package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/listener"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// build builds the command into a temporary directory of the test, and
// returns its path.
func build(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	require.NoError(t, err)
	bin := filepath.Join(t.TempDir(), "fetch")
	out, err := exec.Command(goTool, "build", "-o", bin, ".").CombinedOutput()
	require.NoError(t, err, "go build: %s", out)
	return bin
}

// result is what a run of the command did.
type result struct {
	stdout, stderr []byte
	code           int
}

// runFetch runs the command bin with args and the proxy variables of
// env (the others unset).
func runFetch(t *testing.T, bin string, env map[string]string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sockstest.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	for _, kv := range os.Environ() {
		switch strings.ToUpper(strings.SplitN(kv, "=", 2)[0]) {
		case "ALL_PROXY", "NO_PROXY", "HTTP_PROXY", "HTTPS_PROXY":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		code = ee.ExitCode()
	} else {
		require.NoError(t, err)
	}
	return result{stdout.Bytes(), stderr.Bytes(), code}
}

// startProxy starts one of our listeners relaying on loopback, and returns
// its address and what it logs.
func startProxy(t *testing.T) (string, *sockstest.Logs) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	logger, logs := sockstest.NewLogger()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		listener.Serve(ctx, ln, &listener.Config{Logger: logger})
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(sockstest.Timeout):
			t.Error("proxy did not stop in time")
		}
	})
	return ln.Addr().String(), logs
}

func TestFetch(t *testing.T) {
	bin := build(t)
	page := make([]byte, 100<<10)
	rand.Read(page)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/page" {
			http.NotFound(w, r)
			return
		}
		w.Write(page)
	}))
	defer origin.Close()
	originAddr := origin.Listener.Addr().String()
	hop1, logs1 := startProxy(t)
	hop2, logs2 := startProxy(t)

	t.Run("one proxy", func(t *testing.T) {
		r := runFetch(t, bin, nil, "-proxy", "socks5h://"+hop1, origin.URL+"/page")
		require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
		assert.Equal(t, page, r.stdout)
		assert.Empty(t, r.stderr)
		logs1.Wait(t, sockstest.Key("target", originAddr))
	})

	t.Run("a chain, first hop first", func(t *testing.T) {
		r := runFetch(t, bin, nil, "-proxy", "socks5://"+hop1, "-proxy", "socks4a://"+hop2, origin.URL+"/page")
		require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
		assert.Equal(t, page, r.stdout)
		logs1.Wait(t, sockstest.Key("target", hop2))
		rec := logs2.Wait(t, sockstest.Key("target", originAddr))
		assert.Equal(t, "socks4", rec["version"], "the origin's address went as SOCKS4")
	})

	t.Run("the environment", func(t *testing.T) {
		_, logs := startProxy(t)
		hop3, logs3 := startProxy(t)
		r := runFetch(t, bin, map[string]string{"ALL_PROXY": "socks4://" + hop3}, origin.URL+"/page")
		require.Equal(t, 0, r.code, "stderr: %s", r.stderr)
		assert.Equal(t, page, r.stdout)
		assert.Equal(t, "socks4", logs3.Wait(t, sockstest.Key("target", originAddr))["version"])
		assert.Empty(t, logs.All())
	})

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	down := ln.Addr().String()
	require.NoError(t, ln.Close())

	failures := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want string
	}{
		{"proxy down", nil, []string{"-proxy", "socks5://" + down, origin.URL + "/page"}, 1, "connection refused"},
		{"target refused", nil, []string{"-proxy", "socks5://" + hop1, "http://" + down + "/"}, 1, "connection refused"},
		{"not found", nil, []string{"-proxy", "socks5h://" + hop1, origin.URL + "/missing"}, 1, "404 Not Found"},
		{"not a proxy URL", nil, []string{"-proxy", "http://" + hop1, origin.URL + "/page"}, 1, `unsupported scheme "http"`},
		{"bad ALL_PROXY", map[string]string{"ALL_PROXY": "ftp://" + hop1}, []string{origin.URL + "/page"}, 1, "ALL_PROXY"},
		{"all peers down", map[string]string{"ALL_PROXY": "socks5://" + down, "NO_PROXY": "example.com"}, []string{origin.URL + "/page"}, 1, "connection refused"},
		{"no URL", nil, nil, 2, "usage: fetch"},
	}
	for _, f := range failures {
		t.Run(f.name, func(t *testing.T) {
			r := runFetch(t, bin, f.env, f.args...)
			assert.Equal(t, f.code, r.code)
			assert.Empty(t, r.stdout)
			assert.Contains(t, string(r.stderr), f.want)
			if f.code == 1 {
				assert.True(t, strings.HasPrefix(string(r.stderr), "fetch: "), "%q", r.stderr)
				assert.Equal(t, 1, strings.Count(string(r.stderr), "\n"), "one line: %q", r.stderr)
			}
		})
	}
}
