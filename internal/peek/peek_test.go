package peek

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func pipe(t *testing.T) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() {
		a.Close()
		b.Close()
	})
	a.SetDeadline(time.Now().Add(10 * time.Second))
	b.SetDeadline(time.Now().Add(10 * time.Second))
	return a, b
}

func TestReadGivesBackFirst(t *testing.T) {
	a, b := pipe(t)
	c := NewConn(a, []byte("ahead|"))
	go func() {
		b.Write([]byte("after"))
		b.Close()
	}()
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, "ahead|after", string(got))
}

func TestFromReader(t *testing.T) {
	a, b := pipe(t)
	go func() {
		b.Write([]byte("0123456789"))
		b.Close()
	}()
	br := bufio.NewReaderSize(a, 16)
	head, err := br.Peek(3)
	require.NoError(t, err)
	require.Equal(t, "012", string(head))
	c := FromReader(a, br)
	got, err := io.ReadAll(c)
	require.NoError(t, err)
	assert.Equal(t, "0123456789", string(got), "nothing the reader buffered is lost")
}

func TestUnwrap(t *testing.T) {
	a, _ := pipe(t)
	c := NewConn(a, []byte("kept"))
	buf, raw := c.Unwrap()
	assert.Equal(t, "kept", string(buf))
	assert.Same(t, a, raw)
	assert.Nil(t, c.Buffered(), "handed over, not kept")
}

func TestWriteToAndReadFrom(t *testing.T) {
	a, b := pipe(t)
	c := NewConn(a, []byte("first "))
	go func() {
		b.Write([]byte("second"))
		b.Close()
	}()
	var out bytes.Buffer
	n, err := c.WriteTo(&out)
	require.NoError(t, err)
	assert.Equal(t, int64(len("first second")), n)
	assert.Equal(t, "first second", out.String())

	x, y := pipe(t)
	cx := NewConn(x, nil)
	go func() {
		cx.ReadFrom(bytes.NewReader([]byte("copied in")))
		cx.Close()
	}()
	got, err := io.ReadAll(y)
	require.NoError(t, err)
	assert.Equal(t, "copied in", string(got))
}

func TestHalfClose(t *testing.T) {
	a, _ := pipe(t)
	c := NewConn(a, nil)
	assert.True(t, errors.Is(c.CloseWrite(), errors.ErrUnsupported), "a pipe cannot half-close")
	assert.True(t, errors.Is(c.CloseRead(), errors.ErrUnsupported))

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	require.NoError(t, err)
	defer client.Close()
	server, err := ln.Accept()
	require.NoError(t, err)
	defer server.Close()
	tc := NewConn(server, nil)
	require.NoError(t, tc.CloseWrite())
	client.SetDeadline(time.Now().Add(10 * time.Second))
	n, err := client.Read(make([]byte, 1))
	assert.Zero(t, n)
	assert.ErrorIs(t, err, io.EOF, "the TCP half-close went through")
	assert.Same(t, server, tc.NetConn())
}
