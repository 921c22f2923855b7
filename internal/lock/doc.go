// Package lock is a mutual-exclusion lock kept as objects in a
// storage.Storage, so that processes on different hosts sharing one storage
// never work on the same source at once.
//
// # Objects
//
// A lock named N is a series of generations, each an object
//
//	locks/N.lock.00000000000000000042
//
// holding the [Owner] as JSON: host, pid, a random id, what it is for, when it
// was acquired and when it expires. The highest generation present is the
// lock's state. Older generations are deleted; the highest never is (a
// release writes a new "released" generation), so generation numbers only
// grow.
//
// # Protocol
//
// The only atomic operation a storage offers is [storage.Storage.Put], which
// never overwrites: putting an existing key fails with fs.ErrExist. That is
// the compare-and-set:
//
//   - Acquire lists the generations and reads the highest, g. If it is held
//     (not released, not expired), Acquire fails with a [*HeldError].
//     Otherwise it puts g+1. Of several contenders exactly one put succeeds;
//     the others see fs.ErrExist and look again.
//   - Renew puts g+1 with a later expiry. If someone else already put g+1
//     (they took over a lock they saw expire), the holder learns it has lost
//     the lock ([ErrLost]).
//   - After every successful put the writer lists again and checks that its
//     generation is the highest. This catches a put that "succeeded" only
//     because it recreated an old generation already deleted (a process that
//     read the lock, paused, and resumed after others moved on).
//   - Release puts g+1 marked released, then deletes g.
//
// A put that returns an error although it stored the object (a timeout after
// the write, a cancelled check) is recognised by reading the generation back:
// it carries the holder's random id and the write's own random token. A
// holder that finds its own earlier write in the way adopts it and moves on.
//
// # Expiry and the residual race
//
// A holder renews every TTL/4 ([Lock.Keep]) and gives up (cancels its work)
// when it has not renewed for three quarters of the TTL. Another process
// takes over only once the expiry written in the lock has passed by its own
// clock. Two processes can therefore both believe they hold the lock only if:
//
//   - their clocks differ by more than TTL/4, or
//   - the holder is frozen (SIGSTOP, a suspended VM, a stalled disk) for
//     longer than the remaining TTL and does work after waking before its
//     next renewal attempt tells it the lock is gone.
//
// The storage must give read-after-write consistency for puts and listings
// (local folders, SFTP and today's S3 do). Choose the TTL well above the
// longest expected storage hiccup; the daemon's default is 5 minutes.
package lock
