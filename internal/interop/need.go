package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Need returns the path of program, looked up in PATH and then in /usr/sbin
// and /sbin (where daemons live, outside an ordinary user's PATH). When it
// is missing, Need skips the test with a message naming debianPackage, or
// fails it when the environment has CI=true.
func Need(t testing.TB, program, debianPackage string) string {
	t.Helper()
	path, err := lookPath(program)
	if err != nil {
		missing(t, fmt.Sprintf("%s not found: install the Debian package %s (apt-get install %s)",
			program, debianPackage, debianPackage))
	}
	return path
}

// Missing skips the test with why, or fails it under CI=true, as [Need]
// does for a program: for a test that needs something else installed,
// such as an npm package.
func Missing(t testing.TB, why string) {
	t.Helper()
	missing(t, why)
}

// missing skips the test with why, or fails it under CI=true, where
// everything the tests need is installed and set up.
func missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("interop: %s (CI=true: a missing program or setup fails the test)", why)
	} else {
		t.Skipf("interop: %s", why)
	}
}

// lookPath finds program in PATH, then in the system's sbin directories.
func lookPath(program string) (string, error) {
	path, err := exec.LookPath(program)
	if err == nil || strings.ContainsRune(program, filepath.Separator) {
		return path, err
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		if p, err := exec.LookPath(filepath.Join(dir, program)); err == nil {
			return p, nil
		}
	}
	return "", err
}

// debianPackage returns the Debian package that ships program, or "" for a
// program the harness does not know.
func debianPackage(program string) string {
	switch program {
	case "curl", "ncat", "socat", "proxychains4", "privoxy", "microsocks", "haproxy", "chromium":
		return program
	case "danted":
		return "dante-server"
	case "socksify":
		return "dante-client"
	case "sshd":
		return "openssh-server"
	case "ssh", "ssh-keygen":
		return "openssh-client"
	case "useradd", "usermod", "chpasswd":
		return "passwd"
	}
	return ""
}

// program returns the path of name: name itself when it is a path, or
// what [Need] finds for a program the harness knows the package of.
func program(t testing.TB, name string) string {
	t.Helper()
	if strings.ContainsRune(name, filepath.Separator) {
		return name
	}
	pkg := debianPackage(name)
	if pkg == "" {
		path, err := lookPath(name)
		if err != nil {
			t.Fatalf("interop: %v (no Debian package known for %s: call Need and pass the path)", err, name)
		}
		return path
	}
	return Need(t, name, pkg)
}
