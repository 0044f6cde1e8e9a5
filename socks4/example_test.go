package socks4_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"

	"github.com/sockstap/sockstap/socks4"
)

func ExampleReadRequest() {
	// A SOCKS4 CONNECT to 66.102.7.99:80 from user "fred", and a SOCKS4a
	// CONNECT to example.com:443, one behind the other.
	in := bytes.NewReader([]byte{
		0x04, 0x01, 0x00, 0x50, 0x42, 0x66, 0x07, 0x63, 'f', 'r', 'e', 'd', 0x00,
		0x04, 0x01, 0x01, 0xbb, 0x00, 0x00, 0x00, 0x01, 0x00, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', 0x00,
	})
	for {
		req, err := socks4.ReadRequest(in)
		if errors.Is(err, io.EOF) { // no more requests
			break
		}
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%v %s user %q SOCKS4a: %t\n", req.Command, req.Target(), req.User, req.Host != "")
	}
	// Output:
	// CONNECT 66.102.7.99:80 user "fred" SOCKS4a: false
	// CONNECT example.com:443 user "" SOCKS4a: true
}

func ExampleRequest_AppendBinary() {
	var buf [64]byte
	req := socks4.Request{Command: socks4.CmdConnect, Port: 80, IP: netip.MustParseAddr("66.102.7.99"), User: "fred"}
	b, _ := req.AppendBinary(buf[:0])
	fmt.Printf("% x\n", b)

	// With Host set, a SOCKS4a request.
	req = socks4.Request{Command: socks4.CmdConnect, Port: 80, Host: "example.com", User: "fred"}
	b, _ = req.AppendBinary(buf[:0])
	fmt.Printf("% x\n", b)

	// IPv6 cannot travel in SOCKS4.
	req = socks4.Request{Command: socks4.CmdConnect, Port: 80, IP: netip.MustParseAddr("2001:db8::1")}
	_, err := req.AppendBinary(buf[:0])
	fmt.Println(err)
	// Output:
	// 04 01 00 50 42 66 07 63 66 72 65 64 00
	// 04 01 00 50 00 00 00 01 66 72 65 64 00 65 78 61 6d 70 6c 65 2e 63 6f 6d 00
	// socks4: request: IPv6 addresses cannot travel in SOCKS4
}

func ExampleReadResponse() {
	resp, err := socks4.ReadResponse(bytes.NewReader([]byte{0x00, 0x5a, 0x04, 0xd2, 0xc0, 0xa8, 0x01, 0x02}))
	fmt.Println(resp.Reply, resp.IP, resp.Port, err)
	_, err = socks4.ReadResponse(bytes.NewReader([]byte{0x04, 0x5a, 0, 0, 0, 0, 0, 0}))
	fmt.Println(err, errors.Is(err, socks4.ErrMalformed))
	// Output:
	// request granted 192.168.1.2 1234 <nil>
	// socks4: reply version 4, want 0 true
}

func ExampleResponse_AppendBinary() {
	b, _ := socks4.Response{Reply: socks4.IdentdMismatch}.AppendBinary(nil)
	fmt.Printf("% x\n", b)
	// Output: 00 5d 00 00 00 00 00 00
}

func ExampleServerHandshake() {
	client, server := net.Pipe()
	defer server.Close()

	// The client sends its request and its first data in one write, and
	// waits for the reply.
	replies := make(chan []byte)
	go func() {
		defer client.Close()
		client.Write([]byte("\x04\x01\x00\x50\x42\x66\x07\x63fred\x00hello"))
		reply := make([]byte, 8)
		io.ReadFull(client, reply)
		replies <- reply
	}()

	s, err := socks4.ServerHandshake(context.Background(), server)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(s.Request.Command, s.Request.Target(), "as", s.User)

	// The client's data is still on the connection.
	data := make([]byte, 5)
	io.ReadFull(s.Stream, data)
	fmt.Printf("%s\n", data)

	// The program decides; here, it turns "fred" away.
	s.Reply(socks4.Rejected, netip.AddrPort{})
	fmt.Printf("% x\n", <-replies)
	// Output:
	// CONNECT 66.102.7.99:80 as fred
	// hello
	// 00 5b 00 00 00 00 00 00
}

func ExampleClientHandshake() {
	client, server := net.Pipe()
	defer client.Close()

	// A server that grants every request.
	go func() {
		defer server.Close()
		s, err := socks4.ServerHandshake(context.Background(), server)
		if err != nil {
			return
		}
		s.Reply(socks4.Granted, netip.MustParseAddrPort("192.0.2.1:1080"))
	}()

	req := socks4.Request{Command: socks4.CmdConnect, Port: 443, Host: "example.com", User: "fred"}
	bound, err := socks4.ClientHandshake(context.Background(), client, req)
	fmt.Println(bound, err)
	// Output: 192.0.2.1:1080 <nil>
}

func ExampleClientHandshake_rejected() {
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		defer server.Close()
		s, err := socks4.ServerHandshake(context.Background(), server)
		if err != nil {
			return
		}
		s.Reply(socks4.IdentdMismatch, netip.AddrPort{})
	}()

	req := socks4.Request{Command: socks4.CmdConnect, Port: 80, IP: netip.MustParseAddr("66.102.7.99"), User: "root"}
	_, err := socks4.ClientHandshake(context.Background(), client, req)
	if re, ok := errors.AsType[*socks4.ReplyError](err); ok {
		fmt.Println(int(re.Reply), re.Reply)
	}
	// Output: 93 request rejected: client and identd report different user ids
}

func ExampleAwaitBind() {
	client, server := net.Pipe()
	defer client.Close()

	// A server that listens for the expected host, and reports it.
	go func() {
		defer server.Close()
		s, err := socks4.ServerHandshake(context.Background(), server)
		if err != nil {
			return
		}
		s.Reply(socks4.Granted, netip.MustParseAddrPort("192.0.2.1:49153")) // listening
		s.Reply(socks4.Granted, netip.MustParseAddrPort("66.102.7.99:20"))  // connected
	}()

	req := socks4.Request{Command: socks4.CmdBind, Port: 21, IP: netip.MustParseAddr("66.102.7.99"), User: "fred"}
	bound, err := socks4.ClientHandshake(context.Background(), client, req)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("tell the host to connect to", bound)
	peer, err := socks4.AwaitBind(context.Background(), client)
	fmt.Println("connected:", peer, err)
	// Output:
	// tell the host to connect to 192.0.2.1:49153
	// connected: 66.102.7.99:20 <nil>
}

func ExampleReplyFor() {
	fmt.Println(int(socks4.ReplyFor(nil)))
	fmt.Println(int(socks4.ReplyFor(&socks4.ReplyError{Reply: socks4.IdentdUnreachable})))
	fmt.Println(int(socks4.ReplyFor(errors.New("dial tcp: connection refused"))))
	// Output:
	// 90
	// 92
	// 91
}
