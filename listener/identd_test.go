package listener

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
	"github.com/sockstap/sockstap/socks4"
	"github.com/sockstap/sockstap/socks5"
)

func TestParseIdentReply(t *testing.T) {
	for _, tc := range []struct {
		line string
		want identReply // zero: malformed
	}{
		// RFC 1413's examples.
		{"6193, 23 : USERID : UNIX : stjohns", identReply{serverPort: 6193, clientPort: 23, opsys: "UNIX", user: "stjohns"}},
		{"6195, 23 : ERROR : NO-USER", identReply{serverPort: 6195, clientPort: 23, errorType: "NO-USER"}},
		// Blanks where they may be, or none.
		{"6193,23:USERID:UNIX:stjohns", identReply{serverPort: 6193, clientPort: 23, opsys: "UNIX", user: "stjohns"}},
		{" \t6193 ,\t23 :  userid : OTHER , UTF-8 :\t alice", identReply{serverPort: 6193, clientPort: 23, opsys: "OTHER", charset: "UTF-8", user: "alice"}},
		{"1,65535:error:X-LOCAL-POLICY  ", identReply{serverPort: 1, clientPort: 65535, errorType: "X-LOCAL-POLICY"}},
		// The user id is the rest of the line: colons, commas, inner and
		// trailing blanks, any byte but NUL, CR and LF.
		{"1, 2 : USERID : UNIX : a:b, c ", identReply{serverPort: 1, clientPort: 2, opsys: "UNIX", user: "a:b, c "}},
		{"1, 2 : USERID : UNIX : \xff\x01", identReply{serverPort: 1, clientPort: 2, opsys: "UNIX", user: "\xff\x01"}},
		{"1, 2 : USERID : UNIX : " + strings.Repeat("u", 512), identReply{serverPort: 1, clientPort: 2, opsys: "UNIX", user: strings.Repeat("u", 512)}},

		// Malformed.
		{"", identReply{}},
		{"6193, 23", identReply{}},
		{"6193 23 : USERID : UNIX : x", identReply{}},
		{"6193, 23 : USERID : UNIX :", identReply{}},     // empty user id
		{"6193, 23 : USERID : UNIX :  \t", identReply{}}, // blanks only
		{"6193, 23 : USERID : UNIX", identReply{}},
		{"6193, 23 : USERID :: x", identReply{}},         // empty operating system
		{"6193, 23 : USERID : UNIX, : x", identReply{}},  // empty character set
		{"6193, 23 : USERID : UN IX : x", identReply{}},  // a blank inside a token
		{"6193, 23 : USERID : UNIX|X : x", identReply{}}, // not a token character
		{"6193, 23 : USERID : " + strings.Repeat("U", 65) + " : x", identReply{}},
		{"6193, 23 : USER ID : UNIX : x", identReply{}},
		{"6193, 23 : PASSWORD : UNIX : x", identReply{}},
		{"6193, 23 : ERROR : NO-USER : more", identReply{}},
		{"6193, 23 : ERROR : ", identReply{}},
		{"6193, 23 : ERROR : NO USER", identReply{}},
		{"0, 23 : ERROR : NO-USER", identReply{}},
		{"65536, 23 : ERROR : NO-USER", identReply{}},
		{"006193, 23 : ERROR : NO-USER", identReply{}}, // six digits
		{"+6193, 23 : ERROR : NO-USER", identReply{}},
		{"-1, 23 : ERROR : NO-USER", identReply{}},
		{"6193, 2 3 : ERROR : NO-USER", identReply{}},
		{", 23 : ERROR : NO-USER", identReply{}},
		{"1, 2 : USERID : UNIX : a\x00b", identReply{}},
		{"1, 2 : USERID : UNIX : a\rb", identReply{}},
		{"1, 2 : USERID : UNIX : a\nb", identReply{}},
	} {
		t.Run(strconv.Quote(tc.line), func(t *testing.T) {
			got, err := parseIdentReply([]byte(tc.line))
			if tc.want == (identReply{}) {
				assert.Error(t, err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestReadIdentLine(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
		err            error
	}{
		{"CR LF", "1, 2 : ERROR : NO-USER\r\nignored", "1, 2 : ERROR : NO-USER", nil},
		{"LF", "1, 2 : ERROR : NO-USER\n", "1, 2 : ERROR : NO-USER", nil},
		{"longest", strings.Repeat("x", maxIdentLine) + "\r\n", strings.Repeat("x", maxIdentLine), nil},
		{"too long", strings.Repeat("x", maxIdentLine+2) + "\n", "", errIdentLong},
		{"no end of line", "1, 2 : ERROR : NO-USER", "", errIdentdClosed},
		{"nothing", "", "", errIdentdClosed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One byte at a time: the line comes in pieces.
			got, err := readIdentLine(&oneByteReader{strings.NewReader(tc.in)})
			if tc.err != nil {
				assert.ErrorIs(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, string(got))
		})
	}
}

type oneByteReader struct{ r io.Reader }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(p) > 1 {
		p = p[:1]
	}
	return o.r.Read(p)
}

// appendIdentReply appends r as an identd sends it, without the end of
// line.
func appendIdentReply(b []byte, r identReply) []byte {
	b = fmt.Appendf(b, "%d, %d : ", r.serverPort, r.clientPort)
	if r.errorType != "" {
		return append(append(b, "ERROR : "...), r.errorType...)
	}
	b = append(append(b, "USERID : "...), r.opsys...)
	if r.charset != "" {
		b = append(append(b, ','), r.charset...)
	}
	return append(append(b, " : "...), r.user...)
}

// FuzzParseIdentReply feeds the identd reply parser whatever the fuzzer
// makes, as a hostile identd would: it must not panic, and what it
// accepts must be a reply it could have been sent, which reads back the
// same when written again.
func FuzzParseIdentReply(f *testing.F) {
	for _, s := range []string{
		"6193, 23 : USERID : UNIX : stjohns",
		"6195, 23 : ERROR : NO-USER",
		"1,65535:userid:OTHER,UTF-8:\talice:x",
		"1, 2 : ERROR : X-" + strings.Repeat("A", 62),
		"1, 2 : USERID : UNIX : a\x00b",
		"99999, 1 : ERROR : HIDDEN-USER",
		"1, 2 : USERID : UNIX :   ",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := parseIdentReply(line)
		if err != nil {
			return
		}
		assert.NotZero(t, r.serverPort)
		assert.NotZero(t, r.clientPort)
		assert.True(t, (r.errorType == "") != (r.user == ""), "either an error or a user: %+v", r)
		for _, tok := range []string{r.errorType, r.opsys, r.charset} {
			assert.LessOrEqual(t, len(tok), maxIdentToken)
			assert.NotContains(t, tok, ":")
			assert.NotContains(t, tok, " ")
		}
		if r.user != "" {
			assert.NotEmpty(t, r.opsys)
			assert.False(t, strings.ContainsAny(r.user, "\x00\r\n"), "%q", r.user)
			assert.False(t, r.user[0] == ' ' || r.user[0] == '\t', "%q", r.user)
		}
		again, err := parseIdentReply(appendIdentReply(nil, r))
		require.NoError(t, err, "%+v", r)
		assert.Equal(t, r, again)
	})
}

// identWorld is a world that relays CONNECT, checks SOCKS4 users with an
// identd on 127.0.0.1 that answer serves, and keeps its records; it
// returns the queries identd received.
func identWorld(t *testing.T, answer func(query string) string, cfg *Config) (*world, *recorder, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var queries []string
	identd := sockstest.Identd(t, "127.0.0.1:0", func(q string) string {
		mu.Lock()
		queries = append(queries, q)
		mu.Unlock()
		return answer(q)
	})
	if cfg == nil {
		cfg = &Config{}
	}
	rec := &recorder{}
	cfg.Dialer = &net.Dialer{}
	cfg.Identd = true
	cfg.IdentdPort = uint16(identd.Port)
	cfg.OnRecord = rec.add
	return newWorld(t, cfg), rec, func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), queries...)
	}
}

