package listener

import (
	"net"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sockstap/sockstap/internal/sockstest"
)

// TestRecordDurations checks the record's handshake and dial durations:
// a relay has both, within the session's; a tap dials nothing.
func TestRecordDurations(t *testing.T) {
	t.Run("Relay", func(t *testing.T) {
		rec := &recorder{}
		w := newWorld(t, &Config{Dialer: &net.Dialer{}, OnRecord: rec.add})
		c, _, err := w.connect5(sockstest.Echo(t).String())
		require.NoError(t, err)
		require.NoError(t, c.CloseWrite())
		waitClosed(t, c)
		r := rec.wait(t, decided(DecisionRelay))
		assert.Positive(t, r.Handshake)
		assert.Positive(t, r.Dial)
		assert.Less(t, r.Handshake+r.Dial, r.Duration)
	})
	t.Run("Tap", func(t *testing.T) {
		rec := &recorder{}
		w := newWorld(t, &Config{OnRecord: rec.add})
		_, _, err := w.connect5("tapped.test:80")
		require.NoError(t, err)
		w.accept()
		r := rec.wait(t, decided(DecisionTap))
		assert.Positive(t, r.Handshake)
		assert.Zero(t, r.Dial)
	})
}
