package sftp

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyError is returned when the server's host key is not the expected
// one. Host-key checking cannot be turned off: without it anyone on the path
// could receive the backups (they are encrypted, but could be dropped) and
// answer "stored" for data that is gone.
type HostKeyError struct {
	Host string        // "host:port" as dialled
	Key  ssh.PublicKey // the key the server offered
	// Source is where the expected key came from: a known_hosts file path,
	// or "host_key" for a pinned key.
	Source string
	// Want are the fingerprints expected for this host; empty when the host
	// is unknown (not in known_hosts).
	Want []string
	// Revoked is set when known_hosts marks the key @revoked.
	Revoked bool
}

// Fingerprint is the server key's "SHA256:..." fingerprint.
func (e *HostKeyError) Fingerprint() string { return ssh.FingerprintSHA256(e.Key) }

// KnownHostsLine is the line to add to known_hosts to trust the server's key.
func (e *HostKeyError) KnownHostsLine() string {
	return knownhosts.Line([]string{knownhosts.Normalize(e.Host)}, e.Key)
}

func (e *HostKeyError) Error() string { return e.Summary() + "; " + e.Hint() }

// Summary says what is wrong, in one line.
func (e *HostKeyError) Summary() string {
	offered := e.Key.Type() + " " + e.Fingerprint()
	switch {
	case e.Revoked:
		return fmt.Sprintf("host key of %s is marked @revoked in %s (server offered %s)", e.Host, e.Source, offered)
	case e.Source == "host_key":
		return fmt.Sprintf("host key of %s is not the pinned host_key %s (server offered %s)", e.Host, strings.Join(e.Want, ""), offered)
	case len(e.Want) == 0:
		return fmt.Sprintf("host key of %s is unknown: %s has no entry for it (server offered %s)", e.Host, e.Source, offered)
	}
	return fmt.Sprintf("host key of %s does not match %s: server offered %s but %s is expected", e.Host, e.Source, offered, strings.Join(e.Want, " or "))
}

// Hint says what to do, with the exact known_hosts line.
func (e *HostKeyError) Hint() string {
	switch {
	case e.Revoked:
		return "do not connect: ask the server's admin for its new key"
	case e.Source == "host_key":
		return fmt.Sprintf("someone may be intercepting the connection, or the server was reinstalled: check with the server's admin; "+
			"if %s is the server's new key, set `host_key: %s`", e.Fingerprint(), e.Fingerprint())
	case len(e.Want) == 0:
		return fmt.Sprintf("check that fingerprint with the server's admin (`ssh-keygen -lf /etc/ssh/ssh_host_%s_key.pub` on the server), "+
			"then add this line to %s:\n%s\nor set `host_key: %s`", keyFileType(e.Key), e.Source, e.KnownHostsLine(), e.Fingerprint())
	}
	return "someone may be intercepting the connection, or the server was reinstalled: check with the server's admin before changing anything; " +
		"if the new key is right, replace the old entry with this line:\n" + e.KnownHostsLine()
}

func keyFileType(k ssh.PublicKey) string {
	switch k.Type() {
	case ssh.KeyAlgoED25519:
		return "ed25519"
	case ssh.KeyAlgoRSA:
		return "rsa"
	}
	if strings.HasPrefix(k.Type(), "ecdsa") {
		return "ecdsa"
	}
	return "*"
}

// pinnedKey is a parsed host_key: a whole key, or only a fingerprint.
type pinnedKey struct {
	key         ssh.PublicKey // nil for a fingerprint
	fingerprint string
}

func parseHostKey(s string) (pinnedKey, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(s, "SHA256:") {
		if len(s) != len("SHA256:")+43 {
			return pinnedKey{}, fmt.Errorf("host_key %q is not a SHA256 fingerprint (SHA256: and 43 characters)", s)
		}
		return pinnedKey{fingerprint: s}, nil
	}
	if k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s)); err == nil {
		return pinnedKey{key: k, fingerprint: ssh.FingerprintSHA256(k)}, nil
	}
	if _, _, k, _, _, err := ssh.ParseKnownHosts([]byte(s)); err == nil {
		return pinnedKey{key: k, fingerprint: ssh.FingerprintSHA256(k)}, nil
	}
	return pinnedKey{}, errors.New("host_key is neither a public key line nor a SHA256:... fingerprint")
}

// hostKeyCheck returns the callback checking the server's key and the host
// key algorithms to ask for, so that a server with several keys shows the
// one we know (x/crypto would otherwise pick by its own preference, offer
// ECDSA, and fail against an ed25519-only known_hosts).
func hostKeyCheck(hostport, pinned, knownHostsFile string) (ssh.HostKeyCallback, []string, error) {
	if pinned != "" {
		pk, err := parseHostKey(pinned)
		if err != nil {
			return nil, nil, err
		}
		cb := func(_ string, _ net.Addr, key ssh.PublicKey) error {
			if ssh.FingerprintSHA256(key) == pk.fingerprint {
				return nil
			}
			return &HostKeyError{Host: hostport, Key: key, Source: "host_key", Want: []string{pk.fingerprint}}
		}
		var algos []string
		if pk.key != nil {
			algos = algorithmsFor(pk.key.Type())
		}
		return cb, algos, nil
	}

	var db ssh.HostKeyCallback
	switch _, err := os.Stat(knownHostsFile); {
	case errors.Is(err, fs.ErrNotExist):
		db = func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }
	case err != nil:
		return nil, nil, fmt.Errorf("read known_hosts: %w", err)
	default:
		db, err = knownhosts.New(knownHostsFile)
		if err != nil {
			return nil, nil, fmt.Errorf("read known_hosts %s: %w", knownHostsFile, err)
		}
	}
	cb := func(host string, remote net.Addr, key ssh.PublicKey) error {
		err := db(hostport, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &re):
			return &HostKeyError{Host: hostport, Key: key, Source: knownHostsFile, Revoked: true}
		case errors.As(err, &ke):
			he := &HostKeyError{Host: hostport, Key: key, Source: knownHostsFile}
			for _, w := range ke.Want {
				he.Want = append(he.Want, fmt.Sprintf("%s %s (%s:%d)", w.Key.Type(), ssh.FingerprintSHA256(w.Key), w.Filename, w.Line))
			}
			return he
		}
		return err
	}
	// Ask the database which keys it has for this host, with a key that
	// matches none.
	var algos []string
	probe, _ := ssh.NewPublicKey(ed25519.PublicKey(bytes.Repeat([]byte{0}, ed25519.PublicKeySize)))
	var ke *knownhosts.KeyError
	if err := db(hostport, &net.TCPAddr{IP: net.IPv4zero}, probe); errors.As(err, &ke) {
		for _, w := range ke.Want {
			for _, a := range algorithmsFor(w.Key.Type()) {
				if !slices.Contains(algos, a) {
					algos = append(algos, a)
				}
			}
		}
	}
	return cb, algos, nil
}

// algorithmsFor maps a key type to the host key algorithms that show it.
func algorithmsFor(keyType string) []string {
	switch keyType {
	case ssh.KeyAlgoRSA:
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	case ssh.CertAlgoRSAv01:
		return []string{ssh.CertAlgoRSASHA512v01, ssh.CertAlgoRSASHA256v01, ssh.CertAlgoRSAv01}
	}
	return []string{keyType}
}
