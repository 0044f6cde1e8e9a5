package socks4_test

import (
	"bytes"
	"io"
	"net/netip"
	"testing"

	"github.com/sockstap/sockstap/socks4"
)

var benchRequests = []struct {
	name string
	req  socks4.Request
}{
	{"socks4", fredConnect},
	{"socks4a", nameConnect},
}

func BenchmarkRequestAppendBinary(b *testing.B) {
	for _, c := range benchRequests {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			buf := make([]byte, 0, 64)
			for b.Loop() {
				var err error
				if buf, err = c.req.AppendBinary(buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkReadRequest(b *testing.B) {
	for _, c := range benchRequests {
		wire := encode(b, c.req)
		for _, kind := range []string{"ByteReader", "plain"} {
			b.Run(c.name+"/"+kind, func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(wire)))
				br := bytes.NewReader(wire)
				var r io.Reader = br
				if kind == "plain" {
					r = plainReader{br}
				}
				for b.Loop() {
					br.Reset(wire)
					if _, err := socks4.ReadRequest(r); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

func BenchmarkResponseAppendBinary(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(8)
	resp := responseVectors[1].resp
	buf := make([]byte, 0, 8)
	for b.Loop() {
		var err error
		if buf, err = resp.AppendBinary(buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadResponse(b *testing.B) {
	wire := responseVectors[1].wire
	for _, kind := range []string{"ByteReader", "plain"} {
		b.Run(kind, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(wire)))
			br := bytes.NewReader(wire)
			var r io.Reader = br
			if kind == "plain" {
				r = plainReader{br}
			}
			for b.Loop() {
				br.Reset(wire)
				if _, err := socks4.ReadResponse(r); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandshake runs each side's handshake over a connection in
// memory, the peer's bytes prepared in advance.
func BenchmarkHandshake(b *testing.B) {
	b.Run("Server", func(b *testing.B) {
		b.ReportAllocs()
		wire := encode(b, nameConnect)
		mc := newMemConn(nil)
		for b.Loop() {
			mc.r.Reset(wire)
			mc.w.Reset()
			s, err := socks4.ServerHandshake(b.Context(), mc)
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Reply(socks4.Granted, fredBound); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Client", func(b *testing.B) {
		b.ReportAllocs()
		mc := newMemConn(nil)
		for b.Loop() {
			mc.r.Reset(replyOK)
			mc.w.Reset()
			if _, err := socks4.ClientHandshake(b.Context(), mc, nameConnect); err != nil {
				b.Fatal(err)
			}
		}
	})
}

var fredBound = netip.MustParseAddrPort("192.168.1.2:1234")