// TestIdentd checks SOCKS4 users with identd: granted when identd names
// the USERID, 93 when it names another or will not say, 92 when it cannot
// be reached or answers nonsense; and the query names the connection's
// two ports.
func TestIdentd(t *testing.T) {
	echo := sockstest.Echo(t)
	for _, tc := range []struct {
		name   string
		answer func(query string) string
		reply  socks4.Reply
		reason string
	}{
		{"confirmed", sockstest.UserID("alice"), socks4.Granted, ""},
		{"blanks and LF", func(q string) string { return q + ":USERID:UNIX:   alice\n" }, socks4.Granted, ""},
		{"another user", sockstest.UserID("mallory"), socks4.IdentdMismatch, `identd names the user "mallory"`},
		{"a longer name", sockstest.UserID("alice2"), socks4.IdentdMismatch, `identd names the user "alice2"`},
		{"error", func(q string) string { return q + " : ERROR : HIDDEN-USER\r\n" }, socks4.IdentdMismatch, "identd answered ERROR : HIDDEN-USER"},
		{"closed unanswered", func(string) string { return "" }, socks4.IdentdMismatch, "identd closed without a reply"},
		{"another port pair", func(string) string { return "1, 2 : USERID : UNIX : alice\r\n" }, socks4.IdentdUnreachable, "no answer from identd: identd replied for the ports 1, 2"},
		{"nonsense", func(string) string { return "HTTP/1.1 400 Bad Request\r\n" }, socks4.IdentdUnreachable, "no answer from identd: malformed identd reply"},
		{"endless line", func(string) string { return strings.Repeat("x", 5000) }, socks4.IdentdUnreachable, "no answer from identd: identd reply longer than 1000 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, rec, queries := identWorld(t, tc.answer, nil)
			c, err := w.connect4("127.0.0.1", uint16(echo.Port), "alice")
			assert.Equal(t, tc.reply, replyOf4(err), "%v", err)
			if err == nil {
				c.Close() // the relay's end writes the record
			}
			r := rec.wait(t, func(*Record) bool { return true })
			if tc.reply == socks4.Granted {
				assert.Equal(t, DecisionRelay, r.Decision)
			} else {
				waitClosed(t, c)
				assert.Equal(t, DecisionDeny, r.Decision)
				assert.True(t, strings.HasPrefix(r.Reason, tc.reason), "reason %q", r.Reason)
				assert.Equal(t, tc.reply, r.Reply)
			}
			want := fmt.Sprintf("%d, %d", c.LocalAddr().(*net.TCPAddr).Port, w.l.Addr().(*net.TCPAddr).Port)
			assert.Equal(t, []string{want}, queries(), "one query: the client's port, then the listener's")
		})
	}
}

