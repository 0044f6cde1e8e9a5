package interop

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// The states of a TCP socket, as /proc/net/tcp writes them, that the
// harness looks for.
const (
	tcpEstablished = 0x01
	tcpListen      = 0x0A
)

// A socket is one line of /proc/net/tcp or /proc/net/tcp6.
type socket struct {
	local, remote netip.AddrPort
	state         uint8
	inode         uint64
}

// listening returns the address of a TCP socket that process pid holds
// open and that listens on ip and port, or on ip and any port when port is
// 0. ok is false when there is none, or when the process is gone.
func listening(pid int, ip netip.Addr, port uint16) (_ netip.AddrPort, ok bool, err error) {
	socks, err := ownSockets(pid)
	for _, s := range socks {
		if s.state == tcpListen && s.local.Addr().Unmap() == ip && (port == 0 || s.local.Port() == port) {
			return s.local, true, nil
		}
	}
	return netip.AddrPort{}, false, err
}

// connected reports whether process pid holds open an established TCP
// connection to remote.
func connected(pid int, remote netip.AddrPort) (bool, error) {
	socks, err := ownSockets(pid)
	for _, s := range socks {
		if s.state == tcpEstablished &&
			s.remote.Addr().Unmap() == remote.Addr().Unmap() && s.remote.Port() == remote.Port() {
			return true, nil
		}
	}
	return false, err
}

// ownSockets returns the TCP sockets that process pid holds open: none
// when it is gone. It reads /proc: the process's descriptors, and the
// socket tables of its network namespace.
func ownSockets(pid int) ([]socket, error) {
	inodes, err := socketInodes(pid)
	if err != nil || len(inodes) == 0 {
		return nil, nil // gone, or no socket yet
	}
	var own []socket
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue // no IPv6, or the process is gone
		}
		socks, err := parseSockets(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("/proc/%d/net/%s: %w", pid, table, err)
		}
		for _, s := range socks {
			if inodes[s.inode] {
				own = append(own, s)
			}
		}
	}
	return own, nil
}

// procNet reports whether the system shows its sockets the way listening
// reads them.
func procNet() error {
	if _, err := os.Stat("/proc/self/net/tcp"); err != nil {
		return fmt.Errorf("the harness finds daemons' sockets in /proc, which is Linux's: %w", err)
	}
	return nil
}

// socketInodes returns the inodes of the sockets process pid has open.
func socketInodes(pid int) (map[uint64]bool, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	inodes := make(map[uint64]bool)
	for _, e := range entries {
		link, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue // closed since ReadDir
		}
		num, ok := strings.CutPrefix(link, "socket:[")
		if !ok {
			continue
		}
		if n, err := strconv.ParseUint(strings.TrimSuffix(num, "]"), 10, 64); err == nil {
			inodes[n] = true
		}
	}
	return inodes, nil
}

// parseSockets reads a socket table in the format of /proc/net/tcp (and
// tcp6): a header line, then one socket a line, whose fields are a slot
// number, the local and remote addresses as hexadecimal address:port, the
// state, queues, timers, retransmits, uid, timeout and inode.
func parseSockets(r io.Reader) ([]socket, error) {
	var socks []socket
	sc := bufio.NewScanner(r)
	for line := 0; sc.Scan(); line++ {
		if line == 0 {
			continue // header
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			return nil, fmt.Errorf("line %d: %d fields, want at least 10", line+1, len(f))
		}
		local, err := parseHexAddrPort(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: local address: %w", line+1, err)
		}
		remote, err := parseHexAddrPort(f[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: remote address: %w", line+1, err)
		}
		state, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return nil, fmt.Errorf("line %d: state: %w", line+1, err)
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("line %d: inode: %w", line+1, err)
		}
		socks = append(socks, socket{local: local, remote: remote, state: uint8(state), inode: inode})
	}
	return socks, sc.Err()
}

// parseHexAddrPort parses "0100007F:1F90", the kernel's rendering of an
// address and port: the address as 32-bit words, each printed in hex as the
// machine's byte order reads it, then the port in hex.
func parseHexAddrPort(s string) (netip.AddrPort, error) {
	addr, port, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%q: no port", s)
	}
	p, err := strconv.ParseUint(port, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q: port: %w", s, err)
	}
	raw, err := hex.DecodeString(addr)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("%q: not an IPv4 or IPv6 address", s)
	}
	ip := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.NativeEndian.PutUint32(ip[i:], binary.BigEndian.Uint32(raw[i:]))
	}
	a, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(a, uint16(p)), nil
}
