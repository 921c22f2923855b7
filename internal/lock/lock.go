package lock

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// Clock is the time source. The daemon passes its own (a fake in tests).
type Clock interface {
	Now() time.Time
	// At returns a channel that receives once the clock reaches t (at once
	// if it has). An absolute time, unlike time.After's duration, leaves no
	// gap between reading the clock and arming the timer.
	At(t time.Time) <-chan time.Time
}

// DefaultTTL is used when Options.TTL is zero.
const DefaultTTL = 5 * time.Minute

// Options configure a lock holder.
type Options struct {
	Clock Clock         // required
	TTL   time.Duration // how long a lock lasts without renewal; DefaultTTL if 0
	// Host and PID identify the holder to others, for messages.
	Host string
	PID  int
	// Purpose says what the holder does ("backup", "prune"), for messages.
	Purpose string
	Logger  *slog.Logger // nil discards
	// Dead, when set, reports holders known to be gone (a process of this
	// host that no longer exists, see [DeadOnHost]); their lock is taken
	// over at once instead of after it expires.
	Dead func(Owner) bool
}

// DeadOnHost returns a Dead function for Options: a holder on host whose
// process no longer exists is dead. A reused PID makes a dead holder look
// alive, which only means waiting for the lock to expire.
func DeadOnHost(host string) func(Owner) bool {
	return func(o Owner) bool {
		if o.Host != host || o.PID <= 0 {
			return false
		}
		return errors.Is(syscall.Kill(o.PID, 0), syscall.ESRCH)
	}
}

// Owner is the content of a lock generation.
type Owner struct {
	Host     string    `json:"host"`
	PID      int       `json:"pid"`
	ID       string    `json:"id"`
	Purpose  string    `json:"purpose,omitempty"`
	Acquired time.Time `json:"acquired"`
	Expires  time.Time `json:"expires"`
	Released bool      `json:"released,omitempty"`
	// Write is random per generation: it tells one's own earlier write
	// (a renewal whose reply was lost) from the one being made.
	Write string `json:"write"`
}

func (o Owner) String() string {
	s := fmt.Sprintf("%s (pid %d", o.Host, o.PID)
	if o.Purpose != "" {
		s += ", " + o.Purpose
	}
	return s + ")"
}

var (
	// ErrHeld is matched (errors.Is) by a *HeldError.
	ErrHeld = errors.New("lock is held by another process")
	// ErrLost means someone else took the lock over: its holder must stop
	// and must not commit what it was doing.
	ErrLost = errors.New("lock lost to another process")
)

// HeldError is returned by [Acquire] when someone else holds the lock.
type HeldError struct {
	Name  string
	Owner Owner
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is locked by %s since %s until %s, unless renewed", e.Name, e.Owner,
		e.Owner.Acquired.UTC().Format(time.RFC3339), e.Owner.Expires.UTC().Format(time.RFC3339))
}

func (e *HeldError) Is(target error) bool { return target == ErrHeld }

// Lock is a held lock. Its methods are safe for concurrent use.
type Lock struct {
	st   storage.Storage
	name string
	opts Options

	mu    sync.Mutex
	owner Owner
	gen   uint64
	lost  bool
}

const (
	keyDir       = "locks/"
	maxLockBytes = 64 << 10
	// attempts bounds how often Acquire looks again after losing a race.
	attempts = 8
)

func prefix(name string) string        { return keyDir + name + ".lock." }
func key(name string, g uint64) string { return fmt.Sprintf("%s%020d", prefix(name), g) }

