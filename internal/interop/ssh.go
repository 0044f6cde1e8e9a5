package interop

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// SSHDynamic starts an sshd of its own on 127.0.0.1 (Debian package
// openssh-server), then `ssh -N -D` to it (openssh-client), and returns the
// address of ssh's dynamic forwarding: a SOCKS 4, 4a and 5 server whose
// connections leave from the sshd. The host key and the client's key are
// generated in the test's temporary directory; the client logs in as the
// current user with its key, in batch mode, trusting the host key it is
// shown and remembering none.
//
// As root, sshd needs its privilege separation directory, /run/sshd, which
// the package creates only when its service starts: SSHDynamic creates it
// if it is missing.
func SSHDynamic(t testing.TB) *net.TCPAddr {
	t.Helper()
	sshd := Need(t, "sshd", "openssh-server")
	ssh := Need(t, "ssh", "openssh-client")
	keygen := Need(t, "ssh-keygen", "openssh-client")
	me, err := user.Current()
	if err != nil {
		t.Fatalf("interop: %v", err)
	}
	if os.Geteuid() == 0 {
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			t.Fatalf("interop: sshd's privilege separation directory: %v", err)
		}
	}
	dir := t.TempDir()
	hostKey, clientKey := filepath.Join(dir, "host_key"), filepath.Join(dir, "client_key")
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	for _, key := range []string{hostKey, clientKey} {
		Run(t, ctx, keygen, "-q", "-t", "ed25519", "-N", "", "-C", "sockstap-interop", "-f", key)
	}

	_, server := startOnFreePort(t, "sshd", func(port uint16) *process {
		conf := writeFile(t, dir, "sshd_config", sshdConfig(port, hostKey, clientKey+".pub", me.Username))
		return start(t, dir, "sshd", sshd, "-D", "-e", "-f", conf)
	})
	_, addr := startOnFreePort(t, "ssh", func(port uint16) *process {
		return start(t, dir, "ssh", ssh, "-N",
			"-D", fmt.Sprintf("127.0.0.1:%d", port),
			"-F", "/dev/null", // none of the user's settings
			"-i", clientKey,
			"-p", fmt.Sprint(server.Port),
			"-o", "IdentitiesOnly=yes",
			"-o", "BatchMode=yes",
			"-o", "StrictHostKeyChecking=no",
			"-o", "UserKnownHostsFile=/dev/null",
			"-o", "ExitOnForwardFailure=yes", // a port taken is an exit, and another try
			"-o", "LogLevel=ERROR",
			"-l", me.Username,
			"127.0.0.1")
	})
	return addr
}

// sshdConfig returns the configuration of an sshd that listens on
// 127.0.0.1 and port, accepts only the key in authorizedKeys and only for
// login, and allows TCP forwarding. StrictModes is off: the files are in a
// temporary directory whose modes sshd would otherwise judge.
func sshdConfig(port uint16, hostKey, authorizedKeys, login string) string {
	return strings.Join([]string{
		fmt.Sprintf("ListenAddress 127.0.0.1:%d", port),
		"HostKey " + hostKey,
		"AuthorizedKeysFile " + authorizedKeys,
		"AllowUsers " + login,
		"PidFile none",
		"StrictModes no",
		"UsePAM no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"AllowTcpForwarding yes",
		"AllowAgentForwarding no",
		"X11Forwarding no",
		"PermitTTY no",
		"LogLevel VERBOSE",
		"",
	}, "\n")
}
