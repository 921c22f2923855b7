package checks

import (
	"strings"
	"testing"

	"github.com/lifeboat-backup/lifeboat/internal/catalog"
	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/source"
)

func man(plain, stored int64, rows map[string]int64) *catalog.Manifest {
	return &catalog.Manifest{PlainSize: plain, StoredSize: stored, Meta: source.Meta{RowCounts: rows}}
}

func TestEvaluate(t *testing.T) {
	all := &config.Checks{MinSize: 1_000_000, MaxShrink: 20, MaxGrowth: 300, MaxRowDrop: 10}
	tests := []struct {
		name      string
		c         *config.Checks
		cur, prev *catalog.Manifest
		// failed lists the failed checks as "name: substring of detail".
		failed []string
		ran    int
	}{
		{name: "no checks configured", c: nil, cur: man(1, 1, nil), prev: man(100, 100, nil)},
		{name: "first backup: only min_size", c: all, cur: man(2_000_000, 500_000, nil), ran: 1},
		{name: "first backup too small", c: all, cur: man(999, 100, nil), ran: 1,
			failed: []string{"min_size: dump is 999 B, minimum 1.0 MB"}},
		{name: "steady", c: all, cur: man(10_000_000, 3_000_000, map[string]int64{"public.orders": 1000}),
			prev: man(9_900_000, 2_990_000, map[string]int64{"public.orders": 990}), ran: 4},
		{name: "dump shrinks by 50%", c: all, cur: man(5_000_000, 1_500_000, nil), prev: man(10_000_000, 3_000_000, nil), ran: 3,
			failed: []string{"max_shrink: dump size 10.0 MB -> 5.0 MB (-50%), stored size 3.0 MB -> 1.5 MB (-50%), limit -20%"}},
		{name: "shrink of exactly the limit passes", c: all, cur: man(8_000_000, 2_400_000, nil), prev: man(10_000_000, 3_000_000, nil), ran: 3},
		{name: "only stored size shrank", c: all, cur: man(10_000_000, 1_000_000, nil), prev: man(10_000_000, 3_000_000, nil), ran: 3,
			failed: []string{"max_shrink: stored size 3.0 MB -> 1.0 MB (-67%), limit -20%"}},
		{name: "growth beyond 300%", c: all, cur: man(50_000_000, 15_000_000, nil), prev: man(10_000_000, 3_000_000, nil), ran: 3,
			failed: []string{"max_growth: dump size 10.0 MB -> 50.0 MB (+400%)"}},
		{name: "growth to four times passes", c: all, cur: man(40_000_000, 12_000_000, nil), prev: man(10_000_000, 3_000_000, nil), ran: 3},
		{name: "previous recorded no size", c: &config.Checks{MaxShrink: 20}, cur: man(10, 10, nil), prev: man(0, 0, nil), ran: 1},
		{name: "a table lost rows", c: all,
			cur:  man(10_000_000, 3_000_000, map[string]int64{"public.orders": 400, "public.users": 100}),
			prev: man(10_000_000, 3_000_000, map[string]int64{"public.orders": 1000, "public.users": 100}), ran: 4,
			failed: []string{"max_row_drop: table public.orders: 1000 -> 400 rows (-60%), limit -10%"}},
		{name: "a table disappeared", c: &config.Checks{MaxRowDrop: 10},
			cur:  man(1, 1, map[string]int64{"users": 5}),
			prev: man(1, 1, map[string]int64{"users": 5, "orders": 7}), ran: 1,
			failed: []string{"max_row_drop: table orders: missing (had 7 rows)"}},
		{name: "two tables lost rows: both named", c: &config.Checks{MaxRowDrop: 10},
			cur:  man(1, 1, map[string]int64{"a": 0, "b": 50, "c": 95}),
			prev: man(1, 1, map[string]int64{"a": 10, "b": 100, "c": 100}), ran: 2,
			failed: []string{"max_row_drop: table a: 10 -> 0 rows (-100%)", "max_row_drop: table b: 100 -> 50 rows (-50%)"}},
		{name: "empty table before is not compared", c: &config.Checks{MaxRowDrop: 10},
			cur: man(1, 1, map[string]int64{}), prev: man(1, 1, map[string]int64{"a": 0}), ran: 1},
		{name: "previous had no row counts", c: &config.Checks{MaxRowDrop: 10},
			cur: man(1, 1, map[string]int64{"a": 1}), prev: man(1, 1, nil), ran: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Evaluate(tt.c, tt.cur, tt.prev)
			if len(got) != tt.ran {
				t.Errorf("ran %d checks, want %d: %+v", len(got), tt.ran, got)
			}
			failed := Failed(got)
			if len(failed) != len(tt.failed) {
				t.Fatalf("failed = %+v, want %q", failed, tt.failed)
			}
			for i, f := range failed {
				s := f.Name + ": " + f.Detail
				if !strings.Contains(s, tt.failed[i]) {
					t.Errorf("failed[%d] = %q, want it to contain %q", i, s, tt.failed[i])
				}
			}
		})
	}
}

func TestSummary(t *testing.T) {
	cs := Evaluate(&config.Checks{MaxShrink: 20, MaxRowDrop: 10},
		man(5_000_000, 1_000_000, map[string]int64{"public.orders": 400}),
		man(10_000_000, 2_000_000, map[string]int64{"public.orders": 1000}))
	got := Summary(cs)
	for _, want := range []string{"max_shrink: dump size 10.0 MB -> 5.0 MB (-50%)", "table public.orders: 1000 -> 400 rows (-60%)"} {
		if !strings.Contains(got, want) {
			t.Errorf("Summary = %q, want it to contain %q", got, want)
		}
	}
	if s := Summary(Evaluate(&config.Checks{MaxShrink: 20}, man(10, 10, nil), man(10, 10, nil))); s != "" {
		t.Errorf("Summary of passing checks = %q, want empty", s)
	}
}

func TestFormat(t *testing.T) {
	for _, tt := range []struct {
		got, want string
	}{
		{Percent(-60), "-60%"}, {Percent(400), "+400%"}, {Percent(-0.5), "-0.5%"}, {Percent(0), "+0%"},
		{Percent(-66.666), "-67%"}, {Bytes(999), "999 B"}, {Bytes(1_500_000), "1.5 MB"}, {Bytes(2 << 30), "2.1 GB"},
	} {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
