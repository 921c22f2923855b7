// Package notify tells people what lifeboat did: after every run, when a
// source is overdue, and once a day in a summary.
//
// # Notifiers
//
// A [Notifier] delivers one [Event]. The kinds of notifier are subpackages
// named after what they talk to: email (SMTP), slack (incoming webhook),
// webhook (signed JSON POST) and healthchecks (healthchecks.io pings). Each
// has a typed Config decoded from its `notifiers:` entry and a New function;
// [Build] constructs all configured notifiers from an explicit map of
// [Factory] values (no init() registration).
//
// # Events
//
// A run report ([report.Run]) becomes one event per source it covers: a run
// of three sources with one failure tells the failing source's people about
// the failure and the others' about their success. The event [Kind] is
// chosen from the source's items: [RunSucceeded], [RunFailed], [RunPartial]
// (committed to some storages, failed on others), [RunSuspect] (committed,
// but a backup-time check failed), or [DrillSucceeded] / [DrillFailed] for
// drills. [Overdue] is raised by the daemon when a source's newest good
// backup is older than its RPO; [Summary] carries the daily summary.
//
// # Routing
//
// Each notifier's `on:` list selects events: failure (RunFailed, RunPartial,
// DrillFailed), success (RunSucceeded), suspect (RunSuspect), overdue,
// drill (both drill outcomes) and summary. An empty list means failure,
// suspect and overdue. A source's `notify:` list names the notifiers told
// about it; empty means all. The summary goes to the notifiers named in
// `summary.to:` and to those whose `on:` includes summary.
//
// Notifiers that follow runs from their start, like healthchecks pings,
// implement [RunFollower]: they also get [RunStarted], and their empty `on:`
// means every run outcome, so that a started check always hears the end.
//
// # Failures
//
// A notification is never part of the run's outcome: the [Dispatcher]
// retries a failing notifier with a bounded backoff, logs what happened, and
// returns. A run that succeeded stays successful when Slack is down.
//
// # Secrets
//
// Notifier URLs that carry credentials (Slack webhooks, healthchecks ping
// URLs, webhook URLs) are [config.Secret] values, revealed only to the HTTP
// request and never put into an error: errors name the scheme and host only.
// Before an event is handed to a notifier, the dispatcher replaces every
// secret value of the loaded config that occurs in its text (error messages,
// stderr tails, hook output) with "[redacted]", and masks passwords in URLs
// (scheme://user:xxxxx@host), because a tool's stderr may echo a DSN.
package notify
