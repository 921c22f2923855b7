// Package doctor defines the findings `lifeboat doctor` prints. Sources and
// storages that can examine their own setup implement [Checker].
package doctor

import "context"

// Level is how serious a finding is.
type Level int

const (
	OK Level = iota
	Warn
	Fail
)

func (l Level) String() string {
	switch l {
	case OK:
		return "ok"
	case Warn:
		return "warn"
	}
	return "FAIL"
}

// Finding is one observation about the setup.
type Finding struct {
	Level   Level
	Subject string // "source app-db", "storage offsite"
	Msg     string // what was found
	Hint    string // what to do; empty for OK
}

// Checker is implemented by sources and storages that can check their own
// setup (credentials too powerful, object lock off, tool older than server).
// Check must not change anything.
type Checker interface {
	Doctor(ctx context.Context) []Finding
}
