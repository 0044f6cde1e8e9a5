package httpgate

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/sockstap/sockstap/internal/deadline"
	"github.com/sockstap/sockstap/listener"
	"github.com/sockstap/sockstap/socks5"
)

// An exchange is one request's way through the gateway.
type exchange struct {
	g       *Gateway
	st      *state
	w       *countingWriter // &cw
	cw      countingWriter
	r       *http.Request
	fc      *framedConn // the client's connection, when a Server serves it
	start   time.Time
	arrival Arrival
	req     *listener.Request // the client and destination, as the policy sees them
	proxied listener.Request  // what req points to for a client of the HTTP proxy
	ctx     context.Context   // see context; nil until it is first asked for
	target  string            // host:port the request goes to
	url     string            // the absolute URL, for the record and the cache
	body    *countingBody
	// bodyWatch bounds the waits for body, when there is one.
	bodyWatch *stallBody

	// For the record.
	up, down int64 // a tunnel's bytes
	cache    CacheResult
	reason   string
	err      error
	closed   bool // the connection was taken over (hijacked)

	tunnels *tunnels // where the exchange's tunnel is counted, if it became one

	rc              *http.ResponseController // the client's; see controller
	connBound       bool                     // fc bounds each write to the client itself (see writeBound)
	armed           time.Time                // when armWrite last set the client's write deadline
	noWriteDeadline bool                     // the client's writer cannot set one
}

// release ends what the exchange holds once its record is written.
func (ex *exchange) release() {
	if ex.tunnels != nil {
		ex.tunnels.end()
	}
}

// serve decides what the request is and serves it.
func (ex *exchange) serve() {
	r := ex.r
	if fc := ex.fc; fc != nil && !fc.Following() {
		// The connection may have become a tunnel, or not: it is closed
		// after this response unless the request takes it over.
		ex.w.Header().Set("Connection", "close")
	}
	if viaHas(r.Header, ex.st.via) {
		ex.fail(http.StatusLoopDetected, "loop: the request has been through this gateway already", nil)
		return
	}
	if ex.req == nil {
		user, ok := ex.authenticate()
		if !ok {
			return
		}
		if !ex.destination() {
			return
		}
		ex.req = ex.clientRequest(user)
		if err := ex.st.policy(ex.context(), ex.req); err != nil {
			ex.deny(err)
			return
		}
	} else if !ex.tappedDestination() {
		return
	}
	if f := ex.g.Filter; f != nil {
		if err := f(r); err != nil {
			ex.fail(http.StatusForbidden, err.Error(), nil)
			return
		}
	}
	switch {
	case r.Method == http.MethodConnect && ex.arrival == ArrivalConnect:
		ex.connect()
	case r.Method == http.MethodConnect || upgradeType(r.Header) != "":
		ex.upgrade()
	default:
		ex.forward()
	}
}

type framedConnKey struct{}

// context returns the context of what the gateway does on the client's
// behalf (the policy's check, dials, the round trip): the request's,
// carrying the client's *listener.Request and how it arrived.
func (ex *exchange) context() context.Context {
	if ex.ctx == nil {
		ctx := ex.r.Context()
		if !ex.arrival.tapped() {
			// A tapped stream's context carries its request already
			// (connContext): that of any other request does not.
			ctx = listener.NewContext(ctx, ex.req)
		}
		ex.ctx = context.WithValue(ctx, arrivalKey{}, ex.arrival)
	}
	return ex.ctx
}

type arrivalKey struct{}

// ArrivalFromContext returns how the request whose work ctx is for arrived
// at the gateway, when ctx is one the gateway gave its Policy, its Dialer
// or its Transport. The *listener.Request of a client that came as an
// HTTP proxy client ([ArrivalProxy], [ArrivalConnect]) has Version 0,
// which its VersionString spells "socks0": a policy or a dialer that logs
// how clients came should log the arrival instead, as the gateway's own
// records do.
func ArrivalFromContext(ctx context.Context) (Arrival, bool) {
	a, ok := ctx.Value(arrivalKey{}).(Arrival)
	return a, ok
}

// authenticate checks the client's Proxy-Authorization, when the gateway
// asks for one, and answers 407 when it fails. It returns the user.
func (ex *exchange) authenticate() (string, bool) {
	check := ex.g.ProxyAuth
	if check == nil {
		return "", true
	}
	user, pass, ok := parseBasic(ex.r.Header.Get("Proxy-Authorization"))
	if ok && check(ex.r.Context(), user, pass) {
		return user, true
	}
	h := ex.w.Header()
	h.Set("Proxy-Authenticate", `Basic realm="`+ex.st.realm+`", charset="UTF-8"`)
	reason := "proxy authentication required"
	if ok {
		reason = "proxy authentication failed"
	}
	ex.fail(http.StatusProxyAuthRequired, reason, nil)
	return "", false
}

// parseBasic reads the credentials of the Basic scheme (RFC 7617).
func parseBasic(v string) (user, pass string, ok bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(b), ":")
}

// destination finds where a forward-proxy request or a CONNECT goes.
func (ex *exchange) destination() bool {
	r := ex.r
	if r.Method == http.MethodConnect {
		host, port, err := net.SplitHostPort(r.Host)
		if err != nil || host == "" || port == "" {
			ex.fail(http.StatusBadRequest, "CONNECT needs a host and a port", nil)
			return false
		}
		ex.target = r.Host
		ex.url = r.Host
		return true
	}
	scheme := strings.ToLower(r.URL.Scheme)
	if scheme != "http" && scheme != "https" {
		ex.fail(http.StatusBadRequest, "unsupported URL scheme "+r.URL.Scheme, nil)
		return false
	}
	ex.target = hostPort(strings.ToLower(r.URL.Host), scheme)
	u := *r.URL
	u.Scheme, u.Host = scheme, strings.ToLower(r.URL.Host)
	ex.url = u.String()
	return true
}