// Acquire takes the lock name in st, or fails with a *HeldError when another
// holder's lock has not expired. An expired or released lock is taken over.
func Acquire(ctx context.Context, st storage.Storage, name string, opts Options) (*Lock, error) {
	if opts.Clock == nil {
		return nil, errors.New("lock: no clock")
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	id, err := newID()
	if err != nil {
		return nil, err
	}
	l := &Lock{st: st, name: name, opts: opts,
		owner: Owner{Host: opts.Host, PID: opts.PID, ID: id, Purpose: opts.Purpose}}
	for range attempts {
		gens, err := l.list(ctx)
		if err != nil {
			return nil, err
		}
		var cur uint64
		if len(gens) > 0 {
			cur = gens[len(gens)-1]
			o, err := l.read(ctx, cur)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				continue // superseded while we looked
			case err != nil:
				return nil, err
			case o.ID == l.owner.ID && !o.Released:
				// Our own put, reported failed but stored: we hold it.
				l.owner, l.gen = o, cur
				l.cleanup(ctx, gens)
				return l, nil
			case !o.Released && l.opts.Dead != nil && l.opts.Dead(o):
				l.log().Warn("taking over the lock of a process that is gone", "key", key(name, cur), "holder", o.String())
			case !o.Released && l.opts.Clock.Now().Before(o.Expires):
				return nil, &HeldError{Name: name, Owner: o}
			case !o.Released:
				l.log().Warn("taking over expired lock", "key", key(name, cur), "holder", o.String(),
					"expired", o.Expires.UTC().Format(time.RFC3339))
			}
		}
		now := l.opts.Clock.Now()
		o := l.owner
		o.Acquired, o.Expires = now, now.Add(opts.TTL)
		won, err := l.put(ctx, cur+1, o)
		if err != nil {
			return nil, err
		}
		if !won {
			continue
		}
		l.owner, l.gen = o, cur+1
		l.cleanup(ctx, gens)
		return l, nil
	}
	return nil, fmt.Errorf("acquire lock %s in %s: too much contention, try again", name, st.Name())
}

// put writes generation g and reports whether it is now the highest, held by
// us. false means another process got there first.
func (l *Lock) put(ctx context.Context, g uint64, o Owner) (bool, error) {
	var err error
	if o.Write, err = newID(); err != nil {
		return false, err
	}
	b, err := json.Marshal(o)
	if err != nil {
		return false, err
	}
	k := key(l.name, g)
	if _, err := l.st.Put(ctx, k, bytes.NewReader(b)); err != nil {
		// Put may have stored the object and still failed (a timeout after
		// the write): then the generation is this very write.
		got, rerr := l.read(ctx, g)
		switch {
		case rerr == nil && got.ID == o.ID && got.Write == o.Write:
		case errors.Is(err, fs.ErrExist):
			return false, nil
		default:
			// Others may already have moved past g (and deleted our write
			// before the storage could confirm it): that is a lost race.
			if gens, lerr := l.list(ctx); lerr == nil && len(gens) > 0 && gens[len(gens)-1] > g {
				return false, nil
			}
			return false, fmt.Errorf("write lock %s to %s: %w", k, l.st.Name(), err)
		}
	}
	gens, err := l.list(ctx)
	if err != nil {
		return false, err
	}
	if len(gens) > 0 && gens[len(gens)-1] > g {
		// We recreated a generation others had already passed and
		// deleted; ours is stale. It is below the highest, so removing it
		// is safe.
		_ = l.st.Delete(ctx, k)
		return false, nil
	}
	return true, nil
}

// Renew extends the lock by its TTL from now. It returns an error wrapping
// ErrLost when another process has taken the lock over; other errors
// (storage unreachable) leave the lock held until its current expiry.
func (l *Lock) Renew(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost {
		return fmt.Errorf("renew lock %s: %w", l.name, ErrLost)
	}
	now := l.opts.Clock.Now()
	o := l.owner
	o.Expires = now.Add(l.opts.TTL)
	old := l.gen
	won, err := l.next(ctx, &o)
	if err != nil {
		return fmt.Errorf("renew lock %s: %w", l.name, err)
	}
	if !won {
		l.lost = true
		return fmt.Errorf("renew lock %s: %w", l.name, ErrLost)
	}
	l.owner = o
	for g := old; g < l.gen; g++ {
		_ = l.st.Delete(ctx, key(l.name, g))
	}
	return nil
}

// next writes o as the generation after ours and makes it ours. A
// generation in the way that is our own earlier write (stored although its
// put reported an error) is adopted and passed. false means another
// process took the lock.
func (l *Lock) next(ctx context.Context, o *Owner) (bool, error) {
	for range attempts {
		won, err := l.put(ctx, l.gen+1, *o)
		if err != nil || won {
			if won {
				l.gen++
			}
			return won, err
		}
		got, err := l.read(ctx, l.gen+1)
		if err != nil || got.ID != o.ID {
			return false, nil
		}
		l.gen++
	}
	return false, nil
}

