package socks5_test

import (
	"bytes"
	"testing"

	"github.com/sockstap/sockstap/socks5"
)

var (
	benchRequestIPv4   = socks5.Request{Command: socks5.CmdConnect, Addr: ipv4("192.0.2.1:443")}
	benchRequestDomain = socks5.Request{Command: socks5.CmdConnect, Addr: name("www.example.com", 443)}
	benchReplyIPv4     = socks5.Response{Reply: socks5.Succeeded, Addr: ipv4("127.0.0.1:40000")}
	benchReplyDomain   = socks5.Response{Reply: socks5.Succeeded, Addr: name("proxy.example.net", 40000)}
)

func benchEncode(b *testing.B, m interface {
	AppendBinary([]byte) ([]byte, error)
}) {
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	var n int
	for b.Loop() {
		out, err := m.AppendBinary(buf[:0])
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.SetBytes(int64(n))
}

func benchParse[M any](b *testing.B, read func(*bytes.Reader) (M, error), wire []byte) {
	r := bytes.NewReader(wire)
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		r.Reset(wire)
		if _, err := read(r); err != nil {
			b.Fatal(err)
		}
	}
}

func readRequest(r *bytes.Reader) (socks5.Request, error)   { return socks5.ReadRequest(r) }
func readResponse(r *bytes.Reader) (socks5.Response, error) { return socks5.ReadResponse(r) }

func BenchmarkRequestEncodeIPv4(b *testing.B)    { benchEncode(b, benchRequestIPv4) }
func BenchmarkRequestEncodeDomain(b *testing.B)  { benchEncode(b, benchRequestDomain) }
func BenchmarkResponseEncodeIPv4(b *testing.B)   { benchEncode(b, benchReplyIPv4) }
func BenchmarkResponseEncodeDomain(b *testing.B) { benchEncode(b, benchReplyDomain) }

func BenchmarkRequestParseIPv4(b *testing.B) {
	benchParse(b, readRequest, encode(b, benchRequestIPv4))
}

func BenchmarkRequestParseDomain(b *testing.B) {
	benchParse(b, readRequest, encode(b, benchRequestDomain))
}

func BenchmarkResponseParseIPv4(b *testing.B) {
	benchParse(b, readResponse, encode(b, benchReplyIPv4))
}

func BenchmarkResponseParseDomain(b *testing.B) {
	benchParse(b, readResponse, encode(b, benchReplyDomain))
}

// The other parsers, for the record.

func BenchmarkGreetingParse(b *testing.B) {
	benchParse(b, func(r *bytes.Reader) (socks5.Greeting, error) { return socks5.ReadGreeting(r) }, []byte{5, 2, 0, 2})
}

func BenchmarkUserPassRequestParse(b *testing.B) {
	benchParse(b, func(r *bytes.Reader) (socks5.UserPassRequest, error) { return socks5.ReadUserPassRequest(r) },
		userPassWire("alice", "secret"))
}

func BenchmarkDatagramParseIPv4(b *testing.B) {
	wire := encode(b, socks5.Datagram{Addr: ipv4("192.0.2.53:53"), Payload: make([]byte, 512)})
	b.ReportAllocs()
	b.SetBytes(int64(len(wire)))
	for b.Loop() {
		if _, err := socks5.ParseDatagram(wire); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDatagramEncodeIPv4(b *testing.B) {
	benchEncode(b, socks5.Datagram{Addr: ipv4("192.0.2.53:53"), Payload: make([]byte, 512)})
}
