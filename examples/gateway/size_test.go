package main

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64 // -1: an error
	}{
		{"0", 0},
		{"1024", 1024},
		{"64MiB", 64 << 20},
		{"64mib", 64 << 20},
		{"64 MiB", 64 << 20},
		{" 64M ", 64 << 20},
		{"512k", 512 << 10},
		{"512KiB", 512 << 10},
		{"1KB", 1000},
		{"1kb", 1000},
		{"2GB", 2e9},
		{"1GiB", 1 << 30},
		{"3T", 3 << 40},
		{"10b", 10},
		{"8388607TiB", 8388607 << 40},
		{"8388608TiB", -1}, // 2^63
		{"9223372036854775807", math.MaxInt64},
		{"9223372036854775808", -1},
		{"", -1},
		{"MiB", -1},
		{"-1", -1},
		{"+1", -1},
		{"1.5GiB", -1},
		{"1e9", -1},
		{"64 MiB B", -1},
		{"64PiB", -1},
		{"0x10", -1},
	} {
		got, err := parseSize(tc.in)
		if tc.want < 0 {
			assert.Error(t, err, "%q gave %d", tc.in, got)
			continue
		}
		require.NoError(t, err, "%q", tc.in)
		assert.Equal(t, tc.want, got, "%q", tc.in)
	}
}

// The flag writes a size as it would read it.
func TestByteSizeString(t *testing.T) {
	for in, want := range map[int64]string{
		0: "0", 1: "1", 1000: "1000", 1024: "1KiB", 64 << 20: "64MiB", 3 << 30: "3GiB",
		1<<40 + 1<<30: "1025GiB", 1<<20 + 1: "1048577",
	} {
		b := byteSize(in)
		assert.Equal(t, want, b.String())
		var back byteSize
		require.NoError(t, back.Set(b.String()))
		assert.Equal(t, b, back)
	}
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"0", "64MiB", "512k", "1GB", " 2 tib ", "9223372036854775807", "99999999999999999999", "1.5G", "-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("%q: negative size %d", s, n)
		}
		b := byteSize(n)
		back, err := parseSize(b.String())
		if err != nil || back != n {
			t.Fatalf("%q is %d, written %q, read back %d (%v)", s, n, b.String(), back, err)
		}
	})
}
