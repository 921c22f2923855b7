// Package daemon runs every source's backups, drills and prunes on their
// schedules in one long-running process (`lifeboat daemon`), checks that no
// source is overdue, and sends the daily summary.
//
// The daemon consumes two interfaces it defines itself, [Runner] (does the
// work, returns run reports) and [Notifier] (tells people), plus a function
// giving the storage that holds each source's lock. The CLI adapts the job
// runner and the notification dispatcher to them ([Services]).
//
// # Tasks and slots
//
// Each scheduled action is a task: (backup, db), (drill, db), (prune, db),
// and the summary. A task's schedule yields slots (package schedule); a run
// for slot S starts at S plus a random delay below the task's jitter.
//
//   - A source never runs twice at once: within the process, a task whose
//     source is busy (a backup, drill or prune of it is running) waits in the
//     queue; across processes and hosts, each run holds the lock
//     locks/SOURCE.lock.* in the source's first storage (package lock) and
//     keeps renewing it. If another process holds the lock, the slot is
//     skipped and logged: that process is doing the work.
//   - A slot that comes while the same task is still queued or running is
//     skipped: runs of one task never overlap or pile up.
//   - At most daemon.max_parallel runs (default 1) are in progress; the
//     summary and the overdue check do not count.
//   - A backup slot is skipped, after taking the lock, when the source's
//     newest good backup started at or after the slot (another host, or a
//     manual `lifeboat backup`, already did it).
//
// # Catching up
//
// The daemon records in daemon.state_dir/daemon-state.json (written
// atomically) the latest slot each task has accounted for. On start and on
// reload, a task whose previous slot (Schedule.Prev of now) is later than
// that runs once, immediately: however many slots were missed while the
// daemon was down, one run makes up for them. A task the daemon has never
// seen starts its record at the current time and waits for its next slot.
//
// With `catch_up_pass: true`, a backup that took longer than
// Options.CatchUpPassAfter (default 5 minutes) and committed something is
// followed at once by one more run, to pick up what changed during the
// first (a six-hour copy of a bucket would otherwise miss six hours of
// uploads). The extra run does not trigger another.
//
// # Overdue
//
// Every Options.OverdueEvery (default 5 minutes) the daemon asks the runner
// for each source's newest good backup. A source with an rpo whose newest
// backup is older than the rpo (or which has none, and the daemon has been
// up for longer than the rpo) is overdue: the notifier is told once per
// overdue period, not on every check. The period ends when a newer backup
// appears; the record survives restarts, so a restart does not re-alert.
//
// # Reload and shutdown
//
// [Daemon.Reload] swaps in a new config and services. The caller validates
// first (with [Check] among others) and keeps the old config when the new
// one is invalid; Reload itself refuses a config whose schedules do not
// parse, leaving the old one running. Runs in progress finish with the
// services they started with.
//
// When Run's context ends, no new run starts. Runs in progress get
// daemon.shutdown_grace (default 1 minute) to finish; then their contexts
// are cancelled, and the job layer guarantees that nothing half-written is
// committed. Run returns once they have stopped (or after
// Options.CancelWait more).
//
// A panic in a run is recovered and recorded as a failed run whose
// StderrTail holds the Go stack.
package daemon
