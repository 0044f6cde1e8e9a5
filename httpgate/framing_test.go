package httpgate

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestFramer(t *testing.T) {
	cases := []struct {
		name   string
		stream string
		bad    string // the reason, or "" when the stream is fine
		good   int    // bytes before the bad head
	}{
		{"get", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", "", 0},
		{"body skipped", "POST / HTTP/1.1\r\nContent-Length: 40\r\n\r\n" + "Transfer-Encoding: x\r\nContent-Length: 1\r\n\r\n", "", 0},
		{"chunks skipped", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: 1\r\n\r\nGET / HTTP/1.1\r\n\r\n", "", 0},
		{"te and cl", "GET / HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", "both Transfer-Encoding and Content-Length", 18},
		{"http/1.0 te", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 request", 0},
		{"te last not chunked", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", "Transfer-Encoding does not end in chunked", 0},
		{"cl conflict", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "invalid or conflicting Content-Length", 0},
		{"cl same twice", "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", "", 0},
		{"cl negative", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", "invalid or conflicting Content-Length", 0},
		{"bad chunk size", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", "invalid chunk size", 0},
		{"chunk bare lf", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\r\n", "chunk-size line not ended by CRLF", 0},
		{"chunk data overrun", "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n", "chunk data not followed by CRLF", 0},
		{"connect stops", "CONNECT a:1 HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", "", 0},
		{"upgrade stops", "GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", "", 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// Whole, and a byte at a time: the same verdict.
			f := &framer{maxHead: 1 << 16, first: true}
			good, err := f.feed([]byte(tc.stream))
			if tc.bad == "" {
				assert.NoError(t, err)
				assert.Equal(t, len(tc.stream), good)
			} else {
				assert.EqualError(t, err, "httpgate: request framing: "+tc.bad)
				assert.Equal(t, tc.good, good)
			}
			f = &framer{maxHead: 1 << 16, first: true}
			var bytewise error
			for i := range len(tc.stream) {
				if _, bytewise = f.feed([]byte{tc.stream[i]}); bytewise != nil {
					break
				}
			}
			assert.Equal(t, err, bytewise)
		})
	}
}

func TestFramerHeadBound(t *testing.T) {
	f := &framer{maxHead: 100, first: true}
	_, err := f.feed([]byte("GET / HTTP/1.1\r\nX: " + string(make([]byte, 200))))
	assert.EqualError(t, err, "httpgate: request framing: header section too large")
}

// FuzzFramer feeds a stream whole and in two pieces: the verdict must not
// depend on where the pieces are cut, and the framer must not panic.
func FuzzFramer(f *testing.F) {
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 5)
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\n\r\n"), 40)
	f.Add([]byte("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"), 17)
	f.Add([]byte("POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n"), 3)
	f.Fuzz(func(t *testing.T, stream []byte, cut int) {
		whole := &framer{maxHead: 4096, first: true}
		good1, err1 := whole.feed(stream)
		if cut < 0 {
			cut = -cut
		}
		if len(stream) > 0 {
			cut %= len(stream) + 1
		} else {
			cut = 0
		}
		split := &framer{maxHead: 4096, first: true}
		good2, err2 := split.feed(stream[:cut])
		if err2 == nil {
			var g int
			g, err2 = split.feed(stream[cut:])
			good2 = cut + g
		}
		if (err1 == nil) != (err2 == nil) || err1 != nil && err1.Error() != err2.Error() {
			t.Fatalf("whole: %v; cut at %d: %v", err1, cut, err2)
		}
		if good1 < 0 || good1 > len(stream) || good2 < 0 || good2 > len(stream) {
			t.Fatalf("good out of range: %d, %d of %d", good1, good2, len(stream))
		}
	})
}
