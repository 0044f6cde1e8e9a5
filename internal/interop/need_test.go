package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// recorder is a testing.TB that records, instead of doing, what Need asks
// of a test when a program is missing.
type recorder struct {
	testing.TB
	skipped, failed string
}

func (r *recorder) Helper() {}

func (r *recorder) Skipf(format string, args ...any) { r.skipped = fmt.Sprintf(format, args...) }

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }

func TestNeedFindsPrograms(t *testing.T) {
	for _, c := range []struct{ program, pkg string }{
		{"curl", "curl"},
		{"ncat", "ncat"},
		{"socat", "socat"},
		{"proxychains4", "proxychains4"},
		{"danted", "dante-server"},
		{"socksify", "dante-client"},
		{"microsocks", "microsocks"},
		{"privoxy", "privoxy"},
		{"haproxy", "haproxy"},
		{"sshd", "openssh-server"},
		{"ssh", "openssh-client"},
		{"chromium", "chromium"},
	} {
		t.Run(c.program, func(t *testing.T) {
			path := Need(t, c.program, c.pkg)
			assert.True(t, filepath.IsAbs(path), "path %q", path)
			assert.Equal(t, c.program, filepath.Base(path))
			info, err := os.Stat(path)
			require.NoError(t, err)
			assert.NotZero(t, info.Mode().Perm()&0o111, "%s is not executable", path)
			assert.Equal(t, c.pkg, debianPackage(c.program), "the package Run looks %s up with", c.program)
		})
	}
}

func TestNeedMissing(t *testing.T) {
	const program, pkg = "sockstap-no-such-program", "sockstap-no-such-package"
	for _, c := range []struct {
		ci         string
		wantSkip   bool
		wantFailed bool
	}{
		{ci: "", wantSkip: true},
		{ci: "false", wantSkip: true},
		{ci: "true", wantFailed: true},
	} {
		t.Run("CI="+c.ci, func(t *testing.T) {
			t.Setenv("CI", c.ci)
			r := &recorder{TB: t}
			assert.Empty(t, Need(r, program, pkg))
			msg := r.skipped
			if c.wantFailed {
				msg = r.failed
				assert.Empty(t, r.skipped, "skipped under CI=true")
			} else {
				assert.Empty(t, r.failed, "failed without CI=true")
			}
			assert.Contains(t, msg, program)
			assert.Contains(t, msg, "apt-get install "+pkg)
		})
	}
}
