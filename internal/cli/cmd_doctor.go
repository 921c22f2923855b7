package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/lifeboat-backup/lifeboat/internal/doctor"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
	"github.com/lifeboat-backup/lifeboat/internal/storage/sftp"
)

func newDoctorCommand(app *App) *cobra.Command {
	return &cobra.Command{
		Use:   "doctor",
		Short: "Check the setup for things that would hurt on the bad day",
		Long: `Doctor examines the setup without changing any data: whether the backup
credentials could write to production (a backup role should be read-only),
whether a storage sits on the same machine as the data it protects, whether
the private key is missing or, worse, sitting on the backup host, whether
dump tools are older than the servers, and whether storages are reachable
and writable. It exits non-zero when something is FAIL.`,
		Example: `  lifeboat doctor
  lifeboat -c prod.yaml doctor`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runDoctor(cmd.Context(), app) },
	}
}

func runDoctor(ctx context.Context, app *App) error {
	s, err := app.loadSetup()
	if err != nil {
		return err
	}
	var fs []doctor.Finding
	fs = append(fs, s.keyFindings()...)
	for _, n := range s.Cfg.StorageNames {
		subject := "storage " + n
		st, err := s.Storage(ctx, n)
		if err != nil {
			var hk *sftp.HostKeyError
			if errors.As(err, &hk) {
				fs = append(fs, sftp.ErrorFinding(subject, hk))
			} else {
				fs = append(fs, doctor.Finding{Level: doctor.Fail, Subject: subject, Msg: err.Error(), Hint: "check its settings"})
			}
			continue
		}
		if c, ok := st.(doctor.Checker); ok {
			fs = append(fs, c.Doctor(ctx)...)
			continue
		}
		if ls, ok := st.(*local.Store); ok {
			fs = append(fs, localFindings(ctx, subject, ls)...)
		}
	}
	for _, n := range s.Cfg.SourceNames {
		src, sc, err := s.Source(n)
		if err != nil {
			fs = append(fs, doctor.Finding{Level: doctor.Fail, Subject: "source " + n, Msg: err.Error()})
			continue
		}
		if c, ok := src.(doctor.Checker); ok {
			fs = append(fs, c.Doctor(ctx)...)
		}
		onlyLocal := true
		for _, stn := range sc.Storages {
			if s.Cfg.Storages[stn].Type != "local" {
				onlyLocal = false
			}
		}
		if onlyLocal {
			fs = append(fs, doctor.Finding{Level: doctor.Warn, Subject: "source " + n,
				Msg:  "every storage of this source is on this machine",
				Hint: "a backup on the machine it protects is lost with it: add an s3 or sftp storage"})
		}
	}
	fails := 0
	for _, f := range fs {
		if f.Level == doctor.Fail {
			fails++
		}
		app.Printf("%-4s  %s: %s\n", f.Level, f.Subject, f.Msg)
		if f.Hint != "" && f.Level != doctor.OK {
			app.Printf("      -> %s\n", f.Hint)
		}
	}
	if fails > 0 {
		return &UserError{Msg: fmt.Sprintf("doctor found %d problem(s) marked FAIL", fails), Hint: "fix them, then run `lifeboat doctor` again"}
	}
	return nil
}

// keyFindings checks the encryption keys: the private key should not be on
// the backup host (a stolen host could then read every backup), but it must
// exist somewhere: warn so people check where.
func (s *Setup) keyFindings() []doctor.Finding {
	p := s.identityPath()
	subject := "encryption"
	if p == "" {
		return []doctor.Finding{{Level: doctor.Warn, Subject: subject, Msg: "no identity (private key) configured",
			Hint: "make sure the private key of " + fmt.Sprint(len(s.Recipients)) + " recipient(s) is kept safe off this machine; restores need it"}}
	}
	fi, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return []doctor.Finding{{Level: doctor.OK, Subject: subject, Msg: "the private key is not on this machine (" + p + "): a stolen backup host cannot read backups",
			Hint: "restores, verify --identity and drills need it; check you can find it"}}
	}
	if err != nil {
		return []doctor.Finding{{Level: doctor.Warn, Subject: subject, Msg: err.Error()}}
	}
	out := []doctor.Finding{{Level: doctor.Warn, Subject: subject, Msg: "the private key " + p + " is on this machine: whoever takes this host can read every backup",
		Hint: "keep it off the backup host when you can (pass --identity when restoring); keep a copy somewhere safe in any case"}}
	if fi.Mode().Perm()&0o077 != 0 {
		out = append(out, doctor.Finding{Level: doctor.Fail, Subject: subject, Msg: fmt.Sprintf("%s is readable by other users (mode %v)", p, fi.Mode().Perm()),
			Hint: "chmod 600 " + p})
	}
	return out
}

func localFindings(ctx context.Context, subject string, ls *local.Store) []doctor.Finding {
	key := "lifeboat-doctor-probe"
	if _, err := ls.Put(ctx, key, bytes.NewReader([]byte("probe"))); err != nil {
		return []doctor.Finding{{Level: doctor.Fail, Subject: subject, Msg: "not writable: " + err.Error(), Hint: "fix the folder's permissions or free space"}}
	}
	_ = ls.Delete(ctx, key)
	out := []doctor.Finding{{Level: doctor.OK, Subject: subject, Msg: "writable folder " + ls.Root()}}
	if sp, err := ls.Space(ctx); err == nil {
		lvl := doctor.OK
		if sp.Free < 1<<30 {
			lvl = doctor.Warn
		}
		out = append(out, doctor.Finding{Level: lvl, Subject: subject, Msg: humanBytes(sp.Free) + " free", Hint: "free space or move the storage"})
	}
	return out
}
