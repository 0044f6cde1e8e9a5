// Package interop starts real SOCKS programs from Debian's packages
// (danted, microsocks, sshd with ssh -D, privoxy) and haproxy, a balancer
// to put in front of them, as private daemons on loopback, and runs client
// programs (curl, ncat, socat, proxychains4), so that tests check sockstap
// against the implementations people use. [Start] runs any other program
// the same way, such as a build of examples/gateway.
//
// Every daemon is a process of the test's own: it gets a configuration in
// t.TempDir(), listens on an ephemeral port of 127.0.0.1, and is killed,
// with its process group, and waited for by the test's cleanup; its output
// goes to the test log when the test fails. No system-wide instance is
// used. A daemon is ready once it owns a socket in the LISTEN state on its
// address, as /proc shows it, so the harness needs Linux.
//
// A missing program skips the test, with a message naming the Debian
// package to install, unless the environment has CI=true, where it fails
// the test: CI installs everything (see .ci/run).
package interop
