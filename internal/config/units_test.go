package config

import (
	"testing"
	"time"
)

func TestDurations(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		out  string
	}{
		{"90s", 90 * time.Second, "1m30s"},
		{"6h", 6 * time.Hour, "6h"},
		{"30d", 30 * 24 * time.Hour, "30d"},
		{"2w", 14 * 24 * time.Hour, "14d"},
		{"1d12h", 36 * time.Hour, "1d12h"},
		{"1h30m", 90 * time.Minute, "1h30m"},
	} {
		got, err := ParseDuration(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
		if s := FormatDuration(got); s != c.out {
			t.Errorf("FormatDuration(%v) = %q, want %q", got, s, c.out)
		}
	}
	for _, bad := range []string{"", "soon", "d", "3x"} {
		if _, err := ParseDuration(bad); err == nil && bad != "" {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int64{"1MB": 1e6, "512KiB": 512 << 10, "2 GiB": 2 << 30, "100": 100, "1.5kB": 1500} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"lots", "1XB", "-1MB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestDotenv(t *testing.T) {
	env := []byte("# comment\nexport DB_URL=postgres://x\nPASSWORD=\"a b\\\"c\"\nTOKEN='single' \nPLAIN=value # trailing\n")
	for k, want := range map[string]string{"DB_URL": "postgres://x", "PASSWORD": `a b"c`, "TOKEN": "single", "PLAIN": "value"} {
		if got, ok := lookupDotenv(env, k); !ok || got != want {
			t.Errorf("%s = %q, %v; want %q", k, got, ok, want)
		}
	}
	if _, ok := lookupDotenv(env, "MISSING"); ok {
		t.Error("found a missing key")
	}
}

func TestSecretRedacts(t *testing.T) {
	s := Secret{ref: "${env:X}", value: "hunter2"}
	for _, out := range []string{s.String(), s.GoString(), s.LogValue().String()} {
		if out != "[redacted ${env:X}]" {
			t.Errorf("secret printed as %q", out)
		}
	}
	if b, _ := s.MarshalJSON(); string(b) != `"[redacted ${env:X}]"` {
		t.Errorf("secret JSON %s", b)
	}
}
