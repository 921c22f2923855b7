package cli

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints one self-overwriting line on a terminal: bytes read,
// bytes stored and the rate. It is throttled to a few updates per second.
type progress struct {
	mu    sync.Mutex
	w     io.Writer
	now   func() time.Time
	start map[string]time.Time
	last  time.Time
}

func newProgress(w io.Writer, now func() time.Time) *progress {
	return &progress{w: w, now: now, start: map[string]time.Time{}}
}

func (p *progress) update(label string, plain, stored int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.now()
	st, ok := p.start[label]
	if !ok {
		p.start[label] = t
		st = t
	}
	if t.Sub(p.last) < 250*time.Millisecond {
		return
	}
	p.last = t
	rate := ""
	if el := t.Sub(st).Seconds(); el > 0.5 {
		rate = fmt.Sprintf(", %s/s", humanBytes(int64(float64(max(plain, stored))/el)))
	}
	if plain > 0 {
		fmt.Fprintf(p.w, "\r\033[K%s: %s read, %s stored%s", label, humanBytes(plain), humanBytes(stored), rate)
	} else {
		fmt.Fprintf(p.w, "\r\033[K%s: %s%s", label, humanBytes(stored), rate)
	}
}

// done clears the progress line.
func (p *progress) done() {
	fmt.Fprint(p.w, "\r\033[K")
}

// humanBytes prints n with a binary unit: 1.5 MiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
