// Package schedule computes when a recurring action runs.
//
// It is pure: nothing here reads the clock. Callers pass the times they
// care about ([Schedule.Next], [Schedule.Prev]) and a random source for
// jitter ([Jitter]), so the daemon and its tests can run on a fake clock.
//
// # Syntax
//
// A schedule is one of:
//
//   - a cron expression with 5 fields (minute hour day-of-month month
//     day-of-week) or 6 fields (a leading seconds field): "30 2 * * *",
//     "0 */15 * * * *". Names (JAN, MON), ranges, steps and lists work as in
//     crontab(5). When both day-of-month and day-of-week are restricted, a
//     day matching either runs (crontab's rule).
//   - a descriptor: @yearly (@annually), @monthly, @weekly, @daily
//     (@midnight), @hourly.
//   - an interval: "every 6h", "every 90m", "every 1d" (also "@every 6h").
//     Runs fall on whole multiples of the interval counted from
//     1970-01-01T00:00:00Z, so "every 6h" runs at 00:00, 06:00, 12:00 and
//     18:00 UTC whatever the time zone, across restarts and DST changes.
//
// A cron expression or descriptor may start with "CRON_TZ=Area/City " (or
// "TZ="), which is the same as the `timezone:` key; giving both with
// different zones is an error. Without either, the caller's default zone
// applies (the host's local zone in the daemon).
//
// # Daylight saving time
//
// Cron fields are wall-clock times in the schedule's zone. On the days the
// clocks change:
//
//   - A time that does not exist (spring forward: 02:30 in Europe/Berlin on
//     the last Sunday of March, when 02:00 CET jumps to 03:00 CEST) runs once,
//     at the first instant after the gap: 03:00 CEST. Every slot inside the
//     gap collapses into that single run. This is Vixie cron's rule ("run
//     immediately after the change"); robfig/cron silently skips such days,
//     which would lose a daily backup once a year.
//   - A time that exists twice (fall back: 02:30 on the last Sunday of
//     October happens in CEST and again in CET) runs once, at its first
//     occurrence (02:30 CEST). An hourly job therefore has a two-hour gap
//     that night; use "every 1h" for a constant interval.
//
// # Why not gocron
//
// The syntax is parsed by github.com/robfig/cron/v3's parser, which is what
// gocron/v2 uses inside, so expressions mean the same as in gocron. The
// evaluation (next and previous run, DST policy) is our own: the daemon needs
// Prev to detect runs missed while it was down, persistent last-run times,
// per-source locks shared across hosts, and a fake clock in tests, none of
// which gocron's job runner offers, and robfig's own Next skips DST gaps.
package schedule
