package httpgate

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/interop"
)

// cacheTestsDir holds the npm package of http-cache-tests (installed by
// .ci/run: npm ci in that folder), the preload that sends its requests to
// a proxy, the runner, and the committed baseline.
const cacheTestsDir = "testdata/cachetests"

// cacheSuite is what run.mjs prints.
type cacheSuite struct {
	Suite   string `json:"suite"`
	Summary map[string]struct {
		Passed int `json:"passed"`
		Total  int `json:"total"`
	} `json:"summary"`
	Results map[string]struct {
		Suite  string `json:"suite"`
		Kind   string `json:"kind"`
		Result string `json:"result"`
		Detail string `json:"detail,omitempty"`
	} `json:"results"`
}

// TestCacheConformance runs Mark Nottingham's http-cache-tests (npm
// http-cache-tests) against the gateway as a forward proxy with a cache,
// and fails when a test that passes in the committed baseline
// (testdata/cachetests/baseline.json) does not pass any more. With
// HTTPGATE_UPDATE_BASELINE=1 it writes the baseline instead.
func TestCacheConformance(t *testing.T) {
	if testing.Short() {
		t.Skip("the cache suite takes about half a minute")
	}
	node := interop.Need(t, "node", "nodejs")
	if _, err := os.Stat(filepath.Join(cacheTestsDir, "node_modules", "http-cache-tests")); err != nil {
		interop.Missing(t, "http-cache-tests not installed: run npm ci in httpgate/"+cacheTestsDir)
	}
	w := newWorld(t, &Gateway{Cache: NewCache(64 << 20)}, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	resultsPath := filepath.Join(t.TempDir(), "results.json")
	cmd := exec.CommandContext(ctx, node, "--no-warnings", "--require", "./proxy.cjs", "run.mjs", resultsPath)
	cmd.Dir = cacheTestsDir
	cmd.Env = append(os.Environ(), "HTTPGATE_PROXY="+w.addr)
	cmd.Stderr = &testWriter{t}
	require.NoError(t, cmd.Run())
	out, err := os.ReadFile(resultsPath)
	require.NoError(t, err)
	var got cacheSuite
	require.NoError(t, json.Unmarshal(out, &got))
	for _, kind := range []string{"required", "optimal", "check"} {
		s := got.Summary[kind]
		t.Logf("%s: %d of %d pass", kind, s.Passed, s.Total)
	}

	path := filepath.Join(cacheTestsDir, "baseline.json")
	if os.Getenv("HTTPGATE_UPDATE_BASELINE") == "1" {
		b, err := json.MarshalIndent(got, "", " ")
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(path, append(b, '\n'), 0o644))
		t.Logf("wrote %s", path)
		return
	}
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var base cacheSuite
	require.NoError(t, json.Unmarshal(b, &base))
	var regressed []string
	for id, r := range base.Results {
		if r.Result == "pass" && got.Results[id].Result != "pass" {
			regressed = append(regressed, id+": "+got.Results[id].Result+" "+got.Results[id].Detail)
		}
	}
	sort.Strings(regressed)
	assert.Empty(t, regressed, "tests that pass in the baseline and fail now")
	for kind, s := range base.Summary {
		assert.GreaterOrEqual(t, got.Summary[kind].Passed, s.Passed, "%s tests passing", kind)
	}
}

// testWriter writes to the test log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", p)
	return len(p), nil
}
