package mysql

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/source"
)

// target resolves a restore target. It is either a database name on the
// source's own server, or mysql://USER@HOST:PORT/DATABASE (or ?socket=PATH)
// naming another server; a URL that leaves out the user takes the source's.
// The source's password is used when the target is reached as the source's
// account on the source's server; otherwise the tools read ~/.my.cnf.
func (s *Source) target(t string) (endpoint, string, error) {
	if !strings.Contains(t, "://") {
		if msg := checkName(t); t == "" || msg != "" {
			return endpoint{}, "", fmt.Errorf("restore target %q is not a database name: %s", t, cmp.Or(msg, "it is empty"))
		}
		return s.ep, t, nil
	}
	u, err := parseServerURL(t, "target")
	if err != nil {
		var fe *config.FieldError
		if errors.As(err, &fe) {
			return endpoint{}, "", fmt.Errorf("restore target: %s (%s)", fe.Msg, fe.Hint)
		}
		return endpoint{}, "", err
	}
	if u.database == "" {
		return endpoint{}, "", fmt.Errorf("restore target %s names no database: add it as the path, mysql://USER@HOST:PORT/DATABASE", t)
	}
	if msg := checkName(u.database); msg != "" {
		return endpoint{}, "", fmt.Errorf("restore target database %s", msg)
	}
	ep := s.ep
	if u.host != "" || u.socket != "" || u.port != 0 {
		ep = newEndpoint(u.host, u.port, u.socket, s.ep.user, config.Secret{})
	}
	if u.user != "" {
		ep.user = u.user
	}
	ep.password = config.Secret{}
	if ep.same(s.ep) {
		ep.password = s.ep.password
	}
	return ep, u.database, nil
}

// Inspect implements source.Restorer. It reads, never writes.
func (s *Source) Inspect(ctx context.Context, target string) (source.TargetInfo, error) {
	ep, name, err := s.target(target)
	if err != nil {
		return source.TargetInfo{}, err
	}
	db, err := ep.connect(ctx, "")
	if err != nil {
		return source.TargetInfo{}, err
	}
	defer db.Close()
	srv, err := readServer(ctx, db)
	if err != nil {
		return source.TargetInfo{}, err
	}
	sc, err := readSchema(ctx, db, name)
	if err != nil {
		return source.TargetInfo{}, err
	}
	info := source.TargetInfo{
		Exists:   sc.exists,
		Empty:    len(sc.tables) == 0 && sc.routines == 0 && sc.events == 0,
		Identity: srv.identity(name),
	}
	info.IsSource = s.isSource(ctx, ep, srv, name, sc.exists)

	state := "missing"
	switch {
	case sc.exists && info.Empty:
		state = "empty"
	case sc.exists:
		state = sc.summary()
	}
	info.Describe = fmt.Sprintf("database %s on %s, server %s (%s)", name, srv.describe(ep), srv.id, state)
	if isSystemSchema(name) {
		info.IsSource = true // never a place to restore into; Restore refuses too
	}
	return info, nil
}

// isSource reports whether database name on the server behind ep is one
// this source backs up.
func (s *Source) isSource(ctx context.Context, ep endpoint, target server, name string, exists bool) bool {
	if s.database != AllDatabases && s.database != name {
		return false
	}
	if s.database == AllDatabases && (!exists || isSystemSchema(name)) {
		return false
	}
	if ep.host == s.ep.host && ep.port == s.ep.port && ep.socket == s.ep.socket {
		return true
	}
	db, err := s.ep.connect(ctx, "")
	if err != nil {
		return false // the source's server is not reachable: it cannot be the target
	}
	defer db.Close()
	own, err := readServer(ctx, db)
	return err == nil && own.id == target.id
}

