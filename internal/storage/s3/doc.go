// Package s3 stores backups in S3-compatible object storage (AWS S3, MinIO,
// Backblaze B2, Cloudflare R2, Wasabi, Ceph, ...).
//
// # Uploads
//
// [Store.Put] streams a backup of unknown length as a multipart upload in
// parts of part_size, at most parallel_parts of them in flight, so memory is
// bounded by about (parallel_parts+1) × part_size whatever the size of the
// backup. A stream shorter than one part is sent as a single PUT. The object
// becomes visible only when the upload is completed; on a reader error or a
// cancelled context the multipart upload is aborted (with a fresh context,
// since the caller's is usually the one that was cancelled). A process killed
// mid-upload leaves an incomplete upload that [Store.AbortIncomplete] (run by
// prune) removes.
//
// Put never replaces an existing object: it checks with a HEAD first (to
// fail before uploading gigabytes) and sends If-None-Match: * on the request
// that commits the object, so a concurrent writer of the same key loses with
// an error instead of overwriting (AWS since 2024 and MinIO honour it; a
// server that ignores the header leaves only the HEAD check, which races).
//
// # Retries
//
// Only requests whose body we still hold are retried: single parts, small
// objects, HEAD, GET and LIST, on 5xx/429 answers and network errors, with
// exponential backoff. The streaming Put as a whole is never retried (the
// stream can't be rewound); a download whose body breaks mid-way resumes with
// a Range request from the current offset. minio-go's own retry loop is
// turned off so that there is exactly one, visible (logged) retry policy.
//
// # Object lock
//
// With object_lock configured, every object is written with retention
// mode and retain-until date (now + days). The bucket must have been created
// with object lock (which implies versioning); [Store.Doctor] checks that.
// [Store.Delete] removes every version of a key, so that a deleted backup
// is really gone on a versioned bucket, and reports a locked version with an
// error wrapping [storage.ErrLocked].
package s3