func replyOf4(err error) socks4.Reply {
	if err == nil {
		return socks4.Granted
	}
	r, _ := replyOf(err).(socks4.Reply)
	return r
}

// TestIdentdUnreachable: no identd (a closed port), or one that never
// answers (bounded by IdentdTimeout), is 92.
func TestIdentdUnreachable(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closedPort := uint16(closed.Addr().(*net.TCPAddr).Port)
	closed.Close()
	silent := sockstest.Serve(t, func(c net.Conn) { io.Copy(io.Discard, c) })

	for _, tc := range []struct {
		name string
		port uint16
	}{
		{"nothing listening", closedPort},
		{"silent", uint16(silent.Port)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			w := newWorld(t, &Config{Dialer: &net.Dialer{}, Identd: true, IdentdPort: tc.port,
				IdentdTimeout: 100 * time.Millisecond, OnRecord: rec.add})
			start := time.Now()
			c, err := w.connect4("127.0.0.1", 9, "alice")
			assert.Equal(t, socks4.IdentdUnreachable, replyOf4(err), "%v", err)
			assert.Less(t, time.Since(start), sockstest.Timeout/2, "bounded by IdentdTimeout")
			waitClosed(t, c)
			r := rec.wait(t, decided(DecisionDeny))
			assert.Contains(t, r.Reason, "no answer from identd")
		})
	}
}

// TestIdentdOnlyWhereItFits: SOCKS5 clients, which authenticate by their
// methods, and requests the policy refuses are not looked up; nor is
// anyone when the check is off.
func TestIdentdOnlyWhereItFits(t *testing.T) {
	echo := sockstest.Echo(t)
	w, _, queries := identWorld(t, sockstest.UserID("alice"), &Config{
		Policy: func(_ context.Context, r *Request) error {
			if r.Target.Port == 7 {
				return Deny("port 7")
			}
			return nil
		},
	})
	c, _, err := w.connect5(echo.String())
	require.NoError(t, err)
	c.Close()
	_, err = w.connect4("127.0.0.1", 7, "alice")
	assert.Equal(t, socks4.Rejected, replyOf4(err))
	w.logs.Wait(t, sockstest.Key("reason", "port 7"))
	assert.Empty(t, queries())

	identd := sockstest.Identd(t, "127.0.0.1:0", func(q string) string {
		t.Errorf("identd asked %q with the check off", q)
		return ""
	})
	w = newWorld(t, &Config{Dialer: &net.Dialer{}, IdentdPort: uint16(identd.Port)})
	c, err = w.connect4("127.0.0.1", uint16(echo.Port), "alice")
	require.NoError(t, err)
	c.Close()
}

// TestIdentdThroughBIND: the check comes before any command, BIND too.
func TestIdentdThroughBIND(t *testing.T) {
	w, rec, _ := identWorld(t, sockstest.UserID("mallory"), &Config{Bind: true})
	c := w.dial()
	_, err := socks4.ClientHandshake(context.Background(), c, socks4.Request{Command: socks4.CmdBind, IP: netip.MustParseAddr("127.0.0.1"), Port: 21, User: "alice"})
	assert.Equal(t, socks4.IdentdMismatch, replyOf4(err))
	r := rec.wait(t, decided(DecisionDeny))
	assert.Equal(t, socks5.CmdBind, r.Request.Command)
}
