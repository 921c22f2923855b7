// Package age is the encryption stage (filippo.io/age).
//
// Backups are encrypted to public recipients only, so the backup host holds
// no key able to read them. Decryption needs an identity file, which only
// restore, verify and drill read.
package age

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"filippo.io/age"
	"filippo.io/age/agessh"

	"github.com/lifeboat-backup/lifeboat/internal/pipeline"
)

// Stage encrypts to Recipients and decrypts with Identities.
type Stage struct {
	Recipients []age.Recipient
	Identities []age.Identity
}

var _ pipeline.Stage = (*Stage)(nil)

func (*Stage) Name() string { return "age" }

func (s *Stage) NewWriter(dst io.Writer) (io.WriteCloser, error) {
	if len(s.Recipients) == 0 {
		return nil, errors.New("no age recipients configured")
	}
	return age.Encrypt(dst, s.Recipients...)
}

// NewReader fails with *NoIdentityError when no identity is loaded or none
// matches. age itself reports truncation as an error.
func (s *Stage) NewReader(src io.Reader) (io.ReadCloser, error) {
	if len(s.Identities) == 0 {
		return nil, &NoIdentityError{}
	}
	r, err := age.Decrypt(src, s.Identities...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, &NoIdentityError{Mismatch: true}
		}
		return nil, fmt.Errorf("age: %w", err)
	}
	return io.NopCloser(&wrapReader{r}), nil
}

type wrapReader struct{ r io.Reader }

func (w *wrapReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("age: %w (the artifact is truncated or was modified)", err)
	}
	return n, err
}

// NoIdentityError means the artifact cannot be decrypted with what we have.
type NoIdentityError struct{ Mismatch bool }

func (e *NoIdentityError) Error() string {
	if e.Mismatch {
		return "the identity (private key) does not match any recipient of this backup"
	}
	return "no identity (private key) loaded: decrypting needs encryption.identity or --identity"
}

// ParseRecipient parses an age public key (age1…, age1pq1…) or an ssh public
// key line (ssh-ed25519 …, ssh-rsa …).
func ParseRecipient(s string) (age.Recipient, error) {
	s = strings.TrimSpace(s)
	switch {
	case strings.HasPrefix(s, "age1pq1"):
		return age.ParseHybridRecipient(s)
	case strings.HasPrefix(s, "age1"):
		return age.ParseX25519Recipient(s)
	case strings.HasPrefix(s, "ssh-"):
		return agessh.ParseRecipient(s)
	}
	return nil, fmt.Errorf("%q is not an age (age1…) or ssh (ssh-ed25519 …) public key", abbreviate(s))
}

// ReadRecipientsFile parses a recipients file: one key per line, # comments.
func ReadRecipientsFile(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read recipients file: %w", err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, line)
	}
	return out, nil
}

// Fingerprint is a short stable id of a recipient string, for manifests.
func Fingerprint(recipient string) string {
	sum := sha256.Sum256([]byte(strings.TrimSpace(recipient)))
	return "sha256:" + hex.EncodeToString(sum[:8])
}

// ReadIdentityFile loads identities from an age identity file or an
// unencrypted ssh private key.
func ReadIdentityFile(path string) ([]age.Identity, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read identity: %w", err)
	}
	if bytes.Contains(b, []byte("PRIVATE KEY-----")) {
		id, err := agessh.ParseIdentity(b)
		if err != nil {
			return nil, fmt.Errorf("parse ssh identity %s: %w", path, err)
		}
		return []age.Identity{id}, nil
	}
	ids, err := age.ParseIdentities(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse identity file %s: %w", path, err)
	}
	return ids, nil
}

// Generate makes a new X25519 identity and returns the identity file content
// and the public recipient.
func Generate() (identityFile, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return "", "", err
	}
	rcp := id.Recipient().String()
	content := "# lifeboat backup key: needed to restore, verify contents and drill.\n" +
		"# Keep a copy OFF this machine (password manager, safe). Without it the backups cannot be read.\n" +
		"# public key: " + rcp + "\n" + id.String() + "\n"
	return content, rcp, nil
}

func abbreviate(s string) string {
	if len(s) > 24 {
		return s[:24] + "…"
	}
	return s
}
