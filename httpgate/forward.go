package httpgate

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// outgoing builds the request the gateway sends upstream for the client's
// r: hop-by-hop fields gone, Via added, the destination in the URL, the
// Host field as the client sent it. keepUpgrade keeps what an upgrade
// needs of the fields that name the connection.
func (ex *exchange) outgoing(ctx context.Context, keepUpgrade bool) *http.Request {
	r := ex.r
	out := r.Clone(ctx)
	out.RequestURI = ""
	out.Trailer = r.Trailer // the server fills it in once the body is read: not a copy
	out.Close = false
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	u := &url.URL{Scheme: "http", Host: ex.target, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery}
	if ex.arrival == ArrivalProxy {
		u.Scheme = strings.ToLower(r.URL.Scheme)
		u.Host = strings.ToLower(r.URL.Host)
	}
	if u.Path == "" && u.RawQuery == "" && r.URL.Opaque != "" {
		u.Opaque = r.URL.Opaque
	}
	out.URL = u
	h := out.Header
	teTrailers, upgrade := removeHopHeaders(h)
	if teTrailers {
		h.Set("Te", "trailers")
	}
	if keepUpgrade && upgrade != "" {
		h.Set("Connection", "Upgrade")
		h.Set("Upgrade", upgrade)
	}
	ex.st.addVia(h, r.ProtoMajor, r.ProtoMinor)
	if ex.g.Forwarded {
		addForwarded(h, r, out.URL.Scheme)
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""} // no User-Agent of Go's own
	}
	if r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		out.Body = nil
	} else if r.Body != nil && r.Body != http.NoBody {
		ex.body = &countingBody{ReadCloser: r.Body}
		// A client that stops sending its body mid-way is cut off: a read
		// deadline in the past ends the read that waits for it.
		out.Body, ex.bodyWatch = watchRequestBody(ex.body, ex.st.bodyIdle, func() {
			http.NewResponseController(ex.w).SetReadDeadline(time.Unix(1, 0))
		})
	}
	return out
}

// addForwarded adds the client's address to Forwarded and X-Forwarded-For.
func addForwarded(h http.Header, r *http.Request, scheme string) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return
	}
	forHost := host
	if strings.Contains(host, ":") {
		forHost = `"[` + host + `]"`
	}
	h.Add("Forwarded", "for="+forHost+";proto="+scheme)
	if prior := h.Get("X-Forwarded-For"); prior != "" {
		host = prior + ", " + host
	}
	h.Set("X-Forwarded-For", host)
}

// forward sends an ordinary request upstream and passes the response on,
// through the cache when there is one.
func (ex *exchange) forward() {
	ctx := ex.context()
	if c := ex.g.Cache; c != nil {
		c.serve(ex, ctx)
		return
	}
	out := ex.outgoing(ctx, false)
	resp, err := ex.roundTrip(out)
	if err != nil {
		ex.upstreamError(err)
		return
	}
	ex.respond(resp, nil)
}

// roundTrip sends out, passing the 1xx responses it gets on to the client.
// Its body's reads are bounded by BodyIdleTimeout: a stalled one cancels
// the request, which ends the connection.
func (ex *exchange) roundTrip(out *http.Request) (*http.Response, error) {
	trace := &httptrace.ClientTrace{Got1xxResponse: ex.informational}
	ctx, cancel := out.Context(), context.CancelFunc(nil)
	if ex.st.bodyIdle > 0 {
		ctx, cancel = context.WithCancel(ctx)
	}
	out = out.WithContext(httptrace.WithClientTrace(ctx, trace))
	var resp *http.Response
	var err error
	if t := ex.g.Transport; t != nil {
		resp, err = t.RoundTrip(out)
	} else {
		resp, err = ex.st.upstream.transport(ex.req).RoundTrip(out)
	}
	if err != nil {
		if cancel != nil {
			cancel()
		}
		return nil, err
	}
	if cancel != nil {
		// A stalled read cancels the request, which ends its connection;
		// closing the body releases the context.
		resp.Body = watchBody(resp.Body, ex.st.bodyIdle, cancel, cancel)
	}
	if f := ex.g.ModifyResponse; f != nil {
		if err := f(resp); err != nil {
			resp.Body.Close()
			return nil, err
		}
	}
	return resp, nil
}

