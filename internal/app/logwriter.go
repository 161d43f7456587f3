package app

import (
	"io"
	"sync"
	"time"
)

// LogFlushEvery bounds how long a log line may wait in a LogWriter's buffer, and so how
// much of the log a crash (kill -9) can lose. A log line is never a commitment to a
// client: a response is sent only after its write is committed in the store.
const LogFlushEvery = 100 * time.Millisecond

// logBufferSize is what a LogWriter holds before it writes without waiting for its timer:
// at a few hundred bytes a line, one write(2) for a few hundred requests.
const logBufferSize = 64 << 10

// LogWriter buffers the log (one line per request, SPEC §6) in front of w, so that a
// request does not cost a write(2) of its own. What it holds is written when the buffer
// would overflow, at most LogFlushEvery after the first line it holds, and by Flush and
// Close. Every Write is kept whole and in order: a log handler writes one line per call
// (as slog's handlers do), so a line is never split nor interleaved with another.
// After Close, writes go straight to w, so a line logged late in shutdown is not lost.
type LogWriter struct {
	mu      sync.Mutex
	w       io.Writer
	buf     []byte
	timer   *time.Timer // armed while buf holds something
	every   time.Duration
	closed  bool
	pending bool
}

// NewLogWriter buffers writes to w, holding none longer than every.
func NewLogWriter(w io.Writer, every time.Duration) *LogWriter {
	lw := &LogWriter{w: w, buf: make([]byte, 0, logBufferSize), every: every}
	lw.timer = time.AfterFunc(time.Hour, func() { _ = lw.Flush() })
	lw.timer.Stop()
	return lw
}

// Write keeps p whole: it is buffered, or written alone when it could not fit. Errors of
// the underlying writer are reported by the Write that meets them (slog ignores them).
func (lw *LogWriter) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if lw.closed {
		return lw.w.Write(p)
	}
	if len(lw.buf)+len(p) > cap(lw.buf) {
		if err := lw.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > cap(lw.buf) {
			return lw.w.Write(p)
		}
	}
	lw.buf = append(lw.buf, p...)
	if !lw.pending {
		lw.pending = true
		lw.timer.Reset(lw.every)
	}
	return len(p), nil
}

// Flush writes what the buffer holds.
func (lw *LogWriter) Flush() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	return lw.flushLocked()
}

func (lw *LogWriter) flushLocked() error {
	if lw.pending {
		lw.pending = false
		lw.timer.Stop()
	}
	if len(lw.buf) == 0 {
		return nil
	}
	_, err := lw.w.Write(lw.buf)
	lw.buf = lw.buf[:0]
	return err
}

// Close flushes the buffer and makes later writes unbuffered. It does not close w.
func (lw *LogWriter) Close() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	err := lw.flushLocked()
	lw.closed = true
	return err
}