// Release gives the lock up. Releasing a lost lock does nothing and returns
// nil.
func (l *Lock) Release(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost {
		return nil
	}
	l.lost = true // no more use either way
	o := l.owner
	o.Released, o.Expires = true, l.opts.Clock.Now()
	old := l.gen
	won, err := l.next(ctx, &o)
	if err != nil {
		return fmt.Errorf("release lock %s: %w", l.name, err)
	}
	if won {
		for g := old; g < l.gen; g++ {
			_ = l.st.Delete(ctx, key(l.name, g))
		}
	}
	return nil
}

// Owner returns what the lock says about its holder (expiry included).
func (l *Lock) Owner() Owner {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.owner
}

// Name is the lock's name.
func (l *Lock) Name() string { return l.name }

// Keep renews l every TTL/4 until ctx ends or stop is called. The returned
// context is cancelled, with cause ErrLost, when the lock is taken over or
// has not been renewed for three quarters of its TTL (storage unreachable):
// work done under the lock must run under that context. stop ends the
// renewals and waits for them; it does not release the lock.
func (l *Lock) Keep(ctx context.Context) (held context.Context, stop func()) {
	held, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	quit := make(chan struct{})
	ttl := l.opts.TTL
	go func() {
		defer close(done)
		for {
			select {
			case <-held.Done():
				return
			case <-quit:
				return
			case <-l.opts.Clock.At(l.opts.Clock.Now().Add(ttl / 4)):
			}
			rctx, rcancel := context.WithTimeout(held, ttl/4)
			err := l.Renew(rctx)
			rcancel()
			switch {
			case err == nil:
				continue
			case errors.Is(err, ErrLost):
				l.log().Error("lock taken over by another process; stopping", "key", l.name, "err", err)
				cancel(err)
				return
			case held.Err() != nil:
				return
			}
			deadline := l.Owner().Expires.Add(-ttl / 4)
			if !l.opts.Clock.Now().Before(deadline) {
				l.mu.Lock()
				l.lost = true
				l.mu.Unlock()
				err = fmt.Errorf("lock %s not renewed in time (%w): %w", l.name, err, ErrLost)
				l.log().Error("cannot renew lock; stopping", "key", l.name, "err", err)
				cancel(err)
				return
			}
			l.log().Warn("cannot renew lock; will retry", "key", l.name, "err", err)
		}
	}()
	var once sync.Once
	return held, func() {
		once.Do(func() { close(quit) })
		<-done
	}
}

// Inspect returns the current holder of lock name in st; ok is false when
// nobody holds it (never taken, released or expired at now).
func Inspect(ctx context.Context, st storage.Storage, name string, now time.Time) (o Owner, ok bool, err error) {
	l := &Lock{st: st, name: name}
	for range attempts {
		gens, err := l.list(ctx)
		if err != nil || len(gens) == 0 {
			return Owner{}, false, err
		}
		o, err := l.read(ctx, gens[len(gens)-1])
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return Owner{}, false, err
		}
		return o, !o.Released && now.Before(o.Expires), nil
	}
	return Owner{}, false, fmt.Errorf("inspect lock %s: it keeps changing", name)
}

func (l *Lock) list(ctx context.Context) ([]uint64, error) {
	var gens []uint64
	p := prefix(l.name)
	err := l.st.List(ctx, p, func(o storage.Object) error {
		if g, err := strconv.ParseUint(strings.TrimPrefix(o.Key, p), 10, 64); err == nil {
			gens = append(gens, g)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list lock %s in %s: %w", l.name, l.st.Name(), err)
	}
	slices.Sort(gens)
	return gens, nil
}

func (l *Lock) read(ctx context.Context, g uint64) (Owner, error) {
	k := key(l.name, g)
	rc, err := l.st.Open(ctx, k)
	if err != nil {
		return Owner{}, fmt.Errorf("read lock %s: %w", k, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxLockBytes))
	if err != nil {
		return Owner{}, fmt.Errorf("read lock %s: %w", k, err)
	}
	var o Owner
	if err := json.Unmarshal(b, &o); err != nil {
		return Owner{}, fmt.Errorf("read lock %s: %w (delete it if no lifeboat is running)", k, err)
	}
	return o, nil
}

// cleanup deletes generations below ours, left by holders that crashed
// between writing a generation and deleting the previous one.
func (l *Lock) cleanup(ctx context.Context, gens []uint64) {
	for _, g := range gens {
		if g < l.gen {
			_ = l.st.Delete(ctx, key(l.name, g))
		}
	}
}

func (l *Lock) log() *slog.Logger {
	if l.opts.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return l.opts.Logger
}

func newID() (string, error) {
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("lock id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
