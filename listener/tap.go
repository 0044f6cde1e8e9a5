package listener

import "bytes"

// httpStarts are the bytes an HTTP/1 request or the HTTP/2 connection
// preface begins with: a method and its space, or the preface's start.
var httpStarts = [][]byte{
	[]byte("GET "), []byte("HEAD "), []byte("POST "), []byte("PUT "),
	[]byte("DELETE "), []byte("CONNECT "), []byte("OPTIONS "), []byte("TRACE "),
	[]byte("PATCH "), []byte("PRI * HTTP/2.0"),
}

// TapHTTP is a [Config.Tap] that taps the streams that speak HTTP: those
// whose first bytes are an HTTP/1 request line's method or the HTTP/2
// connection preface. A client that stays silent is relayed.
func TapHTTP(_ *Request, peek func(n int) []byte) bool {
	return IsHTTP(peek(len("PRI * HTTP/2.0")))
}

// IsHTTP reports whether b, the first bytes of a stream, begin an HTTP/1
// request or the HTTP/2 connection preface. A b shorter than the longest
// start counts when it is as far as it goes one of them.
func IsHTTP(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, s := range httpStarts {
		if len(b) >= len(s) && bytes.HasPrefix(b, s) || len(b) < len(s) && len(b) >= 4 && bytes.HasPrefix(s, b) {
			return true
		}
	}
	return false
}
