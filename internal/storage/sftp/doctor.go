package sftp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"

	"golang.org/x/crypto/ssh"

	"github.com/lifeboat-backup/lifeboat/internal/doctor"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

var _ doctor.Checker = (*Store)(nil)

// lowSpace is the free space below which doctor warns.
const lowSpace = 1 << 30

// Doctor implements [doctor.Checker]: it connects afresh (server reachable,
// host key as expected, login accepted), writes and removes a hidden probe
// file in the folder, and reports free space and missing server features.
// It leaves nothing behind.
func (s *Store) Doctor(ctx context.Context) []doctor.Finding {
	subject := "storage " + s.name
	f := func(l doctor.Level, hint, format string, args ...any) doctor.Finding {
		return doctor.Finding{Level: l, Subject: subject, Msg: fmt.Sprintf(format, args...), Hint: hint}
	}
	c, err := s.d.dial(ctx)
	if err != nil {
		return []doctor.Finding{ErrorFinding(subject, err)}
	}
	defer c.close()
	out := []doctor.Finding{f(doctor.OK, "", "logged in to %s as %s; host key %s verified", s.d.hostport, s.d.user, ssh.FingerprintSHA256(c.hostKey))}

	dir := s.Dir()
	probe := path.Join(dir, ".lifeboat-doctor."+randomHex()+partSuffix)
	pf, err := c.sftp.OpenFile(probe, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err == nil {
		_, err = pf.Write([]byte("lifeboat doctor probe\n"))
		if cerr := pf.Close(); err == nil {
			err = cerr
		}
		if rerr := c.sftp.Remove(probe); err == nil && rerr != nil {
			err = fmt.Errorf("remove probe file: %w", rerr)
		}
	}
	if err != nil {
		out = append(out, f(doctor.Fail, fmt.Sprintf("give %s write access to %s on the server", s.d.user, dir),
			"cannot write to %s: %v", dir, err))
	} else {
		out = append(out, f(doctor.OK, "", "folder %s is writable", dir))
	}

	switch {
	case !c.statvfs:
		out = append(out, f(doctor.Warn, "watch the server's disk some other way; lifeboat cannot warn before it fills up",
			"the server does not report free space (no statvfs@openssh.com)"))
	default:
		sp, err := s.Space(ctx)
		switch {
		case err != nil:
			out = append(out, f(doctor.Warn, "", "cannot read free space: %v", err))
		case sp.Free < 0:
			out = append(out, f(doctor.Warn, "watch the server's disk some other way", "the server does not report free space"))
		case sp.Free < lowSpace:
			out = append(out, f(doctor.Warn, "free space on the server or shorten retention", "only %d MiB free on the server", sp.Free>>20))
		default:
			out = append(out, f(doctor.OK, "", "%d GiB free on the server", sp.Free>>30))
		}
	}
	if !c.fsync {
		out = append(out, f(doctor.Warn, "use an OpenSSH server (6.5 or later), which has it",
			"the server does not offer fsync@openssh.com: a backup reported stored could be lost if the server crashes right after"))
	}
	if !c.hardlink && !c.posixRename {
		out = append(out, f(doctor.Warn, "use an OpenSSH server, which has hardlink@openssh.com",
			"the server has neither hard links nor posix-rename: uploads commit with a plain rename"))
	}
	return out
}

// ErrorFinding turns an error from [New] or a connection into a doctor
// finding, with the known_hosts line as hint for host key problems.
func ErrorFinding(subject string, err error) doctor.Finding {
	var hk *HostKeyError
	if errors.As(err, &hk) {
		return doctor.Finding{Level: doctor.Fail, Subject: subject, Msg: hk.Summary(), Hint: hk.Hint()}
	}
	hint := "check host, port and that the SSH server runs"
	var pe *storage.PermanentError
	if errors.As(err, &pe) {
		hint = "fix the storage's settings"
	}
	return doctor.Finding{Level: doctor.Fail, Subject: subject, Msg: err.Error(), Hint: hint}
}