// tappedDestination sets the destination of a request on a tapped stream:
// the SOCKS target, whatever the Host header says.
func (ex *exchange) tappedDestination() bool {
	ex.target = ex.req.Target.String()
	host := ex.r.Host
	if host == "" {
		host = ex.target
	}
	ex.url = "http://" + host + ex.r.URL.RequestURI()
	if ex.r.Method == http.MethodConnect {
		ex.url = ex.r.Host
	}
	return true
}

// clientRequest is the policy's view of a forward-proxy client.
func (ex *exchange) clientRequest(user string) *listener.Request {
	target, _ := socks5.ParseAddr(ex.target)
	req := &ex.proxied
	*req = listener.Request{
		Command: socks5.CmdConnect,
		Target:  target,
		User:    user,
		Client:  ex.remoteAddr(),
	}
	if user != "" {
		req.Authenticated = true
		req.Method = socks5.AuthUserPass
	}
	if ex.fc != nil {
		req.Local = ex.fc.LocalAddr() // what the server puts in the context
	} else if a, ok := ex.r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		req.Local = a
	}
	return req
}

// remoteAddr is the client's address as a net.Addr: the connection's,
// whose String the server made r.RemoteAddr of, or else r.RemoteAddr
// parsed.
func (ex *exchange) remoteAddr() net.Addr {
	if ex.fc != nil {
		return ex.fc.RemoteAddr()
	}
	ap, err := netip.ParseAddrPort(ex.r.RemoteAddr)
	if err != nil {
		return nil
	}
	return net.TCPAddrFromAddrPort(ap)
}

// deny answers a policy's refusal when the request arrived: 403 with its
// reason.
func (ex *exchange) deny(err error) {
	ex.fail(http.StatusForbidden, denialReason(err), nil)
}

// denialReason is what the client and the record are told of a policy's
// refusal.
func denialReason(err error) string {
	if d, ok := errors.AsType[*listener.Denial](err); ok {
		return "denied: " + d.Reason
	}
	return err.Error()
}

// fail answers the client with code and reason, for the gateway's own
// refusals and failures. The reason goes in the body and, for errors of
// upstream, in a Proxy-Status field (RFC 9209).
func (ex *exchange) fail(code int, reason string, cause error) {
	ex.reason, ex.err = reason, cause
	h := ex.w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	if code == http.StatusBadGateway || code == http.StatusGatewayTimeout {
		h.Set("Proxy-Status", ex.st.via+`; error=`+proxyStatusError(code, cause)+`; details="`+quoteDetails(reason)+`"`)
	}
	ex.armWrite()
	ex.w.WriteHeader(code)
	fmt.Fprintf(ex.w, "%d %s: %s\n", code, http.StatusText(code), reason)
}

// upstreamError answers a failure to reach or hear from upstream: 504 when
// it timed out, 403 when the policy refused the address dialed, 502
// otherwise.
func (ex *exchange) upstreamError(err error) {
	if denial, ok := deniedAtDial(err); ok {
		reason := denialReason(denial)
		ex.w.Header().Set("Proxy-Status", ex.st.via+`; error=destination_ip_prohibited; details="`+quoteDetails(reason)+`"`)
		ex.fail(http.StatusForbidden, reason, err)
		return
	}
	if se := ex.bodyWatch.stall(); se != nil {
		ex.w.Header().Set("Connection", "close")
		ex.fail(http.StatusRequestTimeout, se.Error(), se)
		return
	}
	code := http.StatusBadGateway
	if deadline.IsTimeout(err) {
		code = http.StatusGatewayTimeout
	}
	ex.fail(code, err.Error(), err)
}

// proxyStatusError names an error of RFC 9209's registry.
func proxyStatusError(code int, err error) string {
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case code == http.StatusGatewayTimeout && errors.As(err, &opErr) && opErr.Op == "dial":
		return "connection_timeout"
	case code == http.StatusGatewayTimeout:
		return "http_response_timeout"
	case errors.As(err, &dnsErr):
		return "dns_error"
	case errors.As(err, &opErr) && opErr.Op == "dial":
		return "connection_refused"
	}
	return "destination_unavailable"
}

func quoteDetails(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", " ", "\n", " ").Replace(s)
}

// finish writes the exchange's record.
func (ex *exchange) finish() {
	rec := Record{
		Arrival:   ex.arrival,
		Method:    ex.r.Method,
		URL:       ex.url,
		Target:    ex.target,
		Status:    ex.w.status,
		Cache:     ex.cache,
		BytesUp:   ex.up,
		BytesDown: ex.w.n + ex.down,
		Start:     ex.start,
		Duration:  time.Since(ex.start),
		Reason:    ex.reason,
		Err:       ex.err,
	}
	if ex.req != nil {
		rec.User = ex.req.User
		rec.Client = ex.req.Client
		if ex.arrival.tapped() {
			rec.SOCKS = ex.req
		}
	}
	if rec.Client == nil {
		rec.Client = ex.remoteAddr()
	}
	if ex.body != nil {
		rec.BytesUp += ex.body.n.Load()
	}
	rec.log(ex.st.logger)
	if ex.g.OnRecord != nil {
		r := rec // on the heap only when someone takes it
		ex.g.OnRecord(&r)
	}
}
