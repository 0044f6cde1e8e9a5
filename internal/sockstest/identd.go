package sockstest

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// Identd starts an identd (RFC 1413) on address, such as "127.0.0.1:0",
// for a test: it reads each connection's query line and writes back what
// answer returns for it, as it is (a hostile identd's test writes what it
// likes; [UserID] makes an honest reply), then closes the connection.
// query is the line without its end of line ("6191, 23"). An empty answer
// closes the connection unanswered. The test's cleanup stops the server.
func Identd(t testing.TB, address string, answer func(query string) string) *net.TCPAddr {
	t.Helper()
	return ServeOn(t, address, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(Timeout))
		query, err := bufio.NewReaderSize(c, 1024).ReadString('\n')
		if err != nil {
			return
		}
		if a := answer(strings.TrimRight(query, "\r\n")); a != "" {
			io.WriteString(c, a)
		}
	})
}

// UserID returns an answer for [Identd] that names user as the owner of
// every connection, in a reply for the query's port pair:
// "6191, 23 : USERID : UNIX : user".
func UserID(user string) func(query string) string {
	return func(query string) string {
		return query + " : USERID : UNIX : " + user + "\r\n"
	}
}
