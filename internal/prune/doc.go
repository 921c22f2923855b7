// Package prune removes the backups a source's keep policy no longer keeps,
// and the garbage interrupted runs leave behind.
//
// # Plan, then execute
//
// [NewPlan] reads every storage of a source and decides, for each backup
// (grouped by id across storages, one timeline per part), keep or delete with
// the rules that keep it (package retention). [Plan.Actions] lists, in order,
// every deletion the plan makes; `prune --dry-run` prints exactly that list
// and [Execute] performs exactly that list. For each deleted backup and each
// storage holding it, the artifact goes first, then its manifest, then its
// drill reports: a locked or failing artifact leaves the backup listed and
// whole, and an interruption leaves at worst a manifest whose artifact is
// gone, which the next prune finishes.
//
// # Garbage
//
// Objects under the source's folder named like one of its artifacts but with
// no manifest, and drill reports whose backup is gone, are garbage once older
// than a safety age (24h by default; younger ones may belong to a backup in
// progress). So are temporary files a storage leaves behind (local ".part"
// files through [Partials], SFTP ones through [RemotePartials]) and
// unfinished uploads (S3 multipart uploads, through [IncompleteAborter]). An
// object whose manifest exists but cannot be read is never garbage: it is
// reported and kept.
//
// # Safety
//
// A plan deletes nothing, and says why, when:
//
//   - the source's newest good backup is older than its rpo (or there is
//     none): backups are failing, and pruning now could leave nothing to
//     restore. This is [ErrOverdue], an alert, not a routine message.
//   - clocks disagree ([ErrClock]): a manifest's time differs from the time
//     the storage itself recorded for it by more than a tolerance (1h by
//     default), a manifest is dated in the future, or a backup with a higher
//     sequence number is dated earlier than one with a lower sequence number
//     by more than the tolerance. Retention would otherwise act on wrong
//     ages. --trust-clock overrides this rule (the disagreement is still
//     reported).
//
// Whatever the rules say, the newest good backup of each part is kept (see
// retention.Good: not suspect, and its newest drill, if any, passed), and the
// plan is checked for it before anything is deleted. A deletion refused
// because of an object lock (storage.ErrLocked) is reported as "kept by
// lock", not as an error.
package prune
