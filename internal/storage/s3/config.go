package s3

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/lifeboat-backup/lifeboat/internal/config"
)

// Defaults and limits of the part size. S3 needs parts of at least 5 MiB
// (except the last) and at most 10,000 of them, so the part size caps the
// object size: 16 MiB parts allow 156 GiB.
const (
	DefaultPartSize      = 16 << 20
	MinPartSize          = 5 << 20
	MaxPartSize          = 5 << 30
	DefaultParallelParts = 2
	maxParallelParts     = 32
	maxParts             = 10000
	defaultEndpoint      = "s3.amazonaws.com"
)

// Config is the `type: s3` storage configuration.
//
//	storages:
//	  offsite:
//	    type: s3
//	    endpoint: s3.eu-central-1.amazonaws.com   # default s3.amazonaws.com
//	    region: eu-central-1
//	    bucket: acme-backups
//	    prefix: lifeboat
//	    access_key: ${env:S3_ACCESS_KEY}
//	    secret_key: ${env:S3_SECRET_KEY}
//	    object_lock: {mode: compliance, days: 30}
//	    prune_credentials:
//	      access_key: ${env:S3_PRUNE_ACCESS_KEY}
//	      secret_key: ${env:S3_PRUNE_SECRET_KEY}
type Config struct {
	// Endpoint is host[:port] or a URL (http:// implies insecure).
	Endpoint string `yaml:"endpoint"`
	Region   string `yaml:"region"`
	Bucket   string `yaml:"bucket"`
	// Prefix is prepended to every key ("lifeboat" stores "lifeboat/KEY").
	Prefix string `yaml:"prefix"`
	// AccessKey and SecretKey; when both are absent the standard AWS chain is
	// used: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, then
	// the shared credentials file (~/.aws/credentials, AWS_PROFILE), then
	// the instance/container role (IAM).
	AccessKey config.Secret `yaml:"access_key"`
	SecretKey config.Secret `yaml:"secret_key"`
	// PathStyle addresses buckets as endpoint/bucket instead of
	// bucket.endpoint (MinIO, most self-hosted servers).
	PathStyle bool `yaml:"path_style"`
	// Insecure talks plain HTTP.
	Insecure bool `yaml:"insecure"`
	// CAFile is a PEM file of extra CAs to trust (self-signed servers),
	// relative to the config file's folder.
	CAFile string `yaml:"ca_file"`
	// PartSize is the multipart chunk size; memory use is about
	// (ParallelParts+1) × PartSize.
	PartSize config.Size `yaml:"part_size"`
	// ParallelParts is how many parts are uploaded at once.
	ParallelParts int `yaml:"parallel_parts"`
	// ObjectLock, when set, gives every object a retention period.
	ObjectLock *ObjectLock `yaml:"object_lock"`
	// PruneCredentials are used by prune (storage.Options.Prune), which
	// deletes; backup runs only need to list, read and write.
	PruneCredentials *Credentials `yaml:"prune_credentials"`
}

// ObjectLock is the retention given to each object written.
type ObjectLock struct {
	// Mode is governance (users with s3:BypassGovernanceRetention may still
	// delete) or compliance (nobody can, not even the root account).
	Mode string `yaml:"mode"`
	Days int    `yaml:"days"`
}

// Credentials is an access key pair.
type Credentials struct {
	AccessKey config.Secret `yaml:"access_key"`
	SecretKey config.Secret `yaml:"secret_key"`
}

// DefaultConfig returns a Config with the defaults filled in, to decode the
// YAML over.
func DefaultConfig() *Config {
	return &Config{
		Endpoint:      defaultEndpoint,
		PartSize:      DefaultPartSize,
		ParallelParts: DefaultParallelParts,
	}
}

