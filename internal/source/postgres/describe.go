package postgres

// Describe says what the source is, for `lifeboat explain`, reading the
// config the way a backup does (paramsFromConfig). It never shows a password.
func (c *Config) Describe(dir string) string {
	p, err := paramsFromConfig(c)
	if err != nil {
		return "PostgreSQL source (" + err.Error() + ")"
	}
	what := "PostgreSQL database " + p.db()
	if c.Database == AllDatabases {
		what = "every PostgreSQL database (one artifact each, plus roles and tablespaces)"
	}
	format := "pg_dump custom format, restorable in parallel"
	if c.format() == "plain" {
		format = "pg_dump plain SQL"
	}
	return what + " on " + p.where() + " (" + format + "; row counts from the same snapshot)"
}
