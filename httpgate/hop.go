package httpgate

import (
	"net/http"
	"net/textproto"
	"strings"
)

// hopHeaders are the fields that describe one connection, not the message:
// a proxy never passes them on (RFC 9110, section 7.6.1), whether or not
// Connection names them. Proxy-Authenticate and
// Proxy-Authentication-Info answer the proxy's own client, and
// Proxy-Connection is the old, unregistered spelling of Connection.
var hopHeaders = []string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authentication-Info",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// removeHopHeaders deletes from h the hop-by-hop fields and every field
// that a Connection field of h names. It returns the value of TE when it
// asks for trailers and nothing else, and the Upgrade field, both of which
// some requests pass on once the rest is gone.
func removeHopHeaders(h http.Header) (teTrailers bool, upgrade string) {
	if te, ok := h["Te"]; ok && len(te) == 1 && strings.EqualFold(textproto.TrimString(te[0]), "trailers") {
		teTrailers = true
	}
	upgrade = h.Get("Upgrade")
	for _, v := range h["Connection"] {
		for name := range strings.SplitSeq(v, ",") {
			name = textproto.TrimString(name)
			if name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		delete(h, name)
	}
	return teTrailers, upgrade
}

// upgradeType returns the protocol a request asks to switch to, when its
// Connection field has the upgrade option; "" otherwise.
func upgradeType(h http.Header) string {
	if !hasToken(h["Connection"], "upgrade") {
		return ""
	}
	return h.Get("Upgrade")
}

// hasToken reports whether one of the comma-separated lists in values has
// token, compared without regard to case.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(textproto.TrimString(t), token) {
				return true
			}
		}
	}
	return false
}
