package s3

import (
	"path/filepath"

	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lifeboat-backup/lifeboat/internal/storage"
)

// chooseCredentials picks the key pair: prune_credentials for prune when
// configured, else the configured keys, else the standard AWS chain read
// from opt.Env (never from the process environment directly).
func chooseCredentials(cfg *Config, opt storage.Options) *credentials.Credentials {
	if p := cfg.PruneCredentials; opt.Prune && p != nil {
		return credentials.NewStaticV4(p.AccessKey.Reveal(), p.SecretKey.Reveal(), "")
	}
	if cfg.AccessKey.IsSet() {
		return credentials.NewStaticV4(cfg.AccessKey.Reveal(), cfg.SecretKey.Reveal(), "")
	}
	env := opt.Env
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	get := func(k string) string { v, _ := env(k); return v }

	var chain []credentials.Provider
	if id, secret := get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY"); id != "" && secret != "" {
		chain = append(chain, &credentials.Static{Value: credentials.Value{
			AccessKeyID: id, SecretAccessKey: secret, SessionToken: get("AWS_SESSION_TOKEN"),
			SignerType: credentials.SignatureV4,
		}})
	}
	file := get("AWS_SHARED_CREDENTIALS_FILE")
	if home := get("HOME"); file == "" && home != "" {
		file = filepath.Join(home, ".aws", "credentials")
	}
	if file != "" {
		profile := get("AWS_PROFILE")
		if profile == "" {
			profile = "default"
		}
		chain = append(chain, &credentials.FileAWSCredentials{Filename: file, Profile: profile})
	}
	// The instance or container role. minio-go reads the container and web
	// identity variables (AWS_CONTAINER_CREDENTIALS_*, AWS_WEB_IDENTITY_*)
	// itself; they are only set where such a role exists.
	chain = append(chain, &credentials.IAM{})
	return credentials.NewChainCredentials(chain)
}
