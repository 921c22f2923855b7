package sftp

import "fmt"

// Describe says what the storage is, for `lifeboat explain`.
func (c *Config) Describe(dir string) string {
	return fmt.Sprintf("SFTP folder %s on %s@%s:%d (host key checked)", c.Path, c.User, c.Host, c.Port)
}