// informational passes an interim (1xx) response on, without its
// hop-by-hop fields, to a client that can take one: HTTP/1.1 or later.
func (ex *exchange) informational(code int, header textproto.MIMEHeader) error {
	if !ex.r.ProtoAtLeast(1, 1) || code == http.StatusSwitchingProtocols {
		return nil
	}
	if code == http.StatusContinue && hasToken(ex.r.Header["Expect"], "100-continue") {
		// The server answers the client's Expect itself, as the transport
		// starts sending the body it was told to continue with: passing
		// upstream's 100 on as well would answer twice.
		return nil
	}
	hh := http.Header(header).Clone()
	removeHopHeaders(hh)
	ex.st.addVia(hh, 1, 1)
	h := ex.w.Header()
	saved := h.Clone()
	clear(h)
	for k, v := range hh {
		h[k] = v
	}
	ex.armWrite()
	ex.w.WriteHeader(code)
	clear(h)
	for k, v := range saved {
		h[k] = v
	}
	return nil
}

// respond passes resp on to the client: hop-by-hop fields removed, Via
// added, the body streamed, trailers after it. A close-delimited response
// stays close-delimited, and ends the client's connection. When tee is
// not nil, the body is written to it too, and tee is told whether the
// whole body was passed on.
func (ex *exchange) respond(resp *http.Response, tee bodySink) {
	defer resp.Body.Close()
	removeHopHeaders(resp.Header)
	ex.st.addVia(resp.Header, resp.ProtoMajor, resp.ProtoMinor)
	ex.writeResponse(resp.StatusCode, resp.Header, resp.Body, resp.ContentLength,
		closeDelimited(resp), resp.Trailer, tee)
}

// closeDelimited reports whether resp's body ends where its connection
// does: neither a length nor chunked framing.
func closeDelimited(resp *http.Response) bool {
	return resp.ContentLength < 0 && len(resp.TransferEncoding) == 0 &&
		bodyAllowed(resp.StatusCode) && resp.Request != nil && resp.Request.Method != http.MethodHead
}

func bodyAllowed(code int) bool {
	return code >= 200 && code != http.StatusNoContent && code != http.StatusNotModified
}

// A bodySink receives a copy of a response body as it is passed on.
type bodySink interface {
	io.Writer
	// done is told whether the whole body was passed on, and the
	// trailers.
	done(complete bool)
}

