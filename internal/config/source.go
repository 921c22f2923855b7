package config

// SourceCommon holds the keys every source accepts, whatever its type. The
// same struct is the `defaults:` section: a source's zero-valued field takes
// the default's value.
type SourceCommon struct {
	Storages    []string `yaml:"storages"`
	Compression string   `yaml:"compression"` // "zstd" (default), "zstd:N" (1-22), "none"
	Tags        []string `yaml:"tags"`

	// Hooks run before and after each backup of the source.
	Hooks Hooks `yaml:"hooks"`
	// Protected lists restore targets that restore refuses outright.
	Protected []string `yaml:"protected"`

	// RPO is the age beyond which the newest good backup is overdue.
	RPO Duration `yaml:"rpo"`
	// RTO is the declared time a restore may take; drills compare against it.
	RTO Duration `yaml:"rto"`

	Schedule    string   `yaml:"schedule"`
	Timezone    string   `yaml:"timezone"`
	Jitter      Duration `yaml:"jitter"`
	CatchUpPass bool     `yaml:"catch_up_pass"`

	Keep       *Keep      `yaml:"keep"`
	KeepTagged []TagRule  `yaml:"keep_tagged"`
	Checks     *Checks    `yaml:"checks"`
	Drill      *Drill     `yaml:"drill"`
	Prune      *Scheduled `yaml:"prune"`
	Notify     []string   `yaml:"notify"`
}

// Hooks are shell commands run around a backup. After runs even when the
// backup failed; LIFEBOAT_STATUS tells it which.
type Hooks struct {
	Before  []string `yaml:"before"`
	After   []string `yaml:"after"`
	Timeout Duration `yaml:"timeout"` // per command; default 5m
}

// Scheduled is a schedule for a recurring action other than the backup.
type Scheduled struct {
	Schedule string   `yaml:"schedule"`
	Timezone string   `yaml:"timezone"`
	Jitter   Duration `yaml:"jitter"`
}

// Keep is a grandfather-father-son retention policy: the newest Last backups,
// and the newest backup in each of the last N hours, days, weeks, months and
// years that have one. Within keeps every backup younger than the duration.
type Keep struct {
	Last    int      `yaml:"last"`
	Hourly  int      `yaml:"hourly"`
	Daily   int      `yaml:"daily"`
	Weekly  int      `yaml:"weekly"`
	Monthly int      `yaml:"monthly"`
	Yearly  int      `yaml:"yearly"`
	Within  Duration `yaml:"within"`
}

// TagRule keeps backups carrying Tag: the newest Last of them, and all younger
// than Within. Written as a bare tag name (keep all with that tag) or a mapping.
type TagRule struct {
	Tag    string   `yaml:"tag"`
	Last   int      `yaml:"last"`
	Within Duration `yaml:"within"`
}

func (r *TagRule) UnmarshalYAML(unmarshal func(any) error) error {
	var tag string
	if err := unmarshal(&tag); err == nil {
		*r = TagRule{Tag: tag}
		return nil
	}
	type plain TagRule
	var p plain
	if err := unmarshal(&p); err != nil {
		return err
	}
	*r = TagRule(p)
	return nil
}

// Checks are applied to each new backup against the previous committed one.
type Checks struct {
	MinSize    Size    `yaml:"min_size"`
	MaxShrink  Percent `yaml:"max_shrink"`
	MaxGrowth  Percent `yaml:"max_growth"`
	MaxRowDrop Percent `yaml:"max_row_drop"`
}

// Drill configures restore drills of a source.
type Drill struct {
	Scheduled `yaml:",inline"`
	// Target is where SQL drills restore: a server URL without a password,
	// the password coming from Password or the standard client files.
	Target     string      `yaml:"target"`
	Password   Secret      `yaml:"password"`
	Assertions []Assertion `yaml:"assertions"`
}

// Assertion is a user check run against a drill's restored copy: SQL that
// must return true, or a command that must exit 0.
type Assertion struct {
	Name    string `yaml:"name"`
	SQL     string `yaml:"sql"`
	Command string `yaml:"command"`
}
