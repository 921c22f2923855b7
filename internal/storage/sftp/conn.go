package sftp

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	pkgsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

const (
	// dialTimeout bounds TCP connect plus SSH handshake and login.
	dialTimeout = 30 * time.Second
	// keepaliveEvery and keepaliveWait detect a silently dead connection
	// (a NAT that forgot us): no answer in time closes it, which fails the
	// requests waiting on it instead of hanging a backup forever.
	keepaliveEvery = 30 * time.Second
	keepaliveWait  = 60 * time.Second
	// maxConcurrent is the number of 32 KiB write requests in flight per
	// upload: about 2 MiB of memory, and enough to hide the round trip.
	maxConcurrent = 64
)

// dialer holds everything needed to (re)connect; built once by New.
type dialer struct {
	name     string // storage name, for messages
	hostport string
	user     string
	auth     []ssh.AuthMethod
	hostKey  ssh.HostKeyCallback
	algos    []string
	closers  []io.Closer // agent connection
}

// conn is one SSH connection with its SFTP session.
type conn struct {
	ssh  *ssh.Client
	sftp *pkgsftp.Client
	dead chan struct{} // closed when the connection ended
	// hostKey is the key the server showed (and that passed the check).
	hostKey ssh.PublicKey

	hardlink, posixRename, statvfs, fsync bool
}

func (c *conn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

func (c *conn) close() {
	_ = c.sftp.Close()
	_ = c.ssh.Close()
}

func newDialer(name string, cfg *Config, opt storage.Options) (*dialer, error) {
	port := cfg.Port
	if port == 0 {
		port = DefaultPort
	}
	d := &dialer{name: name, hostport: net.JoinHostPort(cfg.Host, strconv.Itoa(port))}
	lg := cfg.loginFor(opt.Prune)
	d.user = lg.user
	env := opt.Env
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}

	if lg.keyFile != "" {
		signer, err := loadKey(resolvePath(opt.Dir, lg.keyFile, env), lg.passphrase)
		if err != nil {
			return nil, err
		}
		d.auth = append(d.auth, ssh.PublicKeys(signer))
	}
	if cfg.UseAgent {
		sock, ok := env("SSH_AUTH_SOCK")
		if !ok || sock == "" {
			return nil, &storage.PermanentError{Err: errors.New("use_agent is set but SSH_AUTH_SOCK is not: start ssh-agent and ssh-add the key, or use key_file")}
		}
		ac, err := net.Dial("unix", sock)
		if err != nil {
			return nil, fmt.Errorf("connect to ssh-agent at SSH_AUTH_SOCK: %w", err)
		}
		d.closers = append(d.closers, ac)
		d.auth = append(d.auth, ssh.PublicKeysCallback(agent.NewClient(ac).Signers))
	}
	if pw := lg.password; pw.IsSet() {
		secret := pw.Reveal()
		d.auth = append(d.auth, ssh.Password(secret),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = secret
				}
				return answers, nil
			}))
	}
	if len(d.auth) == 0 {
		return nil, &storage.PermanentError{Err: errors.New("no way to log in: set key_file, password or use_agent")}
	}

	known := cfg.KnownHosts
	if known == "" && cfg.HostKey == "" {
		home, ok := env("HOME")
		if !ok || home == "" {
			return nil, &storage.PermanentError{Err: errors.New("cannot find ~/.ssh/known_hosts: HOME is not set; set known_hosts: or host_key:")}
		}
		known = filepath.Join(home, ".ssh", "known_hosts")
	} else if known != "" {
		known = resolvePath(opt.Dir, known, env)
	}
	cb, algos, err := hostKeyCheck(d.hostport, cfg.HostKey, known)
	if err != nil {
		return nil, &storage.PermanentError{Err: err}
	}
	d.hostKey, d.algos = cb, algos
	return d, nil
}

func (d *dialer) close() {
	for _, c := range d.closers {
		_ = c.Close()
	}
}

// resolvePath expands "~/" with HOME and makes relative paths relative to
// the config file's folder.
func resolvePath(dir, p string, env func(string) (string, bool)) string {
	if strings.HasPrefix(p, "~/") {
		if home, ok := env("HOME"); ok && home != "" {
			return filepath.Join(home, p[2:])
		}
	}
	return config.Abs(dir, p)
}

