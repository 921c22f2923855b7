package s3

import "fmt"

// Describe says what the storage is, for `lifeboat explain`.
func (c *Config) Describe(dir string) string {
	s := fmt.Sprintf("S3 bucket %s at %s", c.Bucket, c.Endpoint)
	if c.Prefix != "" {
		s += ", under " + c.Prefix + "/"
	}
	if c.ObjectLock != nil {
		s += fmt.Sprintf("; object lock (%s) keeps every backup undeletable for %d days", c.ObjectLock.Mode, c.ObjectLock.Days)
	} else {
		s += "; no object lock: whoever holds delete rights can remove backups"
	}
	return s
}
