package dialer_test

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// startHostileRelay starts a SOCKS5 server that grants one UDP ASSOCIATE
// with 0.0.0.0 as the relay's address (the proxy's own, that is) and
// leaves the relay's socket, on 127.0.0.1 and the port it announced, to
// the test. The control connection stays open until the client closes it.
func startHostileRelay(t *testing.T) (proxyAddr string, relay *net.UDPConn) {
	t.Helper()
	relay, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	t.Cleanup(func() { relay.Close() })
	port := uint16(relay.LocalAddr().(*net.UDPAddr).Port)
	proxyAddr = sockstest.Serve(t, func(c net.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		s, err := socks5.ServerHandshake(ctx, c, nil)
		if err != nil {
			return
		}
		s.Reply(socks5.Succeeded, socks5.Addr{IP: netip.IPv4Unspecified(), Port: port})
		c.Read(make([]byte, 1))
	}).String()
	return proxyAddr, relay
}

// TestHostileRelay has a relay send what a client must drop, then one
// datagram it must take: ReadFrom returns that one, and only that one.
func TestHostileRelay(t *testing.T) {
	proxyAddr, relay := startHostileRelay(t)
	pc := listenPacket(t, &dialer.Dialer{Proxy: proxyAddr})
	assert.Equal(t, relay.LocalAddr().String(), pc.RelayAddr().String(), "0.0.0.0 stands for the proxy's address")

	_, err := pc.WriteTo([]byte("hello"), &net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 53})
	require.NoError(t, err)
	require.NoError(t, relay.SetDeadline(time.Now().Add(wait)))
	buf := make([]byte, 512)
	n, client, err := relay.ReadFromUDPAddrPort(buf)
	require.NoError(t, err)
	assert.Equal(t, []byte{0, 0, 0, 1, 192, 0, 2, 1, 0, 53, 'h', 'e', 'l', 'l', 'o'}, buf[:n], "the header the client sent")

	from := []byte{0, 0, 0, 1, 198, 51, 100, 7, 0x12, 0x34}
	for _, junk := range [][]byte{
		{},
		{0},
		{0, 0, 0},
		{0, 0, 0, 1, 198, 51, 100},           // short address
		{0, 0, 0, 4, 0, 0},                   // short IPv6 address
		{0, 0, 0, 3, 0, 0, 80, 'x'},          // empty name
		{0, 0, 0, 3, 10, 'a', 'b'},           // name longer than the datagram
		{0, 0, 0, 9, 1, 2, 3, 4, 0, 80, 'x'}, // unknown address type
		append([]byte{0, 1, 0}, from[3:]...), // reserved bytes not zero
		append([]byte{1, 0, 0}, append(from[3:], 'x')...),    // reserved bytes not zero
		append([]byte{0, 0, 1}, append(from[3:], 'f')...),    // a fragment
		append([]byte{0, 0, 0x81}, append(from[3:], 'f')...), // the last fragment
	} {
		_, err := relay.WriteToUDPAddrPort(junk, client)
		require.NoError(t, err)
	}
	// The right header, from another port of the relay's host.
	stranger, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer stranger.Close()
	_, err = stranger.WriteToUDPAddrPort(append(from, "wrong source"...), client)
	require.NoError(t, err)

	_, err = relay.WriteToUDPAddrPort(append(from, "good"...), client)
	require.NoError(t, err)
	n, sender, err := pc.ReadFrom(buf)
	require.NoError(t, err)
	assert.Equal(t, "good", string(buf[:n]))
	assert.Equal(t, "198.51.100.7:4660", sender.String())

	// A name as the sender, and an empty payload.
	_, err = relay.WriteToUDPAddrPort([]byte{0, 0, 0, 3, 4, 'h', 'o', 's', 't', 0, 7}, client)
	require.NoError(t, err)
	n, sender, err = pc.ReadFrom(buf)
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.Equal(t, socks5.Addr{Name: "host", Port: 7}, sender)

	// A payload longer than the reader's buffer is cut to fit.
	_, err = relay.WriteToUDPAddrPort(append(from, "0123456789"...), client)
	require.NoError(t, err)
	n, _, err = pc.ReadFrom(buf[:4])
	require.NoError(t, err)
	assert.Equal(t, "0123", string(buf[:n]))
}
