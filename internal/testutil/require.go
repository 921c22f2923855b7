// Package testutil holds helpers shared by tests that start real servers.
// Each server has its own subpackage (pgtest, mysqltest, miniotest, sftptest).
package testutil

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// Required reports whether the component must be present: in CI, or when
// LIFEBOAT_TEST_REQUIRE lists it ("pg,mysql,minio,sftp,smtp" or "all").
func Required(component string) bool {
	req := os.Getenv("LIFEBOAT_TEST_REQUIRE")
	if req == "" && os.Getenv("CI") != "" {
		req = "all"
	}
	for _, c := range strings.Split(req, ",") {
		c = strings.TrimSpace(c)
		if c == "all" || c == component {
			return true
		}
	}
	return false
}

// Missing skips the test locally, or fails it when the component is required
// (in CI a test whose component is missing must fail, not skip).
func Missing(t testing.TB, component, why string) {
	t.Helper()
	if Required(component) {
		t.Fatalf("%s is required here but unavailable: %s (run the README's test command, which installs it)", component, why)
	}
	t.Skipf("%s unavailable: %s (set LIFEBOAT_TEST_REQUIRE=%s to make this a failure)", component, why, component)
}

// LookPath finds a program for component or calls Missing.
func LookPath(t testing.TB, component, program string, dirs ...string) string {
	t.Helper()
	for _, d := range dirs {
		p := d + "/" + program
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	p, err := exec.LookPath(program)
	if err != nil {
		Missing(t, component, program+" not found")
	}
	return p
}