// Validate implements config.Spec.
func (c *Config) Validate() error {
	var errs []error
	add := func(field, hint, format string, args ...any) {
		errs = append(errs, config.Errorf(field, hint, format, args...))
	}
	if c.Bucket == "" {
		add("bucket", "for example `bucket: acme-backups`", "bucket is required")
	} else if strings.ContainsAny(c.Bucket, "/ ") {
		add("bucket", "give the bucket name only; put folders in prefix:", "bucket %q is not a bucket name", c.Bucket)
	}
	if _, _, err := parseEndpoint(c.Endpoint, c.Insecure); err != nil {
		add("endpoint", "use host:port (s3.eu-central-1.amazonaws.com, minio.internal:9000) or a URL such as https://host:port", "%v", err)
	}
	if c.AccessKey.IsSet() != c.SecretKey.IsSet() {
		field := "secret_key"
		if !c.AccessKey.IsSet() {
			field = "access_key"
		}
		add(field, "give both access_key and secret_key, or neither to use the AWS environment, ~/.aws/credentials or the instance role",
			"%s is missing", field)
	}
	if c.CAFile != "" && c.Insecure {
		add("ca_file", "remove insecure: true to use TLS with this CA, or remove ca_file", "ca_file has no effect with insecure: true")
	}
	if c.PartSize != 0 && (c.PartSize < MinPartSize || c.PartSize > MaxPartSize) {
		add("part_size", "use a size between 5MiB and 5GiB, such as 16MiB or 64MiB",
			"part_size %d is outside what S3 accepts", int64(c.PartSize))
	}
	if c.ParallelParts < 0 || c.ParallelParts > maxParallelParts {
		add("parallel_parts", fmt.Sprintf("use 1 to %d; memory use is about (parallel_parts+1) × part_size", maxParallelParts),
			"parallel_parts %d is out of range", c.ParallelParts)
	}
	if l := c.ObjectLock; l != nil {
		if _, err := retentionMode(l.Mode); err != nil {
			add("object_lock.mode", "use governance or compliance", "%v", err)
		}
		if l.Days < 1 {
			add("object_lock.days", "for example `days: 30`; it should cover your retention policy", "object_lock.days must be at least 1")
		}
	}
	if p := c.PruneCredentials; p != nil {
		if !p.AccessKey.IsSet() {
			add("prune_credentials.access_key", "for example `access_key: ${env:S3_PRUNE_ACCESS_KEY}`", "prune_credentials.access_key is missing")
		}
		if !p.SecretKey.IsSet() {
			add("prune_credentials.secret_key", "for example `secret_key: ${env:S3_PRUNE_SECRET_KEY}`", "prune_credentials.secret_key is missing")
		}
	}
	return errors.Join(errs...)
}

// parseEndpoint returns the host[:port] and whether to use TLS.
func parseEndpoint(ep string, insecure bool) (string, bool, error) {
	if ep == "" {
		ep = defaultEndpoint
	}
	if !strings.Contains(ep, "://") {
		if strings.ContainsAny(ep, "/?#") {
			return "", false, fmt.Errorf("endpoint %q: a path is not allowed", ep)
		}
		return ep, !insecure, nil
	}
	u, err := url.Parse(ep)
	if err != nil {
		return "", false, fmt.Errorf("endpoint %q: %v", ep, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", false, fmt.Errorf("endpoint %q: scheme must be http or https", ep)
	case u.Host == "":
		return "", false, fmt.Errorf("endpoint %q has no host", ep)
	case u.User != nil:
		return "", false, fmt.Errorf("endpoint %q: credentials in the URL are not allowed, use access_key and secret_key", u.Redacted())
	case u.Scheme == "https" && insecure:
		return "", false, fmt.Errorf("endpoint %q is https but insecure: true asks for plain HTTP; drop one", ep)
	case u.Path != "" && u.Path != "/", u.RawQuery != "":
		return "", false, fmt.Errorf("endpoint %q: a path is not allowed (put folders in prefix:)", ep)
	}
	return u.Host, u.Scheme == "https", nil
}