// writeResponse writes a response to the client, its fields header added
// to those already set.
func (ex *exchange) writeResponse(code int, header http.Header, body io.Reader, length int64, closeDelim bool, trailer http.Header, tee bodySink) {
	h := ex.w.Header()
	for k, v := range header {
		h[k] = v
	}
	if len(trailer) > 0 {
		keys := make([]string, 0, len(trailer))
		for k := range trailer {
			keys = append(keys, k)
		}
		h["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	if closeDelim && ex.r.ProtoAtLeast(1, 1) {
		// net/http frames a body of unknown length with chunked, unless
		// told "identity": then it closes the connection after it.
		h["Transfer-Encoding"] = []string{"identity"}
	}
	defer ex.armWrite() // see writeHead
	ex.writeHead(code)
	if body == nil {
		if tee != nil {
			tee.done(true)
		}
		return
	}
	complete, err := ex.copyBody(body, length < 0, tee)
	if tee != nil {
		tee.done(complete)
	}
	if err != nil {
		ex.err = err
		ex.reason = "response cut short: " + err.Error()
		ex.abort(length < 0 && (closeDelim || !ex.r.ProtoAtLeast(1, 1)))
	}
	for k, v := range trailer {
		h[http.TrailerPrefix+k] = v
	}
}

// writeHead writes the head of a response with the fields set in
// ex.w.Header(). The server writes what is left of the response (the
// head of one without a body, the end of a chunked one, trailers) once
// the handler returns: the caller arms the client's write deadline again
// when it is done, to bound that from then.
func (ex *exchange) writeHead(code int) {
	h := ex.w.Header()
	if _, ok := h["Content-Type"]; !ok {
		h["Content-Type"] = nil // net/http would guess one: a proxy does not
	}
	ex.armWrite()
	ex.w.WriteHeader(code)
}

// writeStored writes a response whose fields are set and whose body is
// all in hand: a stored one. The body goes in pieces of copyChunk, each
// write bounded by ClientWriteTimeout, as copyBody's are.
func (ex *exchange) writeStored(code int, body []byte) {
	defer ex.armWrite() // see writeHead
	ex.writeHead(code)
	for len(body) > 0 {
		n := min(len(body), copyChunk)
		ex.armWrite()
		if _, err := ex.w.Write(body[:n]); err != nil {
			ex.clientWriteFailed(err)
			return
		}
		body = body[n:]
	}
}

// abort ends a response that cannot be completed: what was written of it
// goes out, then the connection ends, so that the client does not take it
// for whole (RFC 9112, section 8). When its body has neither a length nor
// chunks, which would tell a cut body from a whole one, the connection is
// reset rather than closed.
func (ex *exchange) abort(unframed bool) {
	http.NewResponseController(ex.w).Flush()
	if unframed && ex.fc != nil {
		if tc := tcpConnOf(ex.fc); tc != nil {
			tc.SetLinger(0) // close sends RST
		}
	}
	panic(http.ErrAbortHandler)
}

// tcpConnOf returns the TCP connection under c's wrappers, or nil.
func tcpConnOf(c net.Conn) *net.TCPConn {
	for range 8 { // wrappers do not nest deeper
		switch w := c.(type) {
		case *net.TCPConn:
			return w
		case interface{ NetConn() net.Conn }:
			c = w.NetConn()
		default:
			return nil
		}
	}
	return nil
}

// copyChunk is the most of a body passed on in one write.
const copyChunk = 32 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyChunk); return &b }}

// copyBody copies body to the client, flushing after each read when the
// length is unknown (a stream: events, long polls), and to tee. It
// reports whether the whole body went to the client, and returns an error
// of reading the body; an error of writing to the client ends the copy
// quietly.
func (ex *exchange) copyBody(body io.Reader, flush bool, tee bodySink) (complete bool, err error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if tee != nil {
				tee.Write(buf[:n])
			}
			ex.armWrite()
			_, werr := ex.w.Write(buf[:n])
			if werr == nil && flush {
				werr = ex.controller().Flush()
			}
			if werr != nil {
				ex.clientWriteFailed(werr)
				return false, nil
			}
		}
		if rerr == io.EOF {
			return true, nil
		}
		if rerr != nil {
			return false, rerr
		}
	}
}

// controller returns the client's response controller.
func (ex *exchange) controller() *http.ResponseController {
	if ex.rc == nil {
		ex.rc = http.NewResponseController(ex.w)
	}
	return ex.rc
}

// armWrite gives the next write to the client ClientWriteTimeout, on a
// connection whose writes can have a deadline, when the connection does
// not bound each write itself (a Server's do: see writeBound). It renews
// the deadline at most every sixteenth of the timeout (setting one costs
// about as much as the rest of a small response's bookkeeping): a write
// is given at least fifteen sixteenths of it.
func (ex *exchange) armWrite() {
	d := ex.st.clientWrite
	if d <= 0 || ex.noWriteDeadline || ex.connBound {
		return
	}
	now := time.Now()
	if !ex.armed.IsZero() && now.Sub(ex.armed) < d/16 {
		return
	}
	ex.armed = now
	if err := ex.controller().SetWriteDeadline(now.Add(d)); err != nil {
		ex.noWriteDeadline = true
	}
}

// clientWriteFailed notes why a write to the client failed: the client
// took nothing for ClientWriteTimeout, or its connection ended.
func (ex *exchange) clientWriteFailed(err error) {
	ex.err = err
	if errors.Is(err, os.ErrDeadlineExceeded) {
		ex.reason = "the client took nothing of the response for " + ex.st.clientWrite.String()
	}
}
