package httpgate

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// newPseudonym returns the name a gateway with no Via name of its own uses:
// "sockstap-" and eight random hexadecimal digits, so that two gateways in
// a chain tell themselves apart, and a loop is found where there is one.
func newPseudonym() string {
	var b [4]byte
	rand.Read(b[:])
	return "sockstap-" + hex.EncodeToString(b[:])
}

// addVia appends the gateway's entry to h's Via field (RFC 9110, section
// 7.6.3): the protocol version the message was received with, and the
// gateway's name. The field's values go in a slice of their own: h's may
// be shared with a stored response's.
func (s *state) addVia(h http.Header, major, minor int) {
	entry := s.via11
	if major != 1 || minor != 1 {
		entry = viaVersion(major, minor) + " " + s.via
	}
	h["Via"] = append(slices.Clip(h["Via"]), entry)
}

func viaVersion(major, minor int) string {
	switch {
	case major == 1 && minor == 1:
		return "1.1"
	case major == 1 && minor == 0:
		return "1.0"
	case major == 2:
		return "2"
	}
	return strconv.Itoa(major) + "." + strconv.Itoa(minor)
}

// viaHas reports whether one of the Via entries in h was received by name:
// the message has been through this gateway already.
func viaHas(h http.Header, name string) bool {
	for _, v := range h["Via"] {
		for entry := range strings.SplitSeq(v, ",") {
			f := strings.Fields(entry)
			if len(f) >= 2 && strings.EqualFold(f[1], name) {
				return true
			}
		}
	}
	return false
}
