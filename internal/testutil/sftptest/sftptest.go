// Package sftptest runs a real SSH server with an SFTP subsystem in the test
// process, on a free 127.0.0.1 port, serving a t.TempDir() folder as "/".
//
// The SSH side is golang.org/x/crypto/ssh; the SFTP side is pkg/sftp's
// request server with handlers that go through an [os.Root], so no path
// (not "..", not a symlink) can reach outside the served folder. It needs no
// binary and no container, so tests using it never skip.
//
// The server speaks the OpenSSH extensions pkg/sftp knows
// (posix-rename@openssh.com, statvfs@openssh.com, hardlink@openssh.com) but
// not fsync@openssh.com. Options make it refuse one of them, to test a
// client's fallbacks, and methods make it fail writes, drop connections or
// die, to test what a client does when its storage goes away mid-run.
package sftptest

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	pkgsftp "github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// Server is a running SSH+SFTP server. Its fields are read-only.
type Server struct {
	Addr string // "127.0.0.1:PORT"
	Host string // "127.0.0.1"
	Port int

	// User is the only login name accepted.
	User string
	// Password is accepted for User when set with [WithPassword].
	Password string

	// Root is the local folder the server shows as "/".
	Root string

	// KeyFile is the client's private key in OpenSSH format (0600). It is
	// encrypted with KeyPassphrase when [WithKeyPassphrase] was given.
	KeyFile       string
	KeyPassphrase string
	// ClientKey is KeyFile's public half, the one authorized key.
	ClientKey ssh.PublicKey

	// HostKey is the server's main (ed25519) host key; HostKeys holds it and
	// any extra ones ([WithExtraHostKey]).
	HostKey  ssh.PublicKey
	HostKeys []ssh.PublicKey
	// KnownHosts is a known_hosts file holding the line for HostKey only.
	KnownHosts string

	opts       options
	root       *os.Root
	ln         net.Listener
	sshConfig  *ssh.ServerConfig
	failWrites atomic.Bool
	logins     atomic.Int64
	calls      sync.Map // method name -> *atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	killed bool
	wg     sync.WaitGroup
}

type options struct {
	password      string
	passphrase    string
	noHardlink    bool
	noPosixRename bool
	noStatVFS     bool
	extraHostKey  bool
}

// Option changes how [Start] sets up the server.
type Option func(*options)

// WithPassword makes the server also accept password logins with pw.
func WithPassword(pw string) Option { return func(o *options) { o.password = pw } }

// WithKeyPassphrase encrypts the client key file with passphrase.
func WithKeyPassphrase(passphrase string) Option {
	return func(o *options) { o.passphrase = passphrase }
}

// WithoutHardlink makes hardlink@openssh.com requests fail with "operation
// unsupported", as on a file system without hard links.
func WithoutHardlink() Option { return func(o *options) { o.noHardlink = true } }

// WithoutPosixRename makes posix-rename@openssh.com requests fail with
// "operation unsupported".
func WithoutPosixRename() Option { return func(o *options) { o.noPosixRename = true } }

// WithoutStatVFS makes statvfs@openssh.com requests fail with "operation
// unsupported", as on servers that cannot tell free space.
func WithoutStatVFS() Option { return func(o *options) { o.noStatVFS = true } }

// WithExtraHostKey gives the server a second host key (ECDSA P-256), which
// clients prefer by default over ed25519, while KnownHosts still lists only
// the ed25519 one: a client must pick the algorithm known_hosts has.
func WithExtraHostKey() Option { return func(o *options) { o.extraHostKey = true } }

