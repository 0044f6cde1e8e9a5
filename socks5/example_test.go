package socks5_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"github.com/sockstap/sockstap/socks5"
)

// The server's side: negotiate, read the request, answer it. The client
// here is the package's own, over an in-memory connection.
func ExampleServerHandshake() {
	clientConn, serverConn := net.Pipe()
	defer serverConn.Close()
	go func() {
		defer clientConn.Close()
		target, _ := socks5.ParseAddr("example.com:80")
		_, stream, err := socks5.ClientHandshake(context.Background(), clientConn,
			socks5.Request{Command: socks5.CmdConnect, Addr: target})
		if err == nil {
			stream.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := socks5.ServerHandshake(ctx, serverConn, []socks5.ServerMethod{socks5.NoAuth{}})
	if err != nil {
		fmt.Println("handshake:", err)
		return
	}
	fmt.Println(s.Request.Command, s.Request.Addr, "with", s.Method)

	// A real server dials s.Request.Addr here and answers with
	// socks5.ReplyFor(err) and the dialed connection's local address.
	bound, _ := socks5.ParseAddr("127.0.0.1:4000")
	if err := s.Reply(socks5.Succeeded, bound); err != nil {
		fmt.Println("reply:", err)
		return
	}
	line := make([]byte, 14)
	io.ReadFull(s.Stream, line)
	fmt.Printf("then: %q\n", line)
	// Output:
	// CONNECT example.com:80 with no authentication
	// then: "GET / HTTP/1.0"
}

// The client's side: offer methods, authenticate, request, read the reply.
// The server here is the package's own, over an in-memory connection.
func ExampleClientHandshake() {
	clientConn, serverConn := net.Pipe()
	defer clientConn.Close()
	go func() {
		defer serverConn.Close()
		creds := socks5.NewCredentials(map[string]string{"alice": "secret"})
		s, err := socks5.ServerHandshake(context.Background(), serverConn,
			[]socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}})
		if err != nil {
			return
		}
		if s.Request.Command != socks5.CmdConnect {
			s.Reply(socks5.CommandNotSupported, socks5.Addr{})
			return
		}
		bound, _ := socks5.ParseAddr("192.0.2.7:50000")
		s.Reply(socks5.Succeeded, bound)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	target, _ := socks5.ParseAddr("[2001:db8::1]:443")
	bound, _, err := socks5.ClientHandshake(ctx, clientConn,
		socks5.Request{Command: socks5.CmdConnect, Addr: target},
		socks5.UserPassClient{Username: "alice", Password: "secret"})
	fmt.Println("bound:", bound, err)

	// A refusal is a *ReplyError carrying the server's code.
	clientConn2, serverConn2 := net.Pipe()
	defer clientConn2.Close()
	go func() {
		defer serverConn2.Close()
		s, err := socks5.ServerHandshake(context.Background(), serverConn2, nil)
		if err == nil {
			s.Reply(socks5.NotAllowed, socks5.Addr{})
		}
	}()
	_, _, err = socks5.ClientHandshake(ctx, clientConn2, socks5.Request{Command: socks5.CmdConnect, Addr: target})
	var re *socks5.ReplyError
	if errors.As(err, &re) {
		fmt.Printf("refused: %#02x, %v\n", uint8(re.Reply), re.Reply)
	}
	// Output:
	// bound: 192.0.2.7:50000 <nil>
	// refused: 0x02, connection not allowed by ruleset
}

// A message read from the wire, and encoded back into a caller's buffer.
func ExampleReadRequest() {
	wire := []byte{
		0x05, 0x01, 0x00, // version 5, CONNECT, reserved
		0x03, 0x0b, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm', // a domain name
		0x00, 0x50, // port 80
		'G', 'E', 'T', // what the client sent behind its request
	}
	r := bytes.NewReader(wire)
	req, err := socks5.ReadRequest(r)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(req.Command, req.Addr.Type(), req.Addr)
	fmt.Println("left unread:", r.Len(), "bytes")

	buf := make([]byte, 0, 64)
	buf, err = req.AppendBinary(buf)
	fmt.Printf("% x %v\n", buf, err)

	_, err = socks5.ReadRequest(bytes.NewReader([]byte{0x05, 0x01, 0x00, 0x02, 0, 0}))
	fmt.Println(err, errors.Is(err, socks5.ErrAddrType), errors.Is(err, socks5.ErrMalformed))
	// Output:
	// CONNECT domain name example.com:80
	// left unread: 3 bytes
	// 05 01 00 03 0b 65 78 61 6d 70 6c 65 2e 63 6f 6d 00 50 <nil>
	// socks5: request: address type 0x02 true true
}

func ExampleParseAddr() {
	for _, s := range []string{
		"192.0.2.1:1080",
		"[2001:db8::1]:443",
		"example.com:80",
		":80",
		"[fe80::1%eth0]:22",
	} {
		a, err := socks5.ParseAddr(s)
		if err != nil {
			fmt.Println("error:", err)
			continue
		}
		fmt.Println(a.Type(), a.Host(), a.Port)
	}
	// Output:
	// IPv4 192.0.2.1 1080
	// IPv6 2001:db8::1 443
	// domain name example.com 80
	// error: address :80: empty domain name
	// error: address [fe80::1%eth0]:22: IPv6 zone cannot be sent through SOCKS
}

func ExampleReplyFor() {
	for _, err := range []error{
		nil,
		&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
		&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "nowhere.invalid", IsNotFound: true}},
		&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ENETUNREACH)},
		context.DeadlineExceeded,
		&socks5.ReplyError{Reply: socks5.NotAllowed},
		errors.New("something else"),
	} {
		code := socks5.ReplyFor(err)
		fmt.Printf("%#02x %v\n", uint8(code), code)
	}
	// Output:
	// 0x00 succeeded
	// 0x05 connection refused
	// 0x04 host unreachable
	// 0x03 network unreachable
	// 0x04 host unreachable
	// 0x02 connection not allowed by ruleset
	// 0x01 general SOCKS server failure
}

