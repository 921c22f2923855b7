package mysqltest

import (
	"database/sql"
	"testing"

	_ "github.com/go-sql-driver/mysql"
)

func TestStart(t *testing.T) {
	s := Start(t)
	s.CreateDB(t, "shop")
	s.Exec(t, "shop", "CREATE TABLE t (id INT PRIMARY KEY); INSERT INTO t VALUES (1), (2)")
	s.CreateUser(t, "reader", `p"w#d\x`, "SELECT ON shop.*")

	db, err := sql.Open("mysql", s.UserDSN("reader", `p"w#d\x`, "shop"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("count = %d, %v", n, err)
	}
	if _, err := db.Exec("INSERT INTO t VALUES (3)"); err == nil {
		t.Fatal("reader could insert")
	}
	var port int
	if err := s.DB(t, "").QueryRow("SELECT @@port").Scan(&port); err != nil || port != s.Port {
		t.Fatalf("port = %d, %v; want %d", port, err, s.Port)
	}
}