func loadKey(path string, passphrase config.Secret) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, &storage.PermanentError{Err: fmt.Errorf("read key_file: %w", err)}
	}
	var signer ssh.Signer
	if passphrase.IsSet() {
		signer, err = ssh.ParsePrivateKeyWithPassphrase(pem, []byte(passphrase.Reveal()))
	} else {
		signer, err = ssh.ParsePrivateKey(pem)
	}
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, &storage.PermanentError{Err: fmt.Errorf("key_file %s is encrypted: set key_passphrase: ${env:NAME}, or use use_agent: true", path)}
	case errors.Is(err, x509.IncorrectPasswordError):
		return nil, &storage.PermanentError{Err: fmt.Errorf("key_file %s: key_passphrase is wrong", path)}
	case err != nil:
		return nil, &storage.PermanentError{Err: fmt.Errorf("parse key_file %s: %w (expected an OpenSSH or PEM private key, not the .pub file)", path, err)}
	}
	return signer, nil
}

// dial opens a new connection and SFTP session.
func (d *dialer) dial(ctx context.Context) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, "tcp", d.hostport)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", d.hostport, err)
	}
	// The handshake takes no context: a deadline and closing on cancel bound it.
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = nc.Close() })
	var seen ssh.PublicKey
	cc, chans, reqs, err := ssh.NewClientConn(nc, d.hostport, &ssh.ClientConfig{
		User: d.user,
		Auth: d.auth,
		HostKeyCallback: func(host string, remote net.Addr, key ssh.PublicKey) error {
			seen = key
			return d.hostKey(host, remote, key)
		},
		HostKeyAlgorithms: d.algos,
		Timeout:           dialTimeout,
	})
	if !stop() {
		if cc != nil {
			_ = cc.Close()
		}
		_ = nc.Close()
		return nil, fmt.Errorf("connect to %s: %w", d.hostport, ctx.Err())
	}
	if err != nil {
		_ = nc.Close()
		var hk *HostKeyError
		if errors.As(err, &hk) {
			return nil, &storage.PermanentError{Err: hk}
		}
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, &storage.PermanentError{Err: fmt.Errorf("log in to %s as %s: %w; check key_file/password, and that the public key is in the server's ~%s/.ssh/authorized_keys", d.hostport, d.user, err, d.user)}
		}
		return nil, fmt.Errorf("ssh handshake with %s: %w", d.hostport, err)
	}
	_ = nc.SetDeadline(time.Time{})
	client := ssh.NewClient(cc, chans, reqs)
	sc, err := pkgsftp.NewClient(client,
		pkgsftp.UseConcurrentWrites(true),
		pkgsftp.MaxConcurrentRequestsPerFile(maxConcurrent),
	)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("start sftp on %s: %w (does the server allow the sftp subsystem for %s?)", d.hostport, err, d.user)
	}
	c := &conn{ssh: client, sftp: sc, dead: make(chan struct{}), hostKey: seen}
	_, c.hardlink = sc.HasExtension("hardlink@openssh.com")
	_, c.posixRename = sc.HasExtension("posix-rename@openssh.com")
	_, c.statvfs = sc.HasExtension("statvfs@openssh.com")
	_, c.fsync = sc.HasExtension("fsync@openssh.com")

	var once sync.Once
	markDead := func() { once.Do(func() { close(c.dead) }) }
	go func() { _ = client.Wait(); markDead(); _ = sc.Close() }()
	go func() { _ = sc.Wait(); markDead(); _ = client.Close() }()
	go keepalive(c)
	return c, nil
}

// keepalive pings the server and closes the connection when it stops
// answering.
func keepalive(c *conn) {
	t := time.NewTicker(keepaliveEvery)
	defer t.Stop()
	for {
		select {
		case <-c.dead:
			return
		case <-t.C:
		}
		answered := make(chan struct{})
		go func() {
			_, _, _ = c.ssh.SendRequest("keepalive@openssh.com", true, nil)
			close(answered)
		}()
		select {
		case <-answered:
		case <-c.dead:
			return
		case <-time.After(keepaliveWait):
			_ = c.ssh.Close()
			return
		}
	}
}

// connLost reports whether err means the connection is gone, so that
// reconnecting and trying again (once) may help. A write on a closed SSH
// channel fails with io.EOF ("failed to send packet: EOF") before the
// connection is seen as dead; no request of this package expects an EOF
// status from the server.
func connLost(c *conn, err error) bool {
	if err == nil {
		return false
	}
	return c.isDead() ||
		errors.Is(err, pkgsftp.ErrSSHFxConnectionLost) ||
		errors.Is(err, pkgsftp.ErrSSHFxNoConnection) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}
