package listener

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/sockstap/sockstap/socks4"
	"github.com/sockstap/sockstap/socks5"
)

func (s *session) handshake4(ctx context.Context, rw *rwPair) error {
	sess, err := socks4.ServerHandshake(ctx, rw)
	if err != nil {
		return err
	}
	q := sess.Request
	target := socks5.Addr{Name: q.Host, Port: q.Port}
	if q.Host == "" {
		target.IP = q.IP
	}
	s.req = &Request{
		Version: 4,
		Command: socks5.Command(q.Command),
		Target:  target,
		User:    q.User,
		Method:  socks5.AuthNone,
		Client:  s.conn.RemoteAddr(),
		Local:   s.conn.LocalAddr(),
	}
	s.data, s.rd = s.conn, s.br
	s.reply = func(err error, bound socks5.Addr) (fmt.Stringer, error) {
		code := socks4.ReplyFor(err)
		ap, _ := bound.AddrPort()
		if !ap.Addr().Is4() {
			ap = netip.AddrPort{}
		}
		return code, sess.Reply(code, ap)
	}
	return nil
}
