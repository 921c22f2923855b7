package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/pipeline"
	"github.com/lifeboat-backup/lifeboat/internal/report"
	"github.com/lifeboat-backup/lifeboat/internal/source"
)

// Restore is a request to put one backup back.
type Restore struct {
	Entry    catalog.Entry
	Restorer source.Restorer
	// Stages decode the artifact; built from the manifest's stage names.
	Stages []pipeline.Stage
	Target string
	// Force allows writing over a non-empty target or the source itself.
	Force bool
	// Protected targets are refused even with Force.
	Protected []string
	// Confirm is called before an overwrite allowed by Force; a non-nil
	// error aborts the restore (nothing written).
	Confirm func(info source.TargetInfo, reasons []string) error
	// SafetyBackup backs up the target before it is overwritten and
	// returns the new backup's id; an error aborts the restore.
	SafetyBackup func(ctx context.Context, snap source.Source) (string, error)
}

// RefusedError is a restore the guard refused; nothing was written.
type RefusedError struct {
	Target  string
	Reasons []string
	Hint    string
}

func (e *RefusedError) Error() string {
	return "refusing to restore into " + e.Target + ": " + strings.Join(e.Reasons, "; ")
}

// Guard inspects the target and decides whether the restore may go ahead:
// it returns the reasons an overwrite needs --force (none for a new or empty
// target) or a *RefusedError.
func Guard(ctx context.Context, req Restore) (source.TargetInfo, []string, error) {
	rs := req.Restorer
	shown := RedactTarget(req.Target)
	info, err := rs.Inspect(ctx, req.Target)
	if err != nil {
		return info, nil, fmt.Errorf("inspect restore target: %w", err)
	}
	for _, p := range req.Protected {
		pi, err := rs.Inspect(ctx, p)
		if p == req.Target || (err == nil && pi.Identity != "" && pi.Identity == info.Identity) {
			return info, nil, &RefusedError{Target: shown, Reasons: []string{"it is listed under protected: in the config"},
				Hint: "restore into a new target; protected targets are never written, even with --force"}
		}
	}
	var reasons []string
	if info.IsSource || (info.Identity != "" && info.Identity == req.Entry.Identity) {
		reasons = append(reasons, "it is the source this backup was taken from ("+info.Describe+")")
	}
	if info.Exists && !info.Empty {
		reasons = append(reasons, "it is not empty ("+info.Describe+")")
	}
	if len(reasons) > 0 && !req.Force {
		return info, reasons, &RefusedError{Target: shown, Reasons: reasons,
			Hint: "restore into a new target (the default), or add --force to overwrite it after a safety backup"}
	}
	return info, reasons, nil
}

// Restore runs req. The guard runs first; when an overwrite is allowed a
// safety backup of the target is taken before anything is written. The
// artifact's size and SHA-256 are checked as it streams, so a damaged
// artifact fails the restore before the restorer commits (for restorers that
// write to a temporary place first: SQLite, PostgreSQL into a new database).
func (r *Runner) Restore(ctx context.Context, req Restore) (report.Item, error) {
	e := req.Entry
	shown := RedactTarget(req.Target)
	it := report.Item{Source: e.Source, Part: e.Part, BackupID: e.ID, Artifact: e.Artifact, Started: r.now(), Status: report.Failed}
	info, reasons, err := Guard(ctx, req)
	if err != nil {
		it.Error = err.Error()
		return it, err
	}
	if len(reasons) > 0 {
		if req.Confirm != nil {
			if err := req.Confirm(info, reasons); err != nil {
				it.Error = err.Error()
				return it, err
			}
		}
		if info.Exists && !info.Empty && req.SafetyBackup != nil {
			snap, err := req.Restorer.Snapshot(req.Target)
			if err != nil {
				return it, fmt.Errorf("prepare safety backup of %s: %w", shown, err)
			}
			id, err := req.SafetyBackup(ctx, snap)
			if err != nil {
				err = fmt.Errorf("safety backup of %s failed, nothing was overwritten: %w", shown, err)
				it.Error = err.Error()
				return it, err
			}
			it.Details = append(it.Details, "safety backup of the overwritten target: "+id)
		}
	}
	r.log().Info("restore started", "source", e.Source, "id", e.ID, "target", shown)
	rc, err := e.Storage.Open(ctx, e.Key)
	if err != nil {
		return it, fmt.Errorf("open %s in %s: %w", e.Key, e.Storage.Name(), err)
	}
	defer rc.Close()
	vr := newVerifyingReader(rc, e.Key, e.StoredSize, e.SHA256)
	var in io.Reader = vr
	if r.Progress != nil {
		in = &progressReader{r: vr, fn: func(n int64) { r.Progress("restore "+e.Source, 0, n) }}
	}
	dec, err := pipeline.Decode(in, req.Stages)
	if err != nil {
		it.Error = err.Error()
		return it, err
	}
	defer dec.Close()
	meta := e.Meta
	if err := req.Restorer.Restore(ctx, dec, req.Target, &meta); err != nil {
		err = restoreErr(err, shown)
		it.Error = err.Error()
		return it, err
	}
	// Some tools stop reading at their own end marker: read the rest so the
	// checksum covers every stored byte.
	if _, err := io.Copy(io.Discard, dec); err != nil {
		err = fmt.Errorf("restore finished but the artifact failed its final check, treat %s as suspect: %w", shown, err)
		it.Error = err.Error()
		return it, err
	}
	it.Status = report.OK
	it.Finished = r.now()
	it.PlainSize, it.StoredSize = e.PlainSize, e.StoredSize
	r.log().Info("restore finished", "source", e.Source, "id", e.ID, "target", shown, "duration", it.Finished.Sub(it.Started).Round(1e6).String())
	return it, nil
}

func restoreErr(err error, target string) error {
	var ce *ChecksumError
	if errors.As(err, &ce) {
		return fmt.Errorf("restore into %s stopped: %w", target, err)
	}
	return fmt.Errorf("restore into %s: %w", target, err)
}

type progressReader struct {
	r  io.Reader
	n  int64
	fn func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += int64(n)
	p.fn(p.n)
	return n, err
}

// RedactTarget returns target with any password in it (a URL's user info,
// a password= parameter) replaced, for logs, messages and reports.
func RedactTarget(target string) string {
	u, err := url.Parse(target)
	if err != nil || u.Scheme == "" {
		return target
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	q := u.Query()
	for k := range q {
		if strings.EqualFold(k, "password") {
			q.Set(k, "xxxxx")
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}
