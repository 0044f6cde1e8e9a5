package dialer

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/sockstap/sockstap/socks5"
)

// FuzzUnwrapDatagram feeds the client's parser of relayed datagrams what a
// hostile relay could send, from the relay's address and from another:
// it never panics, takes nothing from elsewhere, takes no fragment, and
// what it takes is the datagram's tail, after a header that encodes the
// sender it reports.
func FuzzUnwrapDatagram(f *testing.F) {
	for _, b := range [][]byte{
		{0, 0, 0, 1, 127, 0, 0, 1, 0, 53, 'h', 'i'},
		{0, 0, 0, 3, 4, 'h', 'o', 's', 't', 0, 7},
		{0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4, 0, 80},
		{0, 0, 1, 1, 127, 0, 0, 1, 0, 53, 'f'},
		{0, 0, 0, 3, 0, 0, 80},
		{0, 0, 0, 9},
		{0, 0},
	} {
		f.Add(b, true)
	}
	relay := netip.MustParseAddrPort("127.0.0.1:1080")
	stranger := netip.MustParseAddrPort("127.0.0.1:1081")
	f.Fuzz(func(t *testing.T, b []byte, fromRelay bool) {
		src := stranger
		if fromRelay {
			src = relay
		}
		payload, from, ok := unwrapDatagram(b, src, relay)
		if !ok {
			return
		}
		if !fromRelay {
			t.Fatalf("took % x from a stranger", b)
		}
		if len(b) < 3 || b[0] != 0 || b[1] != 0 || b[2] != 0 {
			t.Fatalf("took % x: reserved bytes or a fragment", b)
		}
		if !bytes.HasSuffix(b, payload) {
			t.Fatalf("payload % x is not the tail of % x", payload, b)
		}
		header := b[:len(b)-len(payload)]
		again, err := socks5.Datagram{Addr: from}.AppendBinary(nil)
		if err != nil {
			t.Fatalf("sender %v of % x does not encode: %v", from, b, err)
		}
		if !bytes.Equal(again, header) {
			mapped := from
			mapped.IP = netip.AddrFrom16(from.IP.As16())
			if again, _ = (socks5.Datagram{Addr: mapped}).AppendBinary(nil); !bytes.Equal(again, header) {
				t.Fatalf("header % x, but sender %v", header, from)
			}
		}
	})
}
