package lock

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
)

// fakeClock is a manual clock: At fires when the clock is moved past its time.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) At(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(c.now) {
		ch <- c.now
		return ch
	}
	c.waiters = append(c.waiters, waiter{t, ch})
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if w.at.After(c.now) {
			kept = append(kept, w)
			continue
		}
		w.ch <- c.now
	}
	c.waiters = kept
}

func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.waiters)
}

// newStore opens the folder dir as a separate Store, as another process or
// host sharing the storage would.
func newStore(t *testing.T, dir string) *local.Store {
	t.Helper()
	st, err := local.New("shared", dir)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func opts(c Clock, host string) Options {
	return Options{Clock: c, TTL: time.Minute, Host: host, PID: 42, Purpose: "backup"}
}

// lockKeys lists the generation objects of lock name.
func lockKeys(t *testing.T, st storage.Storage, name string) []string {
	t.Helper()
	var keys []string
	if err := st.List(t.Context(), prefix(name), func(o storage.Object) error {
		keys = append(keys, o.Key)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestAcquireHeldRelease(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	a, b := newStore(t, dir), newStore(t, dir)
	ctx := t.Context()

	la, err := Acquire(ctx, a, "db", opts(clk, "host-a"))
	if err != nil {
		t.Fatal(err)
	}
	if o := la.Owner(); o.Host != "host-a" || o.PID != 42 || o.ID == "" || !o.Expires.Equal(clk.Now().Add(time.Minute)) {
		t.Fatalf("owner %+v", o)
	}
	_, err = Acquire(ctx, b, "db", opts(clk, "host-b"))
	var he *HeldError
	if !errors.As(err, &he) || !errors.Is(err, ErrHeld) || he.Owner.Host != "host-a" {
		t.Fatalf("second Acquire: %v, want a HeldError naming host-a", err)
	}
	if !strings.Contains(err.Error(), "host-a (pid 42, backup)") {
		t.Fatalf("message does not say who holds it: %v", err)
	}
	// Another name is independent.
	if _, err := Acquire(ctx, b, "files", opts(clk, "host-b")); err != nil {
		t.Fatalf("other lock: %v", err)
	}

	clk.Advance(50 * time.Second)
	if err := la.Renew(ctx); err != nil {
		t.Fatal(err)
	}
	clk.Advance(50 * time.Second) // past the first expiry, not the renewed one
	if _, err := Acquire(ctx, b, "db", opts(clk, "host-b")); !errors.Is(err, ErrHeld) {
		t.Fatalf("Acquire after renewal: %v, want ErrHeld", err)
	}
	if o, ok, err := Inspect(ctx, b, "db", clk.Now()); err != nil || !ok || o.Host != "host-a" {
		t.Fatalf("Inspect: %+v %v %v", o, ok, err)
	}
	if keys := lockKeys(t, a, "db"); len(keys) != 1 || !strings.HasSuffix(keys[0], "00000000000000000002") {
		t.Fatalf("after renewal the lock objects are %v, want only generation 2", keys)
	}

	if err := la.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := Inspect(ctx, b, "db", clk.Now()); ok {
		t.Fatal("Inspect says held after release")
	}
	lb, err := Acquire(ctx, b, "db", opts(clk, "host-b"))
	if err != nil {
		t.Fatalf("Acquire after release: %v", err)
	}
	if keys := lockKeys(t, a, "db"); len(keys) != 1 || !strings.HasSuffix(keys[0], "00000000000000000004") {
		t.Fatalf("lock objects %v, want only generation 4", keys)
	}
	if err := la.Renew(ctx); !errors.Is(err, ErrLost) {
		t.Fatalf("Renew after Release: %v", err)
	}
	if err := lb.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestStaleTakeover: a holder that stopped renewing (crashed, frozen) is
// taken over once its lock expires, and learns it lost the lock when it
// wakes up; its late release does not disturb the new holder.
func TestStaleTakeover(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	ctx := t.Context()
	la, err := Acquire(ctx, newStore(t, dir), "db", opts(clk, "host-a"))
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(59 * time.Second)
	if _, err := Acquire(ctx, newStore(t, dir), "db", opts(clk, "host-b")); !errors.Is(err, ErrHeld) {
		t.Fatalf("before expiry: %v", err)
	}
	clk.Advance(2 * time.Second)
	lb, err := Acquire(ctx, newStore(t, dir), "db", opts(clk, "host-b"))
	if err != nil {
		t.Fatalf("stale lock not taken over: %v", err)
	}
	if err := la.Renew(ctx); !errors.Is(err, ErrLost) {
		t.Fatalf("old holder's Renew: %v, want ErrLost", err)
	}
	if err := la.Release(ctx); err != nil {
		t.Fatalf("old holder's Release: %v", err)
	}
	_, err = Acquire(ctx, newStore(t, dir), "db", opts(clk, "host-c"))
	var he *HeldError
	if !errors.As(err, &he) || he.Owner.Host != "host-b" {
		t.Fatalf("third process: %v, want held by host-b", err)
	}
	if err := lb.Renew(ctx); err != nil {
		t.Fatalf("new holder's Renew: %v", err)
	}
}

// TestContention: many processes (separate Store values on one folder) race
// for one lock, repeatedly; never two hold it at once.
func TestContention(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock() // never advanced: only release frees the lock
	var active, maxActive, wins atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		st := newStore(t, dir)
		wg.Go(func() {
			for range 30 {
				l, err := Acquire(t.Context(), st, "db", opts(clk, fmt.Sprint("host-", i)))
				if errors.Is(err, ErrHeld) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				n := active.Add(1)
				if n > maxActive.Load() {
					maxActive.Store(n)
				}
				wins.Add(1)
				time.Sleep(50 * time.Microsecond) // widen the window a second holder would hit
				active.Add(-1)
				if err := l.Release(t.Context()); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if maxActive.Load() != 1 || wins.Load() < 1 {
		t.Fatalf("max holders at once %d (want 1), acquisitions %d", maxActive.Load(), wins.Load())
	}
}

// TestExpiredRace: several processes find the same expired lock at once;
// exactly one takes it over.
func TestExpiredRace(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	if _, err := Acquire(t.Context(), newStore(t, dir), "db", opts(clk, "crashed")); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)
	for round := range 5 {
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range 6 {
			st := newStore(t, dir)
			wg.Go(func() {
				<-start
				_, err := Acquire(t.Context(), st, "db", opts(clk, fmt.Sprint("host-", i)))
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, ErrHeld):
					t.Error(err)
				}
			})
		}
		close(start)
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("round %d: %d processes took over the expired lock, want 1", round, wins.Load())
		}
		clk.Advance(2 * time.Minute) // the winner "crashes" too
	}
}

// pausing delays one Put until released, to replay a process that read the
// lock, stalled, and wrote after others had moved on.
type pausing struct {
	storage.Storage
	armed   atomic.Bool
	reached chan struct{}
	resume  chan struct{}
}

func (p *pausing) Put(ctx context.Context, key string, r io.Reader) (storage.Object, error) {
	if p.armed.CompareAndSwap(true, false) {
		close(p.reached)
		<-p.resume
	}
	return p.Storage.Put(ctx, key, r)
}

func TestStalledWriterCannotResurrect(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	ctx := t.Context()
	if _, err := Acquire(ctx, newStore(t, dir), "db", opts(clk, "crashed")); err != nil { // generation 1
		t.Fatal(err)
	}
	clk.Advance(2 * time.Minute)

	slow := &pausing{Storage: newStore(t, dir), reached: make(chan struct{}), resume: make(chan struct{})}
	slow.armed.Store(true)
	errc := make(chan error, 1)
	go func() {
		_, err := Acquire(ctx, slow, "db", opts(clk, "slow")) // read gen 1, stalls before writing gen 2
		errc <- err
	}()
	<-slow.reached

	la, err := Acquire(ctx, newStore(t, dir), "db", opts(clk, "host-a")) // gen 2
	if err != nil {
		t.Fatal(err)
	}
	if err := la.Renew(ctx); err != nil { // gen 3; gen 2 deleted
		t.Fatal(err)
	}
	close(slow.resume) // the stalled put recreates gen 2
	if err := <-errc; !errors.Is(err, ErrHeld) {
		t.Fatalf("stalled process: %v, want ErrHeld", err)
	}
	if err := la.Renew(ctx); err != nil {
		t.Fatalf("holder lost its lock to a stale write: %v", err)
	}
	if keys := lockKeys(t, la.st, "db"); len(keys) != 1 {
		t.Fatalf("lock objects %v, want one", keys)
	}
}

// failAfterWrite stores the object and then reports an error, like a
// request that timed out after the server wrote it.
type failAfterWrite struct{ storage.Storage }

func (f failAfterWrite) Put(ctx context.Context, key string, r io.Reader) (storage.Object, error) {
	if _, err := f.Storage.Put(ctx, key, r); err != nil {
		return storage.Object{}, err
	}
	return storage.Object{}, errors.New("connection reset")
}

func TestPutErrorAfterWrite(t *testing.T) {
	dir := t.TempDir()
	clk := newFakeClock()
	l, err := Acquire(t.Context(), failAfterWrite{newStore(t, dir)}, "db", opts(clk, "a"))
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if err := l.Renew(t.Context()); err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if _, err := Acquire(t.Context(), newStore(t, dir), "db", opts(clk, "b")); !errors.Is(err, ErrHeld) {
		t.Fatalf("other: %v", err)
	}
}

// unreachable fails every Put.
type unreachable struct {
	storage.Storage
	down atomic.Bool
}

func (u *unreachable) Put(ctx context.Context, key string, r io.Reader) (storage.Object, error) {
	if u.down.Load() {
		return storage.Object{}, errors.New("network is unreachable")
	}
	return u.Storage.Put(ctx, key, r)
}

func waitPending(t *testing.T, c *fakeClock, n int) {
	t.Helper()
	for c.pending() < n {
		select {
		case <-t.Context().Done():
			t.Fatal("timed out")
		case <-time.After(time.Millisecond):
		}
	}
}

// waitDone waits for ctx to end; the watchdog only turns a hang into a
// failure.
func waitDone(t *testing.T, ctx context.Context) {
	t.Helper()
	select {
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("lock holder never noticed it lost the lock")
	}
}

func TestKeep(t *testing.T) {
	dir := t.TempDir()
	t.Run("renews", func(t *testing.T) {
		clk := newFakeClock()
		l, err := Acquire(t.Context(), newStore(t, dir), "renews", opts(clk, "a"))
		if err != nil {
			t.Fatal(err)
		}
		held, stop := l.Keep(t.Context())
		for i := range 3 {
			waitPending(t, clk, 1)
			clk.Advance(15 * time.Second)
			for l.Owner().Expires.Before(clk.Now().Add(time.Minute)) {
				time.Sleep(time.Millisecond)
			}
			if held.Err() != nil {
				t.Fatalf("renewal %d: context ended: %v", i, context.Cause(held))
			}
		}
		stop()
		if err := l.Release(t.Context()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("taken over", func(t *testing.T) {
		clkA, clkB := newFakeClock(), newFakeClock()
		l, err := Acquire(t.Context(), newStore(t, dir), "taken", opts(clkA, "a"))
		if err != nil {
			t.Fatal(err)
		}
		held, stop := l.Keep(t.Context())
		defer stop()
		clkB.Advance(2 * time.Minute) // a's process is frozen, b's clock runs on
		if _, err := Acquire(t.Context(), newStore(t, dir), "taken", opts(clkB, "b")); err != nil {
			t.Fatal(err)
		}
		waitPending(t, clkA, 1)
		clkA.Advance(15 * time.Second) // a wakes and renews
		waitDone(t, held)
		if !errors.Is(context.Cause(held), ErrLost) {
			t.Fatalf("cause %v, want ErrLost", context.Cause(held))
		}
	})
	t.Run("storage down", func(t *testing.T) {
		clk := newFakeClock()
		st := &unreachable{Storage: newStore(t, dir)}
		l, err := Acquire(t.Context(), st, "down", opts(clk, "a"))
		if err != nil {
			t.Fatal(err)
		}
		st.down.Store(true)
		held, stop := l.Keep(t.Context())
		defer stop()
		for i := range 2 { // 15s and 30s: still valid, retrying
			waitPending(t, clk, 1)
			clk.Advance(15 * time.Second)
			waitPending(t, clk, 1)
			if held.Err() != nil {
				t.Fatalf("gave up after %d failed renewals", i+1)
			}
		}
		clk.Advance(15 * time.Second) // 45s: three quarters of the TTL
		waitDone(t, held)
		if !errors.Is(context.Cause(held), ErrLost) {
			t.Fatalf("cause %v", context.Cause(held))
		}
	})
}

// listFailsOnce stores puts normally but fails the next List once armed,
// like a renewal whose put landed while the process was being cancelled.
type listFailsOnce struct {
	storage.Storage
	armed atomic.Bool
}

func (s *listFailsOnce) List(ctx context.Context, prefix string, fn func(storage.Object) error) error {
	if s.armed.CompareAndSwap(true, false) {
		return context.Canceled
	}
	return s.Storage.List(ctx, prefix, fn)
}

// TestRenewReplyLost: a renewal stored but reported failed is adopted by the
// next renewal, and a release after it still frees the lock.
func TestRenewReplyLost(t *testing.T) {
	for _, then := range []string{"renew", "release"} {
		t.Run(then, func(t *testing.T) {
			dir := t.TempDir()
			clk := newFakeClock()
			st := &listFailsOnce{Storage: newStore(t, dir)}
			l, err := Acquire(t.Context(), st, "db", opts(clk, "a"))
			if err != nil {
				t.Fatal(err)
			}
			st.armed.Store(true)
			if err := l.Renew(t.Context()); err == nil || errors.Is(err, ErrLost) {
				t.Fatalf("renewal with failed check: %v, want a plain error", err)
			}
			switch then {
			case "renew":
				if err := l.Renew(t.Context()); err != nil {
					t.Fatalf("next renewal: %v", err)
				}
				if _, err := Acquire(t.Context(), newStore(t, dir), "db", opts(clk, "b")); !errors.Is(err, ErrHeld) {
					t.Fatalf("other process: %v", err)
				}
			case "release":
				if err := l.Release(t.Context()); err != nil {
					t.Fatal(err)
				}
				if _, err := Acquire(t.Context(), newStore(t, dir), "db", opts(clk, "b")); err != nil {
					t.Fatalf("after release: %v", err)
				}
			}
			if keys := lockKeys(t, st, "db"); len(keys) != 1 {
				t.Fatalf("lock objects %v, want one", keys)
			}
		})
	}
}

// A lock whose holder on this host is gone (killed) is taken over at once;
// one whose holder is alive, or on another host, is not.
func TestDeadHolderTakenOver(t *testing.T) {
	st, err := local.New("shared", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock()
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	if _, err := Acquire(t.Context(), st, "db", Options{Clock: clock, Host: "h1", PID: pid, TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	opts := Options{Clock: clock, Host: "h1", PID: os.Getpid(), TTL: time.Hour, Dead: DeadOnHost("h1")}
	if _, err := Acquire(t.Context(), st, "db", opts); !errors.Is(err, ErrHeld) {
		t.Fatalf("lock of a live holder taken: %v", err)
	}
	other := opts
	other.Dead = DeadOnHost("h2")
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := Acquire(t.Context(), st, "db", other); !errors.Is(err, ErrHeld) {
		t.Fatalf("lock of another host's holder taken: %v", err)
	}
	if _, err := Acquire(t.Context(), st, "db", opts); err != nil {
		t.Fatalf("lock of a dead holder not taken over: %v", err)
	}
}
