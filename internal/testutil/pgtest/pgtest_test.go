package pgtest_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/lifeboat-backup/lifeboat/internal/testutil/pgtest"
)

func TestStart(t *testing.T) {
	s := pgtest.Start(t)
	s.CreateDB(t, "app")
	s.Exec(t, "app", "CREATE TABLE t (id int); INSERT INTO t VALUES (1), (2)")
	var n int
	s.QueryRow(t, "app", "SELECT count(*) FROM t", &n)
	if n != 2 {
		t.Fatalf("count = %d, want 2", n)
	}

	// The same server over the unix socket.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.SocketURL("app"))
	if err != nil {
		t.Fatalf("connect over the socket: %v", err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("count over socket = %d, %v", n, err)
	}

	// A role with a password needs it over TCP.
	s.CreateRole(t, "reader", "s3cret")
	if c, err := pgx.Connect(ctx, s.UserURL("reader", "", "app")); err == nil {
		c.Close(ctx)
		t.Fatal("connect without a password succeeded, want refused")
	}
	c, err := pgx.Connect(ctx, s.UserURL("reader", "s3cret", "app"))
	if err != nil {
		t.Fatalf("connect with the password: %v", err)
	}
	c.Close(ctx)

	if got := s.SchemaDump(t, "app"); got == "" {
		t.Fatal("empty schema dump")
	}
}
