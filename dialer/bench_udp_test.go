package dialer_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sockstap/sockstap/dialer"
	"github.com/sockstap/sockstap/internal/interop"
	"github.com/sockstap/sockstap/internal/sockstest"
)

// BenchmarkUDP measures datagrams through a UDP association, in round
// trips per second: each op sends one datagram to a loopback echo server
// and reads it back. The paths, measured in the same run:
//
//   - direct: a connected UDP socket, no proxy;
//   - danted: a [dialer.PacketConn] through danted's relay;
//   - sockstap-listener: through our own listener's relay, which does
//     not exist yet (the listener serves no UDP ASSOCIATE): the case is
//     skipped, and is where it will be measured.
//
// It logs the ratio of each proxied path to direct:
//
//	go test -run '^$' -bench UDP -benchtime 2s -v ./dialer
func BenchmarkUDP(b *testing.B) {
	echo := sockstest.EchoUDP(b)
	rates := map[string]float64{}
	measure := func(name string, open func(b *testing.B) net.Conn) {
		b.Run(name, func(b *testing.B) {
			c := open(b)
			defer c.Close()
			msg := make([]byte, 512)
			buf := make([]byte, 2048)
			start := time.Now()
			for b.Loop() {
				c.SetDeadline(time.Now().Add(wait))
				if _, err := c.Write(msg); err != nil {
					b.Fatal(err)
				}
				if _, err := c.Read(buf); err != nil {
					b.Fatal(err)
				}
			}
			rate := float64(b.N) / time.Since(start).Seconds()
			b.ReportMetric(rate, "roundtrips/s")
			rates[name] = rate
		})
	}
	measure("direct", func(b *testing.B) net.Conn {
		c, err := net.DialUDP("udp", nil, echo)
		if err != nil {
			b.Fatal(err)
		}
		return c
	})
	measure("danted", func(b *testing.B) net.Conn {
		proxy := interop.Dante(b, interop.Options{})
		c, err := (&dialer.Dialer{Proxy: proxy.String()}).DialContext(context.Background(), "udp", echo.String())
		if err != nil {
			b.Fatal(err)
		}
		return c
	})
	b.Run("sockstap-listener", func(b *testing.B) {
		// The hook for our own relay: once listener serves UDP ASSOCIATE,
		// open an association through it here, as "danted" does.
		b.Skip("listener does not serve UDP ASSOCIATE yet")
	})
	for _, name := range []string{"danted"} {
		if rates["direct"] > 0 && rates[name] > 0 {
			b.Logf("%s/direct = %.3f (%.0f vs %.0f round trips/s)", name, rates[name]/rates["direct"], rates[name], rates["direct"])
		}
	}
}