// Start starts a server for the duration of the test.
func Start(t testing.TB, opts ...Option) *Server {
	t.Helper()
	s := &Server{User: "lifeboat", conns: map[net.Conn]struct{}{}}
	for _, o := range opts {
		o(&s.opts)
	}
	s.Password = s.opts.password
	s.KeyPassphrase = s.opts.passphrase

	dir := t.TempDir()
	s.Root = filepath.Join(dir, "root")
	if err := os.Mkdir(s.Root, 0o700); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(s.Root)
	if err != nil {
		t.Fatal(err)
	}
	s.root = root

	s.sshConfig = &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if meta.User() == s.User && subtle.ConstantTimeCompare(key.Marshal(), s.ClientKey.Marshal()) == 1 {
				return nil, nil
			}
			return nil, errors.New("sftptest: key not authorized")
		},
	}
	if s.Password != "" {
		s.sshConfig.PasswordCallback = func(meta ssh.ConnMetadata, pw []byte) (*ssh.Permissions, error) {
			if meta.User() == s.User && subtle.ConstantTimeCompare(pw, []byte(s.Password)) == 1 {
				return nil, nil
			}
			return nil, errors.New("sftptest: wrong password")
		}
	}

	// Host keys.
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostSigner, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	s.sshConfig.AddHostKey(hostSigner)
	s.HostKey = hostSigner.PublicKey()
	s.HostKeys = []ssh.PublicKey{s.HostKey}
	if s.opts.extraHostKey {
		ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		ecSigner, err := ssh.NewSignerFromKey(ec)
		if err != nil {
			t.Fatal(err)
		}
		s.sshConfig.AddHostKey(ecSigner)
		s.HostKeys = append(s.HostKeys, ecSigner.PublicKey())
	}

	// Client key.
	_, clientPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if s.KeyPassphrase != "" {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(clientPriv, "sftptest", []byte(s.KeyPassphrase))
	} else {
		block, err = ssh.MarshalPrivateKey(clientPriv, "sftptest")
	}
	if err != nil {
		t.Fatal(err)
	}
	s.KeyFile = filepath.Join(dir, "id_ed25519")
	if err := os.WriteFile(s.KeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	pub, err := ssh.NewPublicKey(clientPriv.Public())
	if err != nil {
		t.Fatal(err)
	}
	s.ClientKey = pub

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln = ln
	s.Addr = ln.Addr().String()
	s.Host = "127.0.0.1"
	s.Port = ln.Addr().(*net.TCPAddr).Port

	s.KnownHosts = filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(s.KnownHosts, []byte(s.KnownHostsLine(s.HostKey)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() {
		s.Kill()
		s.wg.Wait()
		_ = s.root.Close()
	})
	return s
}

// KnownHostsLine returns the known_hosts line for key at this server's
// address ("[127.0.0.1]:PORT ssh-ed25519 AAAA...").
func (s *Server) KnownHostsLine(key ssh.PublicKey) string {
	return knownhosts.Line([]string{knownhosts.Normalize(net.JoinHostPort(s.Host, strconv.Itoa(s.Port)))}, key)
}

// FailWrites makes every later write, file creation, rename, link and mkdir
// fail (true) or work again (false), without dropping connections: the
// storage is up but refuses data, as when its disk turned read-only.
func (s *Server) FailWrites(fail bool) { s.failWrites.Store(fail) }

// Logins returns how many SSH logins succeeded so far (to see reconnects).
func (s *Server) Logins() int64 { return s.logins.Load() }

// Calls returns how many requests of an SFTP method succeeded so far:
// "Link" (hardlink@openssh.com), "PosixRename", "Rename", "StatVFS",
// "Remove", "Mkdir", "Put" (open for writing), "Get" (open for reading).
func (s *Server) Calls(method string) int64 {
	if v, ok := s.calls.Load(method); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

func (s *Server) count(method string, err error) {
	if err != nil {
		return
	}
	v, _ := s.calls.LoadOrStore(method, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// CloseConns drops every open connection, as a network cut or server restart
// would. New connections are still accepted.
func (s *Server) CloseConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.Close()
	}
}

// Kill stops the server: it closes the listener and every connection. It is
// safe to call more than once and is called at the end of the test.
func (s *Server) Kill() {
	s.mu.Lock()
	s.killed = true
	s.mu.Unlock()
	_ = s.ln.Close()
	s.CloseConns()
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.killed {
			s.mu.Unlock()
			_ = nc.Close()
			return
		}
		s.conns[nc] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(nc)
			s.mu.Lock()
			delete(s.conns, nc)
			s.mu.Unlock()
			_ = nc.Close()
		}()
	}
}

func (s *Server) serveConn(nc net.Conn) {
	sc, chans, reqs, err := ssh.NewServerConn(nc, s.sshConfig)
	if err != nil {
		return
	}
	defer sc.Close()
	s.logins.Add(1)
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		ssh.DiscardRequests(reqs)
	}()
	for nch := range chans {
		if nch.ChannelType() != "session" {
			_ = nch.Reject(ssh.UnknownChannelType, "only sessions")
			continue
		}
		ch, chReqs, err := nch.Accept()
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveSession(ch, chReqs)
		}()
	}
}

// serveSession accepts the "sftp" subsystem request and nothing else (no
// shell, no exec), then serves SFTP until the channel closes.
func (s *Server) serveSession(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	started := false
	done := make(chan struct{})
	for req := range reqs {
		ok := !started && req.Type == "subsystem" && subsystem(req.Payload) == "sftp"
		_ = req.Reply(ok, nil)
		if !ok {
			continue
		}
		started = true
		go func() {
			defer close(done)
			h := &handler{s: s}
			rs := pkgsftp.NewRequestServer(ch, pkgsftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h})
			_ = rs.Serve()
			_ = rs.Close()
			_ = ch.Close()
		}()
	}
	if started {
		<-done
	}
}

func subsystem(payload []byte) string {
	if len(payload) < 4 {
		return ""
	}
	n := binary.BigEndian.Uint32(payload)
	if uint64(n) > uint64(len(payload)-4) {
		return ""
	}
	return string(payload[4 : 4+n])
}
