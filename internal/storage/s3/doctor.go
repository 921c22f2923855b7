package s3

import (
	"context"
	"fmt"
	"strings"

	"github.com/minio/minio-go/v7"

	"github.com/lifeboat-backup/lifeboat/internal/doctor"
)

var _ doctor.Checker = (*Store)(nil)

// Doctor implements doctor.Checker. It checks that the bucket is reachable
// with the credentials, that the key may list it, and, when object_lock is
// configured, that the bucket has object lock and versioning on. It writes
// nothing: whether the key may write is only known at the first backup (a
// probe object would be kept by object lock, and S3 has no dry-run write).
func (s *Store) Doctor(ctx context.Context) []doctor.Finding {
	subject := "storage " + s.name
	f := func(l doctor.Level, hint, format string, args ...any) doctor.Finding {
		return doctor.Finding{Level: l, Subject: subject, Msg: fmt.Sprintf(format, args...), Hint: hint}
	}
	var out []doctor.Finding

	ok, err := s.client.BucketExists(ctx, s.bucket)
	switch {
	case err != nil:
		return append(out, f(doctor.Fail, s.accessHint(err),
			"cannot reach bucket %q at %s: %v", s.bucket, s.endpoint, err))
	case !ok:
		hint := "create it (with object lock: `mc mb --with-lock`, or --object-lock-enabled-for-bucket with the AWS CLI), or fix bucket:"
		if s.lock == nil {
			hint = "create it (`mc mb`, `aws s3 mb`), or fix bucket:"
		}
		return append(out, f(doctor.Fail, hint, "bucket %q does not exist at %s", s.bucket, s.endpoint))
	}
	out = append(out, f(doctor.OK, "", "bucket %q is reachable at %s", s.bucket, s.endpoint))

	lctx, cancel := context.WithCancel(ctx)
	var listErr error
	for o := range s.client.ListObjects(lctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix, Recursive: true, MaxKeys: 1}) {
		listErr = o.Err
		break
	}
	cancel()
	if listErr != nil {
		out = append(out, f(doctor.Fail, s.accessHint(listErr), "cannot list %s: %v", s, listErr))
	} else {
		out = append(out, f(doctor.OK, "", "can list %s (write access is not probed: the first backup shows it)", s))
	}

	out = append(out, s.doctorLock(ctx, f)...)
	return out
}

func (s *Store) doctorLock(ctx context.Context, f func(doctor.Level, string, string, ...any) doctor.Finding) []doctor.Finding {
	state, mode, validity, unit, err := s.client.GetObjectLockConfig(ctx, s.bucket)
	enabled := err == nil && state == "Enabled"
	if s.lock == nil {
		if enabled {
			return []doctor.Finding{f(doctor.OK, "", "bucket %q has object lock; lifeboat sets no retention itself (object_lock is not configured)", s.bucket)}
		}
		return []doctor.Finding{f(doctor.Warn,
			"set object_lock: {mode: compliance, days: N} on a bucket created with object lock, so that stolen credentials cannot delete backups",
			"backups in %s can be deleted by anyone holding a key that may delete", s)}
	}
	var out []doctor.Finding
	if !enabled {
		why := "it is off"
		if err != nil && !isCode(err, "ObjectLockConfigurationNotFoundError", "NoSuchObjectLockConfiguration") {
			why = err.Error()
		}
		out = append(out, f(doctor.Fail,
			"object lock can only be turned on when a bucket is created: make a new bucket with it (`mc mb --with-lock`, or `aws s3api create-bucket --object-lock-enabled-for-bucket`) and point bucket: at it, or remove object_lock",
			"object_lock is configured but bucket %q has no object lock (%s): backups would be written without retention", s.bucket, why))
	} else {
		def := ""
		if mode != nil && validity != nil && unit != nil {
			def = fmt.Sprintf(" (bucket default: %s %d %s)", strings.ToLower(mode.String()), *validity, strings.ToLower(unit.String()))
		}
		out = append(out, f(doctor.OK, "", "bucket %q has object lock%s; lifeboat writes %s retention of %d days",
			s.bucket, def, strings.ToLower(string(s.lock.mode)), s.lock.days))
	}
	v, err := s.client.GetBucketVersioning(ctx, s.bucket)
	switch {
	case err != nil:
		out = append(out, f(doctor.Fail, s.accessHint(err), "cannot read versioning of bucket %q: %v", s.bucket, err))
	case !v.Enabled():
		out = append(out, f(doctor.Fail,
			"object lock needs versioning on: `mc version enable ALIAS/"+s.bucket+"` or `aws s3api put-bucket-versioning --versioning-configuration Status=Enabled`",
			"versioning of bucket %q is %q", s.bucket, v.Status))
	default:
		out = append(out, f(doctor.OK, "", "versioning of bucket %q is on", s.bucket))
	}
	if s.lock.mode == minio.Governance {
		out = append(out, f(doctor.Warn,
			"use mode: compliance if nobody must be able to shorten retention",
			"governance mode: a key with s3:BypassGovernanceRetention can still delete locked backups"))
	}
	return out
}

func (s *Store) accessHint(err error) string {
	resp := errResponse(err)
	switch {
	case resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch":
		return "check access_key and secret_key (or the AWS credentials in the environment)"
	case resp.Code == "AccessDenied" || resp.StatusCode == 403:
		return "the key lacks permission on this bucket: grant s3:ListBucket, s3:GetObject, s3:PutObject (and for prune s3:DeleteObject, s3:DeleteObjectVersion)"
	case resp.StatusCode == 0:
		return "check endpoint:, the network, and for TLS problems ca_file: or insecure:"
	}
	return "check endpoint:, region: and bucket:"
}
