package interop

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"strings"
	"testing"
)

// accountComment marks, in the GECOS field, the accounts the harness
// manages; it changes no other account.
const accountComment = "sockstap interop tests"

// ensureAccount makes sure the system has an account name with password,
// for danted's username method, which reads /etc/shadow and so needs root.
// As root it creates a missing account (as .ci/run does: a system account
// with no home, no shell, expired for PAM) and sets the password of an
// account it manages; an account it does not manage is used as it is. As
// another user it skips the test, or fails it under CI=true.
func ensureAccount(t testing.TB, name, password string) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "danted checks passwords in /etc/shadow, which only root can read: run the test as root")
		return
	}
	u, err := user.Lookup(name)
	if err != nil {
		if _, unknown := errors.AsType[user.UnknownUserError](err); !unknown {
			t.Fatalf("interop: looking up account %s: %v", name, err)
		}
		t.Logf("interop: creating system account %s for danted's username method", name)
		runAdmin(t, nil, "useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
			"--shell", "/usr/sbin/nologin", "--comment", accountComment, name)
	} else if u.Name != accountComment {
		return // someone else's account: its password is the caller's business
	}
	// useradd ignores --expiredate for a system account: usermod sets it.
	runAdmin(t, nil, "usermod", "--expiredate", "1970-01-02", name)
	runAdmin(t, []byte(name+":"+password+"\n"), "chpasswd")
}

// runAdmin runs an account tool from the passwd package. useradd's exit
// status 9, "name already in use", is success: a test running beside this
// one created the account first.
func runAdmin(t testing.TB, stdin []byte, name string, args ...string) {
	t.Helper()
	path := Need(t, name, "passwd")
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok && name == "useradd" && ee.ExitCode() == 9 {
		return
	}
	if err != nil {
		t.Fatalf("interop: %s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}
