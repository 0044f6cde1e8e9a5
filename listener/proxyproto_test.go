package listener

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks5"
)

// proxyV2 builds a PROXY protocol version 2 header: verCmd (0x21 PROXY,
// 0x20 LOCAL), family (0x11 TCP over IPv4, 0x21 over IPv6...), and the
// bytes after the length field, whose length it writes.
func proxyV2(verCmd, family byte, body []byte) []byte {
	b := append([]byte(nil), proxySigV2...)
	b = append(b, verCmd, family)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

// v2Addrs is a version 2 address block for TCP over IPv4 or IPv6: source
// and destination addresses, then their ports.
func v2Addrs(src, dst netip.AddrPort) []byte {
	s, d := src.Addr().AsSlice(), dst.Addr().AsSlice()
	b := append(append([]byte(nil), s...), d...)
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

var (
	declared4 = netip.MustParseAddrPort("192.0.2.7:40000")
	declared6 = netip.MustParseAddrPort("[2001:db8::7]:40001")
	front4    = netip.MustParseAddrPort("198.51.100.1:1080")
	front6    = netip.MustParseAddrPort("[2001:db8::1]:1080")
)

func TestReadProxyHeader(t *testing.T) {
	const rest = "\x05\x01\x00"                    // a SOCKS5 greeting after the header
	tlv := []byte{0x04, 0x00, 0x03, 'a', 'b', 'c'} // PP2_TYPE_NOOP with 3 bytes
	mapped := netip.AddrPortFrom(netip.AddrFrom16(declared4.Addr().As16()), declared4.Port())
	for _, c := range []struct {
		name    string
		in      []byte
		max     int
		version int
		source  netip.AddrPort // zero for LOCAL
		err     error          // errors.Is; nil for success
		anyErr  bool           // some error other than those named
	}{
		{name: "V1TCP4", in: []byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000 1080\r\n"), version: 1, source: declared4},
		{name: "V1TCP6", in: []byte("PROXY TCP6 2001:db8::7 2001:db8::1 40001 1080\r\n"), version: 1, source: declared6},
		{name: "V1Unknown", in: []byte("PROXY UNKNOWN\r\n"), version: 1},
		{name: "V1UnknownWithAddresses", in: []byte("PROXY UNKNOWN 192.0.2.7 198.51.100.1 40000 1080\r\n"), version: 1},
		{name: "V2TCP4", in: proxyV2(0x21, 0x11, v2Addrs(declared4, front4)), version: 2, source: declared4},
		{name: "V2TCP6", in: proxyV2(0x21, 0x21, v2Addrs(declared6, front6)), version: 2, source: declared6},
		{name: "V2MappedIPv4", in: proxyV2(0x21, 0x21, v2Addrs(mapped, front6)), version: 2, source: declared4},
		{name: "V2TLVs", in: proxyV2(0x21, 0x11, append(v2Addrs(declared4, front4), tlv...)), version: 2, source: declared4},
		{name: "V2Local", in: proxyV2(0x20, 0x00, nil), version: 2},
		{name: "V2LocalWithAddresses", in: proxyV2(0x20, 0x11, v2Addrs(declared4, front4)), version: 2},

		{name: "NoHeaderSOCKS5", in: nil, err: errNoProxyHeader},
		{name: "NoHeaderHTTP", in: []byte("GET / HTTP/1.1\r\n\r\n"), err: errNoProxyHeader},
		{name: "PartialV1Signature", in: []byte("PROX"), err: errNoProxyHeader},
		{name: "PartialV2Signature", in: proxySigV2[:11], err: errNoProxyHeader},
		{name: "CRLFCRLF", in: []byte("\r\n\r\nhello"), err: errNoProxyHeader},

		{name: "V2OverMax", in: proxyV2(0x21, 0x11, append(v2Addrs(declared4, front4), make([]byte, 100)...)), max: 64, err: errProxyTooLong},
		{name: "V1OverMax", in: []byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000 1080\r\n"), max: 20, err: errProxyTooLong},
		{name: "V1NoNewline", in: bytes.Repeat([]byte("PROXY "), 30), err: errProxyTooLong},
		{name: "V1NoCR", in: []byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000 1080\n"), anyErr: true},
		{name: "V1BadAddress", in: []byte("PROXY TCP4 192.0.2.300 198.51.100.1 40000 1080\r\n"), anyErr: true},
		{name: "V1FamilyMismatch", in: []byte("PROXY TCP4 2001:db8::7 198.51.100.1 40000 1080\r\n"), anyErr: true},
		{name: "V1BadPort", in: []byte("PROXY TCP4 192.0.2.7 198.51.100.1 70000 1080\r\n"), anyErr: true},
		{name: "V1Truncated", in: []byte("PROXY TCP4 192.0.2.7"), anyErr: true},
		{name: "V2UDP", in: proxyV2(0x21, 0x12, v2Addrs(declared4, front4)), err: errProxyFamily},
		{name: "V2Unix", in: proxyV2(0x21, 0x31, make([]byte, 216)), err: errProxyFamily},
		{name: "V2ProxyUnspec", in: proxyV2(0x21, 0x00, nil), anyErr: true},
		{name: "V2BadVersion", in: proxyV2(0x11, 0x11, v2Addrs(declared4, front4)), anyErr: true},
		{name: "V2BadCommand", in: proxyV2(0x22, 0x11, v2Addrs(declared4, front4)), anyErr: true},
		{name: "V2ShortAddresses", in: proxyV2(0x21, 0x11, v2Addrs(declared4, front4)[:8]), anyErr: true},
		{name: "V2Truncated", in: proxyV2(0x21, 0x11, v2Addrs(declared4, front4))[:20], err: io.ErrUnexpectedEOF},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := append(append([]byte(nil), c.in...), rest...)
			max := c.max
			if max == 0 {
				max = DefaultMaxProxyHeader
			}
			br := bufio.NewReaderSize(bytes.NewReader(in), readAhead)
			started := false
			h, err := readProxyHeader(br, max, func() { started = true })
			switch {
			case c.anyErr:
				require.Error(t, err)
				assert.NotErrorIs(t, err, errNoProxyHeader)
				return
			case c.err != nil:
				require.ErrorIs(t, err, c.err)
				if c.err == errNoProxyHeader {
					assert.False(t, started, "started without a signature")
					left, _ := io.ReadAll(br)
					assert.Equal(t, in, left, "consumed without a header")
				}
				return
			}
			require.NoError(t, err)
			assert.True(t, started)
			assert.Equal(t, c.version, h.version)
			assert.Equal(t, c.source, h.source)
			assert.Equal(t, len(c.in), h.size)
			left, _ := io.ReadAll(br)
			assert.Equal(t, rest, string(left), "what follows the header")
		})
	}
}

// A stalled sender is refused as soon as its header is seen to be too
// long: nothing past the fixed part is waited for.
func TestReadProxyHeaderTooLongUnread(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	hdr := proxyV2(0x21, 0x11, make([]byte, 2000))
	go client.Write(hdr[:proxyV2Fixed]) // and then nothing
	server.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := readProxyHeader(bufio.NewReaderSize(server, readAhead), DefaultMaxProxyHeader, nil)
	assert.ErrorIs(t, err, errProxyTooLong)
}

// pipeFrom is a pipe's end whose remote address is what the test says.
type pipeFrom struct {
	net.Conn
	remote net.Addr
}

func (c *pipeFrom) RemoteAddr() net.Addr { return c.remote }

// proxyConn returns the listener's end of a pipe that seems to come from
// remote, and the sender's end, both closed by the test's cleanup.
func proxyConn(t *testing.T, remote string) (server net.Conn, sender net.Conn) {
	t.Helper()
	c, s := net.Pipe()
	t.Cleanup(func() { c.Close(); s.Close() })
	return &pipeFrom{Conn: s, remote: net.TCPAddrFromAddrPort(netip.MustParseAddrPort(remote))}, c
}

// sendAsync writes b to the sender's end of a pipe, on a goroutine: a
// pipe write waits for the reader.
func sendAsync(c net.Conn, b []byte) {
	go func() {
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.Write(b)
	}()
}

func TestProxyProtocolRead(t *testing.T) {
	const balancer = "10.1.2.3:50000"
	socks := []byte{5, 1, 0}
	header := proxyV2(0x21, 0x11, v2Addrs(declared4, front4))
	trusted := []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}
	for _, c := range []struct {
		name     string
		p        ProxyProtocol
		remote   string
		in       []byte
		client   string // want; "" when refused
		header   bool
		err      error
		leftOver []byte // what the listener reads next
	}{
		{name: "TrustedHeader", p: ProxyProtocol{Trusted: trusted}, remote: balancer,
			in: append(header, socks...), client: declared4.String(), header: true, leftOver: socks},
		{name: "TrustedRequiredHeader", p: ProxyProtocol{Trusted: trusted, Required: true}, remote: balancer,
			in: append(header, socks...), client: declared4.String(), header: true, leftOver: socks},
		{name: "TrustedV1", p: ProxyProtocol{Trusted: trusted, Required: true}, remote: balancer,
			in: []byte("PROXY TCP6 2001:db8::7 2001:db8::1 40001 1080\r\n\x04"), client: declared6.String(), header: true, leftOver: []byte{4}},
		{name: "TrustedLocal", p: ProxyProtocol{Trusted: trusted, Required: true}, remote: balancer,
			in: append(proxyV2(0x20, 0x00, nil), socks...), client: balancer, header: true, leftOver: socks},
		{name: "TrustedNoHeader", p: ProxyProtocol{Trusted: trusted}, remote: balancer,
			in: socks, client: balancer, leftOver: socks},
		{name: "TrustedRequiredNoHeader", p: ProxyProtocol{Trusted: trusted, Required: true}, remote: balancer,
			in: socks, err: errProxyMissing},
		{name: "TrustedMappedSender", p: ProxyProtocol{Trusted: trusted}, remote: "[::ffff:10.1.2.3]:50000",
			in: append(header, socks...), client: declared4.String(), header: true, leftOver: socks},
		{name: "TrustedBadHeader", p: ProxyProtocol{Trusted: trusted}, remote: balancer,
			in: []byte("PROXY TCP4 nonsense\r\n"), err: errAny},
		{name: "UntrustedHeader", p: ProxyProtocol{Trusted: trusted}, remote: "10.9.9.9:50000",
			in: append(header, socks...), err: errProxyUntrusted},
		{name: "UntrustedV1Header", p: ProxyProtocol{Trusted: trusted, Required: true}, remote: "192.0.2.99:50000",
			in: []byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000 1080\r\n"), err: errProxyUntrusted},
		{name: "UntrustedNoHeader", p: ProxyProtocol{Trusted: trusted, Required: true}, remote: "192.0.2.99:50000",
			in: socks, client: "192.0.2.99:50000", leftOver: socks},
		{name: "UntrustedLooksLikeHeader", p: ProxyProtocol{Trusted: trusted}, remote: "192.0.2.99:50000",
			in: []byte("PUT / HTTP/1.1\r\n"), client: "192.0.2.99:50000", leftOver: []byte("PUT / HTTP/1.1\r\n")},
		{name: "NobodyTrusted", p: ProxyProtocol{}, remote: "127.0.0.1:50000",
			in: append(header, socks...), err: errProxyUntrusted},
	} {
		t.Run(c.name, func(t *testing.T) {
			server, sender := proxyConn(t, c.remote)
			sendAsync(sender, c.in)
			br := bufio.NewReaderSize(server, readAhead)
			client, header, err := c.p.read(server, br, time.Now().Add(5*time.Second))
			switch {
			case c.err == errAny:
				require.Error(t, err)
				return
			case c.err != nil:
				require.ErrorIs(t, err, c.err)
				return
			}
			require.NoError(t, err)
			require.NotNil(t, client)
			assert.Equal(t, c.client, client.String())
			assert.Equal(t, c.header, header)
			if _, ok := client.(*net.TCPAddr); !ok {
				t.Errorf("client %T, want *net.TCPAddr", client)
			}
			got, err := br.Peek(len(c.leftOver))
			require.NoError(t, err)
			assert.Equal(t, c.leftOver, got)
		})
	}
}

// errAny stands for any error in a table.
var errAny = errors.New("any error")

// Silent senders: a trusted one that must send a header is refused after
// Timeout; one that need not, and an untrusted one, are let go when the
// sniff's deadline passes, as connections of their own.
func TestProxyProtocolSilent(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, c := range []struct {
		name   string
		p      ProxyProtocol
		remote string
		err    error
	}{
		{"TrustedRequired", ProxyProtocol{Trusted: trusted, Required: true, Timeout: 20 * time.Millisecond}, "10.0.0.1:1", errProxyMissing},
		{"Trusted", ProxyProtocol{Trusted: trusted, Timeout: time.Hour}, "10.0.0.1:1", nil},
		{"Untrusted", ProxyProtocol{Trusted: trusted, Required: true, Timeout: time.Hour}, "192.0.2.1:1", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			server, _ := proxyConn(t, c.remote)
			br := bufio.NewReaderSize(server, readAhead)
			// The sniff's deadline is short, the test's bound long: only
			// the deadlines read uses can end the wait in time.
			silentUntil := time.Now().Add(20 * time.Millisecond)
			done := make(chan error, 1)
			go func() {
				_, _, err := c.p.read(server, br, silentUntil)
				done <- err
			}()
			timer := time.NewTimer(10 * time.Second)
			defer timer.Stop()
			select {
			case err := <-done:
				if c.err != nil {
					assert.ErrorIs(t, err, c.err)
				} else {
					assert.NoError(t, err)
				}
			case <-timer.C:
				t.Fatal("read waited past its deadlines")
			}
		})
	}
}

// A trusted sender that stalls inside its header is cut off at Timeout,
// even when the sniff's deadline is later.
func TestProxyProtocolStalledHeader(t *testing.T) {
	server, sender := proxyConn(t, "10.0.0.1:1")
	p := ProxyProtocol{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Timeout: 20 * time.Millisecond}
	sendAsync(sender, proxyV2(0x21, 0x11, v2Addrs(declared4, front4))[:proxyV2Fixed+4])
	done := make(chan error, 1)
	go func() {
		_, _, err := p.read(server, bufio.NewReaderSize(server, readAhead), time.Now().Add(time.Hour))
		done <- err
	}()
	timer := time.NewTimer(10 * time.Second)
	defer timer.Stop()
	select {
	case err := <-done:
		assert.True(t, deadline.IsTimeout(err), "err %v, want a timeout", err)
	case <-timer.C:
		t.Fatal("a stalled header held the connection past Timeout")
	}
}

// FuzzReadProxyHeader feeds the reader anything: it must not panic, must
// consume nothing when it finds no header, must keep within its limit,
// and must leave what follows a header where it was.
func FuzzReadProxyHeader(f *testing.F) {
	f.Add([]byte("PROXY TCP4 192.0.2.7 198.51.100.1 40000 1080\r\n\x05\x01\x00"))
	f.Add([]byte("PROXY TCP6 2001:db8::7 2001:db8::1 40001 1080\r\nGET / HTTP/1.1\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(proxyV2(0x21, 0x11, v2Addrs(declared4, front4)))
	f.Add(proxyV2(0x21, 0x21, append(v2Addrs(declared6, front6), 0x04, 0x00, 0x01, 0x00)))
	f.Add(proxyV2(0x20, 0x00, nil))
	f.Add(proxyV2(0x21, 0x31, make([]byte, 216)))
	f.Add([]byte{5, 1, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 256
		br := bufio.NewReaderSize(bytes.NewReader(in), readAhead)
		h, err := readProxyHeader(br, max, nil)
		switch {
		case errors.Is(err, errNoProxyHeader):
			left, _ := io.ReadAll(br)
			if !bytes.Equal(left, in) {
				t.Fatalf("no header, but consumed %d bytes", len(in)-len(left))
			}
		case err == nil:
			if h.size <= 0 || h.size > max || h.size > len(in) {
				t.Fatalf("header of %d bytes from %d, limit %d", h.size, len(in), max)
			}
			if h.version != 1 && h.version != 2 {
				t.Fatalf("version %d", h.version)
			}
			if h.source.IsValid() && h.source.Addr().Is4In6() {
				t.Fatalf("source %v is IPv4-mapped", h.source)
			}
			left, _ := io.ReadAll(br)
			if !bytes.Equal(left, in[h.size:]) {
				t.Fatalf("after a header of %d bytes: % x, want % x", h.size, left, in[h.size:])
			}
		}
	})
}

// proxied dials the world's listener from 127.0.0.1 and sends a PROXY v2
// header declaring src, then rest.
func (w *world) proxied(src netip.AddrPort, rest []byte) *net.TCPConn {
	w.t.Helper()
	c := w.dial()
	dst := w.l.Addr().(*net.TCPAddr).AddrPort()
	family := byte(0x11)
	if src.Addr().Is6() {
		family, dst = 0x21, netip.AddrPortFrom(netip.AddrFrom16(dst.Addr().As16()), dst.Port())
	}
	_, err := c.Write(append(proxyV2(0x21, family, v2Addrs(src, dst)), rest...))
	require.NoError(w.t, err)
	return c
}

// TestListenerProxyProtocol serves connections that come with a PROXY
// header from a trusted balancer (127.0.0.1): the declared client is the
// one the policy, the record, the log, the request and the connections
// handed to Accept see.
func TestListenerProxyProtocol(t *testing.T) {
	balancer := &ProxyProtocol{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Required: true}
	echo := sockstest.Echo(t)
	target, err := socks5.ParseAddr(echo.String())
	require.NoError(t, err)
	greeting := []byte{5, 1, 0}

	t.Run("PolicySeesTheDeclaredClient", func(t *testing.T) {
		// The built-in policy serves loopback clients only: 192.0.2.7,
		// declared by the balancer on loopback, is refused.
		rec := &recorder{}
		w := newWorld(t, &Config{Dialer: &net.Dialer{}, ProxyProtocol: balancer, OnRecord: rec.add})
		c := w.proxied(declared4, nil)
		_, _, err := socks5.ClientHandshake(context.Background(), c, socks5.Request{Command: socks5.CmdConnect, Addr: target})
		re, ok := errors.AsType[*socks5.ReplyError](err)
		require.True(t, ok, "%v", err)
		assert.Equal(t, socks5.NotAllowed, re.Reply)
		r := rec.wait(t, decided(DecisionDeny))
		assert.Equal(t, declared4.String(), r.Client.String())
		require.NotNil(t, r.Request)
		assert.Equal(t, declared4.String(), r.Request.Client.String())
		l := w.logs.Wait(t, sockstest.Key("decision", "deny"))
		assert.Equal(t, declared4.String(), l["client"])
	})

	t.Run("Relay", func(t *testing.T) {
		rec := &recorder{}
		w := newWorld(t, &Config{Dialer: &net.Dialer{}, ProxyProtocol: balancer, OnRecord: rec.add})
		client := netip.MustParseAddrPort("127.0.0.5:41000")
		c := w.proxied(client, nil)
		_, _, err := socks5.ClientHandshake(context.Background(), c, socks5.Request{Command: socks5.CmdConnect, Addr: target})
		require.NoError(t, err)
		_, err = c.Write([]byte("through"))
		require.NoError(t, err)
		require.NoError(t, c.CloseWrite())
		assert.Equal(t, "through", string(waitClosed(t, c)))
		r := rec.wait(t, decided(DecisionRelay))
		assert.Equal(t, client.String(), r.Client.String())
		assert.Equal(t, int64(7), r.BytesUp)
	})

	t.Run("Accepted", func(t *testing.T) {
		// The program's own connection, and a tapped stream, carry the
		// declared client as their RemoteAddr.
		w := newWorld(t, &Config{ProxyProtocol: balancer})
		w.proxied(declared4, []byte("GET / HTTP/1.0\r\n\r\n"))
		own := w.accept()
		assert.Equal(t, declared4.String(), own.RemoteAddr().String())
		got := make([]byte, 3)
		_, err := io.ReadFull(own, got)
		require.NoError(t, err)
		assert.Equal(t, "GET", string(got), "the header is not the program's to read")

		c := w.proxied(netip.MustParseAddrPort("127.0.0.9:40009"), nil)
		_, _, err = socks5.ClientHandshake(context.Background(), c,
			socks5.Request{Command: socks5.CmdConnect, Addr: socks5.Addr{Name: "tapped.test", Port: 80}})
		require.NoError(t, err)
		tapped := w.accept()
		assert.Equal(t, "127.0.0.9:40009", tapped.RemoteAddr().String())
		assert.Equal(t, "127.0.0.9:40009", RequestOf(tapped).Client.String())
		if _, ok := tapped.(*Conn).Conn.Conn.(*net.TCPConn); !ok {
			t.Errorf("the tapped stream wraps a %T, not the *net.TCPConn", tapped.(*Conn).Conn.Conn)
		}
	})

	t.Run("Refused", func(t *testing.T) {
		for _, c := range []struct {
			name   string
			p      *ProxyProtocol
			send   []byte
			reason string
		}{
			{"Untrusted", &ProxyProtocol{Trusted: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
				append(proxyV2(0x21, 0x11, v2Addrs(declared4, front4)), greeting...), errProxyUntrusted.Error()},
			{"Missing", balancer, greeting, errProxyMissing.Error()},
		} {
			t.Run(c.name, func(t *testing.T) {
				rec := &recorder{}
				w := newWorld(t, &Config{ProxyProtocol: c.p, OnRecord: rec.add})
				conn := w.dial()
				_, err := conn.Write(c.send)
				require.NoError(t, err)
				assert.Empty(t, waitClosed(t, conn), "answered")
				r := rec.wait(t, decided(DecisionDeny))
				assert.Equal(t, c.reason, r.Reason)
				assert.Nil(t, r.Request)
				assert.Equal(t, uint64(1), w.l.Stats().Refused)
			})
		}
	})
}

// TestProxyProtocolBudgets checks that the brake on password guessing
// counts failures by the declared client: one client behind the balancer
// that spends its budget does not lock out another.
func TestProxyProtocolBudgets(t *testing.T) {
	creds := socks5.NewCredentials(map[string]string{"alice": "right"})
	w := newWorld(t, &Config{
		Methods:       []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}},
		AuthLimit:     AuthLimit{PerClient: 1, PerUser: -1, Refill: time.Hour},
		ProxyProtocol: &ProxyProtocol{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, Required: true},
	})
	attempt := func(client string, pass string) error {
		c := w.proxied(netip.MustParseAddrPort(client), nil)
		_, _, err := socks5.ClientHandshake(context.Background(), c,
			socks5.Request{Command: socks5.CmdConnect, Addr: socks5.Addr{Name: "x.test", Port: 80}},
			socks5.UserPassClient{Username: "alice", Password: pass})
		return err
	}
	require.ErrorIs(t, attempt("127.0.0.7:1", "wrong"), socks5.ErrAuthFailed)
	require.ErrorIs(t, attempt("127.0.0.7:2", "right"), socks5.ErrAuthFailed, "the guesser is locked out")
	assert.NoError(t, attempt("127.0.0.8:3", "right"), "another client behind the same balancer")
}
