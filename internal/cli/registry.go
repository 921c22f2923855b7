package cli

import (
	"context"
	"github.com/lifeboat-backup/lifeboat/internal/notify"
	"github.com/lifeboat-backup/lifeboat/internal/notify/email"
	"github.com/lifeboat-backup/lifeboat/internal/notify/healthchecks"
	"github.com/lifeboat-backup/lifeboat/internal/notify/slack"
	"github.com/lifeboat-backup/lifeboat/internal/notify/webhook"
	agestage "github.com/lifeboat-backup/lifeboat/internal/pipeline/age"

	"github.com/lifeboat-backup/lifeboat/internal/config"
	"github.com/lifeboat-backup/lifeboat/internal/source"
	"github.com/lifeboat-backup/lifeboat/internal/source/files"
	"github.com/lifeboat-backup/lifeboat/internal/source/mysql"
	"github.com/lifeboat-backup/lifeboat/internal/source/postgres"
	"github.com/lifeboat-backup/lifeboat/internal/source/sqlite"
	"github.com/lifeboat-backup/lifeboat/internal/storage"
	"github.com/lifeboat-backup/lifeboat/internal/storage/local"
	"github.com/lifeboat-backup/lifeboat/internal/storage/s3"
	"github.com/lifeboat-backup/lifeboat/internal/storage/sftp"
)

// sourceKind builds one type of source.
type sourceKind struct {
	spec func() config.Spec
	open func(spec config.Spec, d source.Deps) (source.Source, error)
}

// storageKind builds one type of storage.
type storageKind struct {
	spec func() config.Spec
	open func(ctx context.Context, name string, spec config.Spec, opt storage.Options) (storage.Storage, error)
}

// The one place backends are listed. Adding a backend is one entry here.
func sourceKinds() map[string]sourceKind {
	return map[string]sourceKind{
		"sqlite": {
			spec: func() config.Spec { return &sqlite.Config{} },
			open: func(s config.Spec, d source.Deps) (source.Source, error) { return sqlite.New(s.(*sqlite.Config), d) },
		},
		"postgres": {
			spec: func() config.Spec { return &postgres.Config{} },
			open: func(s config.Spec, d source.Deps) (source.Source, error) {
				return postgres.Open(s.(*postgres.Config), d)
			},
		},
		"mysql": {
			spec: func() config.Spec { return &mysql.Config{} },
			open: func(s config.Spec, d source.Deps) (source.Source, error) { return mysql.New(s.(*mysql.Config), d) },
		},
		"files": {
			spec: func() config.Spec { return &files.Config{} },
			open: func(s config.Spec, d source.Deps) (source.Source, error) { return files.New(s.(*files.Config), d) },
		},
	}
}

func storageKinds() map[string]storageKind {
	return map[string]storageKind{
		"local": {
			spec: func() config.Spec { return &local.Config{} },
			open: func(ctx context.Context, name string, s config.Spec, opt storage.Options) (storage.Storage, error) {
				return local.New(name, config.Abs(opt.Dir, s.(*local.Config).Path))
			},
		},
		"s3": {
			spec: func() config.Spec { return s3.DefaultConfig() },
			open: func(ctx context.Context, name string, s config.Spec, opt storage.Options) (storage.Storage, error) {
				st, err := s3.New(ctx, name, s.(*s3.Config), opt)
				if err != nil {
					return nil, err // not a typed nil
				}
				return st, nil
			},
		},
		"sftp": {
			spec: func() config.Spec { return sftp.DefaultConfig() },
			open: func(ctx context.Context, name string, s config.Spec, opt storage.Options) (storage.Storage, error) {
				return sftp.New(ctx, name, s.(*sftp.Config), opt)
			},
		},
	}
}

// notifierKinds returns the notifier config types; notifierFactories builds them.
func notifierKinds() map[string]func() config.Spec {
	return map[string]func() config.Spec{
		"email":        func() config.Spec { return email.DefaultConfig() },
		"slack":        func() config.Spec { return slack.DefaultConfig() },
		"webhook":      func() config.Spec { return webhook.DefaultConfig() },
		"healthchecks": func() config.Spec { return healthchecks.DefaultConfig() },
	}
}

func notifierFactories() map[string]notify.Factory {
	return map[string]notify.Factory{
		"email":        notify.Typed(email.New),
		"slack":        notify.Typed(slack.New),
		"webhook":      notify.Typed(webhook.New),
		"healthchecks": notify.Typed(healthchecks.New),
	}
}

func configRegistry() config.Registry {
	reg := config.Registry{Sources: map[string]func() config.Spec{}, Storages: map[string]func() config.Spec{}, Notifiers: notifierKinds(),
		Recipient: func(r string) error { _, err := agestage.ParseRecipient(r); return err }}
	for k, v := range sourceKinds() {
		reg.Sources[k] = v.spec
	}
	for k, v := range storageKinds() {
		reg.Storages[k] = v.spec
	}
	return reg
}