// summary says what the schema holds: "3 tables and views, 1 routine, 0 events, 80.0 KiB".
func (sc schema) summary() string {
	return fmt.Sprintf("%s and views, %s, %s, %s", plural(len(sc.tables), "table"), plural(sc.routines, "routine"),
		plural(sc.events, "event"), sizeWords(sc.size))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func sizeWords(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

var charsetRE = regexp.MustCompile(`^[A-Za-z0-9_]+$`)

// createDatabase is the CREATE DATABASE statement for name, with the
// character set and collation the source database had.
func createDatabase(name string, meta *source.Meta) string {
	q := "CREATE DATABASE IF NOT EXISTS " + quoteIdent(name)
	if meta == nil {
		return q
	}
	if cs := meta.Extra["character_set"]; charsetRE.MatchString(cs) {
		q += " CHARACTER SET " + cs
	}
	if co := meta.Extra["collation"]; charsetRE.MatchString(co) {
		q += " COLLATE " + co
	}
	return q
}

// Restore implements source.Restorer. It creates the database if missing
// and streams the dump into the mysql client, which stops at the first
// failing statement. A dump that cannot be read to its end (a damaged
// backup, a cancelled restore) stops the client before it sees end of input,
// so that a cut-off statement is never run.
func (s *Source) Restore(ctx context.Context, r io.Reader, target string, meta *source.Meta) error {
	ep, name, err := s.target(target)
	if err != nil {
		return err
	}
	if isSystemSchema(name) {
		return fmt.Errorf("refusing to restore into system database %s: choose another name", name)
	}
	client, err := findTool(ctx, s, s.cfg.Client, []string{"mariadb", "mysql"}, "mariadb-client")
	if err != nil {
		return err
	}
	db, err := ep.connect(ctx, "")
	if err != nil {
		return err
	}
	defer db.Close()
	// A non-empty target got here only through the restore guard with
	// --force, after a safety backup: overwriting means the database becomes
	// exactly the backup, so it is dropped and created anew (tables the
	// backup lacks must not survive).
	if info, err := s.Inspect(ctx, target); err == nil && info.Exists && !info.Empty {
		if _, err := db.ExecContext(ctx, "DROP DATABASE "+quoteIdent(name)); err != nil {
			return fmt.Errorf("drop database %s on %s to replace it: %w", name, ep, err)
		}
	}
	if _, err := db.ExecContext(ctx, createDatabase(name, meta)); err != nil {
		return fmt.Errorf("create database %s on %s: %w", name, ep, err)
	}
	db.Close()

	opt, cleanup, err := ep.optionFile()
	if err != nil {
		return err
	}
	defer cleanup()
	args := append(opt, ep.connArgs()...)
	args = append(args,
		"--database="+name,
		"--binary-mode",           // the dump may carry any bytes in string literals
		"--max-allowed-packet=1G", // the client's limit; the server's max_allowed_packet still applies
	)
	if !client.mariadb {
		r = skipSandboxLine(r)
	}

	pr, pw, err := os.Pipe()
	if err != nil {
		return fmt.Errorf("restore into %s: %w", name, err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	ran := make(chan error, 1)
	go func() {
		err := source.Run(runCtx, source.Command{Path: client.path, Args: args, Stdin: pr, BaseEnv: s.baseEnv()})
		pr.Close() // the client is gone: writes into pw now fail instead of blocking
		ran <- err
	}()
	rr := &readErrReader{r: r}
	_, _ = io.Copy(pw, rr)
	if rr.err != nil {
		cancel() // kill the client while its input is still open
		<-ran
		pw.Close()
		return fmt.Errorf("read the dump: %w (restore into database %s stopped; it is partly written)", rr.err, name)
	}
	pw.Close() // end of input: the client runs what is left and exits
	if err := <-ran; err != nil {
		return fmt.Errorf("restore into database %s on %s: %w", name, ep, err)
	}
	return nil
}

// readErrReader records the error of the reader it wraps, so that a failure
// to read the dump can be told from the client going away.
type readErrReader struct {
	r   io.Reader
	err error
}

func (e *readErrReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && err != io.EOF {
		e.err = err
	}
	return n, err
}

// sandboxLine is the first line MariaDB's dump tools write since 10.5.25 and
// 10.11.8. MariaDB's client enters sandbox mode on it (no shell escapes);
// MySQL's client fails on it, so it is dropped for MySQL's client.
const sandboxLine = "/*M!999999\\- enable the sandbox mode */"

func skipSandboxLine(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	head, _ := br.Peek(len(sandboxLine))
	if !bytes.Equal(head, []byte(sandboxLine)) {
		return br
	}
	_, _ = br.ReadString('\n')
	return br
}

// Snapshot implements source.Restorer: a source reading the target database,
// for the safety backup taken before it is overwritten. Tables without
// transactions do not stop it (a safety copy is better than none).
func (s *Source) Snapshot(target string) (source.Source, error) {
	ep, name, err := s.target(target)
	if err != nil {
		return nil, err
	}
	c := s.forDatabase(name)
	c.ep = ep
	c.allowNonTx = true
	c.cfg.IncludeTables, c.cfg.ExcludeTables = nil, nil
	c.cfg.Database = name
	return c, nil
}

// ManualRestore implements source.Restorer: the commands a person runs to
// restore with the standard client, the dump arriving on standard input.
func (s *Source) ManualRestore(target string, meta *source.Meta) []string {
	ep, name, err := s.target(target)
	if err != nil {
		ep, name = s.ep, target
	}
	client := "mysql"
	if s.cfg.Client != "" {
		client = s.cfg.Client
	} else if _, err := exec.LookPath("mariadb"); err == nil {
		client = "mariadb"
	}
	var conn []string
	for _, a := range ep.connArgs() {
		if strings.HasPrefix(a, "--protocol=") {
			continue
		}
		conn = append(conn, source.ShellQuote(a))
	}
	if ep.password.IsSet() {
		conn = append(conn, "-p") // prompts on the terminal
	}
	base := source.ShellQuote(filepath.ToSlash(client)) + " " + strings.Join(conn, " ")
	return []string{
		base + " -e " + source.ShellQuote(createDatabase(name, meta)),
		"| " + base + " --binary-mode --database=" + source.ShellQuote(name),
	}
}
