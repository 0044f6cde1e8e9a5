package main

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteSize is a number of bytes, as a flag: "64MiB", "512k", "1GB", "0".
type byteSize int64

// sizeUnits are the units parseSize reads, in lower case: the binary
// prefixes (KiB, and K alone, as Squid and nginx read it) and the decimal
// ones (KB).
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
	"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
	"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
	"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
}

// parseSize reads a size: a whole number of bytes, or of a unit (KiB,
// MiB, GiB, TiB and K, M, G, T are powers of 1024; KB, MB, GB, TB of
// 1000), the case of the unit ignored, with or without a space before
// it. It refuses negative sizes, fractions and sizes past 2^63-1 bytes.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: not a whole number of bytes, KiB, MiB, GiB or TiB", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, errTooLarge)
	}
	unit, ok := sizeUnits[strings.ToLower(strings.TrimSpace(t[i:]))]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (B, KiB, MiB, GiB, TiB; K, M, G, T; KB, MB, GB, TB)", s, strings.TrimSpace(t[i:]))
	}
	if n > math.MaxInt64/unit {
		return 0, fmt.Errorf("size %q: %w", s, errTooLarge)
	}
	return n * unit, nil
}

var errTooLarge = errors.New("too large")

// Set reads the flag's value with parseSize.
func (b *byteSize) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

// String writes the size in the largest binary unit that divides it.
func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}
