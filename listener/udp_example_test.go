package listener_test

import (
	"context"
	"fmt"
	"log"
	"net"
	"net/netip"
	"time"

	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

// A listener that serves UDP ASSOCIATE, and a client that sends a
// datagram through it to a UDP echo server and reads the answer, with
// the header that names its sender.
func ExampleConfig_udp() {
	echo, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		log.Fatal(err)
	}
	defer echo.Close()
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := echo.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			echo.WriteToUDPAddrPort(buf[:n], from)
		}
	}()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	l := listener.Wrap(ln, &listener.Config{
		UDP: true,
		// Datagrams leave from 127.0.0.1; nil would mean any address.
		UDPListener: listener.PacketListenerFunc(func(ctx context.Context, _, _ string) (net.PacketConn, error) {
			var lc net.ListenConfig
			return lc.ListenPacket(ctx, "udp4", "127.0.0.1:0")
		}),
	})
	defer l.Close()

	// The client: the association lasts as long as ctrl.
	ctrl, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		log.Fatal(err)
	}
	defer ctrl.Close()
	relay, _, err := socks5.ClientHandshake(context.Background(), ctrl,
		socks5.Request{Command: socks5.CmdUDPAssociate, Addr: socks5.Addr{IP: netip.IPv4Unspecified()}})
	if err != nil {
		log.Fatal(err)
	}
	pc, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(relay.IP, relay.Port)))
	if err != nil {
		log.Fatal(err)
	}
	defer pc.Close()
	to := socks5.AddrFromAddrPort(echo.LocalAddr().(*net.UDPAddr).AddrPort())
	b, _ := socks5.Datagram{Addr: to, Payload: []byte("hello")}.AppendBinary(nil)
	pc.Write(b)

	pc.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1500)
	n, err := pc.Read(buf)
	if err != nil {
		log.Fatal(err)
	}
	d, err := socks5.ParseDatagram(buf[:n])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s, from the echo server: %v\n", d.Payload, d.Addr == to)
	// Output: hello, from the echo server: true
}