// A server that requires a username and password from a fixed set.
func ExampleNewCredentials() {
	creds := socks5.NewCredentials(map[string]string{"alice": "secret", "bob": "hunter2"})
	methods := []socks5.ServerMethod{socks5.UserPassServer{Check: creds.Check}}

	for _, client := range []socks5.UserPassClient{
		{Username: "alice", Password: "secret"},
		{Username: "alice", Password: "hunter2"},
	} {
		clientConn, serverConn := net.Pipe()
		go func() {
			defer clientConn.Close()
			target, _ := socks5.ParseAddr("example.com:443")
			socks5.ClientHandshake(context.Background(), clientConn,
				socks5.Request{Command: socks5.CmdConnect, Addr: target}, client)
		}()
		s, err := socks5.ServerHandshake(context.Background(), serverConn, methods)
		if err != nil {
			fmt.Println(client.Username+":", err, errors.Is(err, socks5.ErrAuthFailed))
		} else {
			fmt.Println(s.User+":", "authenticated for", s.Request.Addr)
		}
		serverConn.Close()
	}
	// Output:
	// alice: authenticated for example.com:443
	// alice: socks5: username/password authentication: socks5: authentication failed true
}

// A server whose policy is a function of its own.
func ExampleUserPassServer() {
	check := func(ctx context.Context, user, password string) bool {
		return user == "guest" && password == "guest"
	}
	// What the client sent, RFC 1929's request, and where the answer goes.
	in := bytes.NewReader([]byte{0x01, 0x05, 'g', 'u', 'e', 's', 't', 0x05, 'g', 'u', 'e', 's', 't'})
	var out bytes.Buffer
	rw := struct {
		io.Reader
		io.Writer
	}{in, &out}

	res, err := socks5.UserPassServer{Check: check}.Verify(context.Background(), rw)
	fmt.Printf("user %q, %v, answered % x\n", res.User, err, out.Bytes())
	// Output:
	// user "guest", <nil>, answered 01 00
}
