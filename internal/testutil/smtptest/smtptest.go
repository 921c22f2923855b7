// Package smtptest runs a real SMTP server (github.com/emersion/go-smtp) on a
// free loopback port for tests, and collects what it receives.
//
// It offers STARTTLS with a self-signed certificate made for the test (or
// implicit TLS), optional AUTH PLAIN and LOGIN with a fixed user, and can be
// told to answer the first N messages with a temporary failure, to exercise
// retries. Received messages keep their raw bytes; [Message] has helpers to
// read the headers and the text and HTML parts.
package smtptest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TLSMode is how the server offers TLS.
type TLSMode int

const (
	// StartTLS offers the STARTTLS extension on a plain connection (default).
	StartTLS TLSMode = iota
	// NoTLS offers no TLS at all.
	NoTLS
	// Implicit speaks TLS from the first byte (SMTPS, port 465 style).
	Implicit
)

// Options configure a test server. The zero value is a STARTTLS server
// without authentication.
type Options struct {
	TLS TLSMode
	// Username and Password, when set, are required (AUTH PLAIN or LOGIN)
	// before MAIL FROM.
	Username, Password string
	// FailFirst answers DATA of the first FailFirst messages with
	// "451 try again later".
	FailFirst int
}

// Message is one received message.
type Message struct {
	From string
	To   []string
	// Data is the message as sent after DATA (headers and body, CRLF).
	Data []byte
	// User is the authenticated user, empty without AUTH.
	User string
	// TLS is whether the session was encrypted when the message was sent.
	TLS bool
}

// Server is a running test server; it stops when the test ends.
type Server struct {
	// Host and Port to connect to; Addr is "Host:Port".
	Host string
	Port int
	Addr string
	// CAFile is a PEM file holding the server's self-signed certificate,
	// for clients to trust; CertPool holds the same.
	CAFile   string
	CertPool *x509.CertPool

	opts Options
	srv  *smtp.Server

	mu      sync.Mutex
	msgs    []Message
	failed  int
	arrived chan struct{} // closed and replaced on every message
}

// Start starts a server on 127.0.0.1 and a free port. It fails the test if
// that is impossible, and closes the server in t.Cleanup.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	certPEM, cert, err := selfSigned()
	if err != nil {
		t.Fatalf("make test certificate: %v", err)
	}
	s := &Server{opts: opts, arrived: make(chan struct{}), CertPool: x509.NewCertPool()}
	s.CertPool.AppendCertsFromPEM(certPEM)
	s.CAFile = filepath.Join(t.TempDir(), "smtptest-ca.pem")
	if err := os.WriteFile(s.CAFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}

	srv := smtp.NewServer(backend{s})
	srv.Domain = "localhost"
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 10 << 20
	srv.MaxRecipients = 50
	srv.ErrorLog = log.New(io.Discard, "", 0)
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if opts.TLS == NoTLS {
		srv.AllowInsecureAuth = true
	} else {
		srv.TLSConfig = tlsConf
	}
	s.srv = srv

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen for smtp: %v", err)
	}
	if opts.TLS == Implicit {
		l = tls.NewListener(l, tlsConf)
	}
	addr := l.Addr().(*net.TCPAddr)
	s.Host, s.Port, s.Addr = "127.0.0.1", addr.Port, net.JoinHostPort("127.0.0.1", strconv.Itoa(addr.Port))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return s
}

// Messages returns a copy of what has been received so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Failed is how many messages were answered with the FailFirst failure.
func (s *Server) Failed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// Wait returns once at least n messages have arrived, or with ctx's error.
// A message is recorded before the server acknowledges it, so after a
// synchronous send returns there is no need to wait.
func (s *Server) Wait(ctx context.Context, n int) ([]Message, error) {
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			out := append([]Message(nil), s.msgs...)
			s.mu.Unlock()
			return out, nil
		}
		ch := s.arrived
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return s.Messages(), ctx.Err()
		case <-ch:
		}
	}
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: b.s, conn: c}, nil
}

type session struct {
	s    *Server
	conn *smtp.Conn
	user string
	from string
	to   []string
}

func (se *session) needAuth() error {
	if se.s.opts.Username != "" && se.user == "" {
		return smtp.ErrAuthRequired
	}
	return nil
}

func (se *session) AuthMechanisms() []string {
	if se.s.opts.Username == "" {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (se *session) check(user, pass string) error {
	if user != se.s.opts.Username || pass != se.s.opts.Password {
		return smtp.ErrAuthFailed
	}
	se.user = user
	return nil
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return se.check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: se.check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if err := se.needAuth(); err != nil {
		return err
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if err := se.needAuth(); err != nil {
		return err
	}
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	if err := se.needAuth(); err != nil {
		return err
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := se.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failed < s.opts.FailFirst {
		s.failed++
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	_, isTLS := se.conn.TLSConnectionState()
	s.msgs = append(s.msgs, Message{From: se.from, To: append([]string(nil), se.to...), Data: data, User: se.user, TLS: isTLS})
	close(s.arrived)
	s.arrived = make(chan struct{})
	return nil
}

func (se *session) Reset() { se.from, se.to = "", nil }

func (se *session) Logout() error { return nil }

// loginServer is the server side of AUTH LOGIN (draft-murchison-sasl-login),
// which go-sasl only implements as a client.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	switch l.step {
	case 0:
		l.step = 1
		if len(resp) == 0 {
			return []byte("Username:"), false, nil
		}
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 1:
		l.user, l.step = string(resp), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, true, errors.New("unexpected AUTH LOGIN step")
}

// selfSigned makes an ECDSA certificate for 127.0.0.1, ::1 and localhost.
func selfSigned() ([]byte, tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "lifeboat smtptest"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, tls.Certificate{}, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	return certPEM, cert, err
}
