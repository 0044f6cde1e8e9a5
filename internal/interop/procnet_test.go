package interop

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSockets(t *testing.T) {
	// Lines as Linux writes them on a little-endian machine.
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A2C4 0100007F:1F90 01 00000000:00000000 00:00000000 00000000  1000        0 77 1 0000000000000000 20 4 30 10 -1
`
	const table6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0000000000000000 100 0 0 10 0
`
	if !littleEndian() {
		t.Skip("the fixtures are a little-endian machine's")
	}
	got, err := parseSockets(strings.NewReader(table))
	require.NoError(t, err)
	assert.Equal(t, []socket{
		{local: netip.MustParseAddrPort("127.0.0.1:8080"), remote: netip.MustParseAddrPort("0.0.0.0:0"), state: tcpListen, inode: 4242},
		{local: netip.MustParseAddrPort("127.0.0.1:41668"), remote: netip.MustParseAddrPort("127.0.0.1:8080"), state: tcpEstablished, inode: 77},
	}, got)

	got, err = parseSockets(strings.NewReader(table6))
	require.NoError(t, err)
	assert.Equal(t, []socket{{local: netip.MustParseAddrPort("[::1]:22"), remote: netip.MustParseAddrPort("[::]:0"), state: tcpListen, inode: 99}}, got)

	_, err = parseSockets(strings.NewReader("header\n 0: 0100007F 00000000:0000 0A\n"))
	assert.Error(t, err, "a short line")
	_, err = parseSockets(strings.NewReader("header\n 0: 7F:1F90 00000000:0000 0A 0 0 0 0 0 1\n"))
	assert.Error(t, err, "an address of 1 byte")
}

func littleEndian() bool {
	ap, err := parseHexAddrPort("0100007F:0001")
	return err == nil && ap.Addr() == loopback
}

// TestListening checks listening against sockets this test opens in its
// own process, on a port it does not know beforehand.
func TestListening(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	want := ln.Addr().(*net.TCPAddr).AddrPort()

	got, ok, err := listening(os.Getpid(), loopback, want.Port())
	require.NoError(t, err)
	require.True(t, ok, "listening on %v not found", want)
	assert.Equal(t, want, got)

	got, ok, err = listening(os.Getpid(), loopback, 0)
	require.NoError(t, err)
	require.True(t, ok, "any listening socket on 127.0.0.1 not found")
	assert.Equal(t, loopback, got.Addr())

	// A connected socket on the same address does not listen.
	c, err := net.Dial("tcp", want.String())
	require.NoError(t, err)
	defer c.Close()
	local := c.LocalAddr().(*net.TCPAddr).AddrPort()
	_, ok, err = listening(os.Getpid(), loopback, local.Port())
	require.NoError(t, err)
	assert.False(t, ok, "the client socket %v taken for a listener", local)

	// The client's socket is connected to the listener's address.
	ok, err = connected(os.Getpid(), want)
	require.NoError(t, err)
	assert.True(t, ok, "the connection to %v not found", want)
	ok, err = connected(os.Getpid(), netip.AddrPortFrom(loopback, want.Port()-1))
	require.NoError(t, err)
	assert.False(t, ok, "a connection to a port nobody connected to")

	ln.Close()
	_, ok, err = listening(os.Getpid(), loopback, want.Port())
	require.NoError(t, err)
	assert.False(t, ok, "a closed listener is still found")
}

// FuzzParseSockets checks that parseSockets never panics, and that what it
// parses comes back the same when written as the kernel writes it and
// parsed again.
func FuzzParseSockets(f *testing.F) {
	f.Add("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n" +
		"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n")
	f.Add("header\n   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1 0 100 0 0 10 0\n")
	f.Add("header\n 0: 7F:1F90 00000000:0000 0A 0 0 0 0 0 1\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, table string) {
		socks, err := parseSockets(strings.NewReader(table))
		if err != nil {
			return
		}
		var b strings.Builder
		b.WriteString("header\n")
		for i, s := range socks {
			fmt.Fprintf(&b, "%4d: %s:%04X %s:%04X %02X 00000000:00000000 00:00000000 00000000     0        0 %d\n",
				i, hexAddr(s.local.Addr()), s.local.Port(), hexAddr(s.remote.Addr()), s.remote.Port(), s.state, s.inode)
		}
		again, err := parseSockets(strings.NewReader(b.String()))
		require.NoError(t, err, "parsing\n%s", b.String())
		assert.Equal(t, socks, again)
	})
}

// hexAddr writes an address as /proc/net/tcp does: 32-bit words, each
// printed as the machine's byte order reads it.
func hexAddr(a netip.Addr) string {
	raw := a.AsSlice()
	var b strings.Builder
	for i := 0; i < len(raw); i += 4 {
		fmt.Fprintf(&b, "%08X", binary.NativeEndian.Uint32(raw[i:]))
	}
	return b.String()
}
