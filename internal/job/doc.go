// Package job runs lifeboat's units of work: a backup of one source, a
// restore, a verify, a copy between storages. The CLI, the daemon and the
// dashboard's "run now" all call the same [Runner] methods.
//
// # Commit rule
//
// A backup is streamed once (source -> stages -> every storage). The manifest
// is written to a storage only after that storage's Put of the artifact
// succeeded, and only if the source and every stage finished cleanly. So a
// failed dump, a cancelled run or a storage that fails midway never leaves a
// listed backup behind; at worst an artifact without manifest, which prune
// removes as garbage.
package job
