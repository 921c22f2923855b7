package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/lifeboat-backup/lifeboat/internal/config"
)

// endpoint is how to reach one server as one account.
type endpoint struct {
	host     string // empty when socket is used
	port     int
	socket   string
	user     string
	password config.Secret
}

// defaultSockets are where distributions put the server's socket; the first
// that exists is used for host localhost without a socket.
func defaultSockets() []string {
	return []string{"/run/mysqld/mysqld.sock", "/var/run/mysqld/mysqld.sock", "/var/lib/mysql/mysql.sock", "/tmp/mysql.sock"}
}

// newEndpoint resolves host, port and socket the way the MySQL clients do:
// host localhost (or none) means the unix socket.
func newEndpoint(host string, port int, socket, user string, password config.Secret) endpoint {
	e := endpoint{host: host, port: port, socket: socket, user: user, password: password}
	if e.port == 0 {
		e.port = 3306
	}
	if e.socket == "" && (e.host == "" || e.host == "localhost") {
		for _, p := range defaultSockets() {
			if fi, err := os.Stat(p); err == nil && fi.Mode().Type() == os.ModeSocket {
				e.socket = p
				break
			}
		}
		if e.socket == "" {
			// No socket found: the driver and the tools both go to TCP on
			// loopback, the closest thing to what the user meant.
			e.host = "127.0.0.1"
		}
	}
	if e.socket != "" {
		e.host = ""
	}
	return e
}

// String names the server without credentials: "127.0.0.1:3306" or the socket.
func (e endpoint) String() string {
	if e.socket != "" {
		return e.socket
	}
	return net.JoinHostPort(e.host, strconv.Itoa(e.port))
}

// same reports whether e and o reach the same server as the same account.
func (e endpoint) same(o endpoint) bool {
	return e.host == o.host && e.port == o.port && e.socket == o.socket && e.user == o.user
}

// open returns a connection pool on database db (may be empty). The password
// is handed to the driver in memory only.
func (e endpoint) open(db string) (*sql.DB, error) {
	c := mysql.NewConfig()
	c.User, c.Passwd, c.DBName = e.user, e.password.Reveal(), db
	if e.socket != "" {
		c.Net, c.Addr = "unix", e.socket
	} else {
		c.Net, c.Addr = "tcp", net.JoinHostPort(e.host, strconv.Itoa(e.port))
	}
	c.Timeout = 15 * time.Second
	c.InterpolateParams = true
	conn, err := mysql.NewConnector(c)
	if err != nil {
		return nil, fmt.Errorf("configure connection to %s: %w", e, err)
	}
	h := sql.OpenDB(conn)
	h.SetMaxOpenConns(4)
	return h, nil
}

// connect opens a pool and checks that it works.
func (e endpoint) connect(ctx context.Context, db string) (*sql.DB, error) {
	h, err := e.open(db)
	if err != nil {
		return nil, err
	}
	if err := h.PingContext(ctx); err != nil {
		h.Close()
		return nil, fmt.Errorf("connect to mysql server %s as %s: %w", e, e.user, err)
	}
	return h, nil
}

// connArgs are the tool arguments that name the server and account. They
// come after the option file on the command line, so they win over anything
// a my.cnf says.
func (e endpoint) connArgs() []string {
	args := []string{"--user=" + e.user}
	if e.socket != "" {
		return append(args, "--protocol=SOCKET", "--socket="+e.socket)
	}
	return append(args, "--protocol=TCP", "--host="+e.host, "--port="+strconv.Itoa(e.port))
}

// optionFile writes the password into a 0600 option file in a private
// directory and returns the --defaults-extra-file argument, which must be the
// tool's first argument, and a function that removes the file. Without a
// password it returns no argument: the tools then read ~/.my.cnf as usual.
//
// The MySQL tools read ~/.my.cnf after this file, so a password in the
// [client] group of the lifeboat user's ~/.my.cnf would win over this one.
func (e endpoint) optionFile() ([]string, func(), error) {
	if !e.password.IsSet() {
		return nil, func() {}, nil
	}
	dir, err := os.MkdirTemp("", "lifeboat-mysql-")
	if err != nil {
		return nil, nil, fmt.Errorf("create private directory for the mysql option file: %w", err)
	}
	remove := func() { os.RemoveAll(dir) } // MkdirTemp made it 0700
	p := filepath.Join(dir, "client.cnf")
	body := "[client]\npassword=" + optionValue(e.password.Reveal()) + "\n"
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		remove()
		return nil, nil, fmt.Errorf("write mysql option file: %w", err)
	}
	return []string{"--defaults-extra-file=" + p}, remove, nil
}

// optionValue quotes v for a MySQL option file: double quotes, with the
// escapes the option file reader understands (mysys my_default.c).
func optionValue(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\b", `\b`)
	return `"` + r.Replace(v) + `"`
}

// quoteIdent quotes a MySQL identifier.
func quoteIdent(name string) string {
	return "`" + strings.ReplaceAll(name, "`", "``") + "`"
}
