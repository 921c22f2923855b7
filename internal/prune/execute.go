package prune

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// Status is what happened to one action.
type Status string

const (
	Deleted    Status = "deleted"
	KeptByLock Status = "kept by lock"
	Skipped    Status = "skipped" // an earlier action on the same backup did not succeed
	Failed     Status = "failed"
)

// Outcome is one executed action.
type Outcome struct {
	Action
	Status Status
	// Count is how many unfinished uploads were aborted.
	Count int
	Err   error
}

// Result is what Execute did.
type Result struct {
	Outcomes []Outcome
}

// Err joins the failed actions' errors; nil when none failed. Actions kept
// by lock are not failures.
func (r Result) Err() error {
	var errs []error
	for _, o := range r.Outcomes {
		if o.Status == Failed {
			errs = append(errs, o.Err)
		}
	}
	return errors.Join(errs...)
}

// Count returns how many outcomes have status s.
func (r Result) Count(s Status) int {
	n := 0
	for _, o := range r.Outcomes {
		if o.Status == s {
			n++
		}
	}
	return n
}

// Execute performs exactly p.Actions(), in order. A refused plan deletes
// nothing and returns p.Refused. When an artifact's deletion fails or is
// refused by an object lock, the rest of that backup in that storage
// (manifest, drill reports) is skipped, so the backup stays listed and whole.
// The returned error is Result.Err (or the refusal, or ctx's error: a
// cancelled prune stops between actions).
func Execute(ctx context.Context, p *Plan) (Result, error) {
	if p.Refused != nil {
		return Result{}, p.Refused
	}
	var res Result
	blocked := map[string]bool{}
	for _, a := range p.Actions() {
		if ctx.Err() != nil {
			break
		}
		o := Outcome{Action: a}
		switch {
		case a.group != "" && blocked[a.group]:
			o.Status = Skipped
		default:
			n, err := a.do(ctx)
			switch {
			case err == nil:
				o.Status, o.Count = Deleted, n
			case errors.Is(err, storage.ErrLocked):
				o.Status = KeptByLock
			default:
				o.Status = Failed
				o.Err = fmt.Errorf("delete %s %s in %s: %w", a.What, a.Key, storageName(a.Storage), err)
			}
			if o.Status != Deleted && a.group != "" {
				blocked[a.group] = true
			}
		}
		res.Outcomes = append(res.Outcomes, o)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	return res, res.Err()
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
