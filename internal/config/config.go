// Package config loads the one YAML file that configures all three services.
// Every key has a default, can be overridden by an environment variable
// LOCKSTEP_<SECTION>_<KEY> and by a --set section.key=value flag, and the
// whole is checked once by Validate, whose errors name the key and the value.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// Config is the whole file.
type Config struct {
	Kafka    Kafka    `mapstructure:"kafka" yaml:"kafka"`
	Primary  Database `mapstructure:"primary" yaml:"primary"`
	Standby  Database `mapstructure:"standby" yaml:"standby"`
	Redis    Redis    `mapstructure:"redis" yaml:"redis"`
	Producer Producer `mapstructure:"producer" yaml:"producer"`
	Applier  Applier  `mapstructure:"applier" yaml:"applier"`
	Cache    Cache    `mapstructure:"cache" yaml:"cache"`
	Metrics  Metrics  `mapstructure:"metrics" yaml:"metrics"`
	Log      Log      `mapstructure:"log" yaml:"log"`

	// warnings are what Load found risky but allowed.
	warnings []string
}

// Warnings lists settings that are allowed but risky, for the log.
func (c *Config) Warnings() []string { return c.warnings }

type Kafka struct {
	Brokers      []string `mapstructure:"brokers" yaml:"brokers"`
	PrimaryTopic string   `mapstructure:"primary_topic" yaml:"primary_topic"`
	StandbyTopic string   `mapstructure:"standby_topic" yaml:"standby_topic"`
	// StandbyPartitions is used when the storage-applier creates the standby topic.
	StandbyPartitions int    `mapstructure:"standby_partitions" yaml:"standby_partitions"`
	TLS               TLS    `mapstructure:"tls" yaml:"tls"`
	SASL              SASL   `mapstructure:"sasl" yaml:"sasl"`
	MaxMessageBytes   int    `mapstructure:"max_message_bytes" yaml:"max_message_bytes"`
	ClientID          string `mapstructure:"client_id" yaml:"client_id"`
	// TransactionTimeout bounds how long a dead writer's open transaction
	// holds back read-committed consumers.
	TransactionTimeout time.Duration `mapstructure:"transaction_timeout" yaml:"transaction_timeout"`
}

type TLS struct {
	Enabled    bool   `mapstructure:"enabled" yaml:"enabled"`
	CAFile     string `mapstructure:"ca_file" yaml:"ca_file"`
	CertFile   string `mapstructure:"cert_file" yaml:"cert_file"`
	KeyFile    string `mapstructure:"key_file" yaml:"key_file"`
	SkipVerify bool   `mapstructure:"skip_verify" yaml:"skip_verify"`
}

type SASL struct {
	Mechanism    string `mapstructure:"mechanism" yaml:"mechanism"` // "", PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
	User         string `mapstructure:"user" yaml:"user"`
	Password     string `mapstructure:"password" yaml:"password"`
	PasswordFile string `mapstructure:"password_file" yaml:"password_file"`
}

type Database struct {
	Address      string `mapstructure:"address" yaml:"address"`
	User         string `mapstructure:"user" yaml:"user"`
	Password     string `mapstructure:"password" yaml:"password"`
	PasswordFile string `mapstructure:"password_file" yaml:"password_file"`
	TLS          TLS    `mapstructure:"tls" yaml:"tls"`
	// Databases limits replication to these databases; empty means every
	// database but the system ones.
	Databases []string `mapstructure:"databases" yaml:"databases"`
	// Accounts (primary only) are the accounts whose statements (CREATE,
	// ALTER, DROP, RENAME USER, GRANT, REVOKE, SET PASSWORD, roles) are
	// carried to the standby: patterns of "user@host" (a role: its name),
	// * and ? as in file names. Empty: none.
	Accounts []string `mapstructure:"accounts" yaml:"accounts"`
}

type Redis struct {
	// Address is host:port; on a cluster, one or more seed nodes,
	// comma-separated.
	Address string `mapstructure:"address" yaml:"address"`
	// Cluster: Address names Redis Cluster nodes; the client finds the rest.
	Cluster bool `mapstructure:"cluster" yaml:"cluster"`
	// User is a Redis ACL user; empty is the default user.
	User         string `mapstructure:"user" yaml:"user"`
	Password     string `mapstructure:"password" yaml:"password"`
	PasswordFile string `mapstructure:"password_file" yaml:"password_file"`
	DB           int    `mapstructure:"db" yaml:"db"`
	TLS          TLS    `mapstructure:"tls" yaml:"tls"`
}

// Addresses are the host:port parts of Address.
func (r Redis) Addresses() []string {
	var out []string
	for _, a := range strings.Split(r.Address, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

type Producer struct {
	// ServerID is the replication server id the producer registers with; it
	// must differ from every server and replica of the primary.
	ServerID        uint32        `mapstructure:"server_id" yaml:"server_id"`
	TransactionalID string        `mapstructure:"transactional_id" yaml:"transactional_id"`
	BatchRows       int           `mapstructure:"batch_rows" yaml:"batch_rows"`
	Linger          time.Duration `mapstructure:"linger" yaml:"linger"`
}

type Applier struct {
	// Name keys the checkpoint row and the Kafka transactional id.
	Name      string        `mapstructure:"name" yaml:"name"`
	BatchRows int           `mapstructure:"batch_rows" yaml:"batch_rows"`
	Linger    time.Duration `mapstructure:"linger" yaml:"linger"`
}

type Cache struct {
	// Topic is the standby log at the standby site; at the primary site a
	// cache-applier may consume the primary log instead.
	Topic string `mapstructure:"topic" yaml:"topic"`
	Group string `mapstructure:"group" yaml:"group"`
	// InstanceID, when set, makes the instance a static member of the
	// group: restarted, it gets its partitions back at once instead of
	// after SessionTimeout. It must differ between instances.
	InstanceID     string        `mapstructure:"instance_id" yaml:"instance_id"`
	SessionTimeout time.Duration `mapstructure:"session_timeout" yaml:"session_timeout"`
	TombstoneTTL   time.Duration `mapstructure:"tombstone_ttl" yaml:"tombstone_ttl"`
	// WaitReplicas is how many replicas of each master written to must hold
	// a batch (Redis WAIT) before its offsets are committed; WaitTimeout
	// bounds one wait, after which the batch is written again.
	WaitReplicas int           `mapstructure:"wait_replicas" yaml:"wait_replicas"`
	WaitTimeout  time.Duration `mapstructure:"wait_timeout" yaml:"wait_timeout"`
	KeyPrefix    string        `mapstructure:"key_prefix" yaml:"key_prefix"`
	Rules        []Rule        `mapstructure:"rules" yaml:"rules"`
	Hook         Hook          `mapstructure:"hook" yaml:"hook"`
}

// Hook is the application's webhook: each change is POSTed to URL before
// the cache is touched.
type Hook struct {
	URL     string        `mapstructure:"url" yaml:"url"` // empty: no webhook
	Timeout time.Duration `mapstructure:"timeout" yaml:"timeout"`
	// Retries is how many times a failed call is repeated before OnFailure
	// applies.
	Retries int `mapstructure:"retries" yaml:"retries"`
	// OnFailure: block (keep retrying; the cache waits) or skip (log the
	// change as skipped and write the cache).
	OnFailure string `mapstructure:"on_failure" yaml:"on_failure"`
}

// Rule maps the rows of matching tables to Redis keys.
type Rule struct {
	// Table is "database.table"; either part may be a shell pattern.
	Table   string        `mapstructure:"table" yaml:"table"`
	Keys    []string      `mapstructure:"keys" yaml:"keys"`
	Action  string        `mapstructure:"action" yaml:"action"` // refresh | evict
	Format  string        `mapstructure:"format" yaml:"format"` // hash | json
	Columns []string      `mapstructure:"columns" yaml:"columns"`
	TTL     time.Duration `mapstructure:"ttl" yaml:"ttl"`
	// SharedKey declares that several rows may map to one key (its columns
	// are not unique): only evict then, since a refresh would write
	// whichever row changed last.
	SharedKey bool `mapstructure:"shared_key" yaml:"shared_key"`
}

type Metrics struct {
	// Listen is host:port, "auto" (loopback, one port per service, see
	// MetricsAddress) or empty for none.
	Listen string `mapstructure:"listen" yaml:"listen"`
}

// MetricsAddress is where a service exports its metrics; "" for nowhere.
func (c *Config) MetricsAddress(service string) string {
	if c.Metrics.Listen != "auto" {
		return c.Metrics.Listen
	}
	return map[string]string{"producer": "127.0.0.1:9101", "storage-applier": "127.0.0.1:9102", "cache-applier": "127.0.0.1:9103"}[service]
}

type Log struct {
	Level  string `mapstructure:"level" yaml:"level"`
	Format string `mapstructure:"format" yaml:"format"` // text | json
}

// defaults lists every key: viper ignores an environment variable for a key
// it has never heard of.
var defaults = map[string]any{
	"kafka.brokers":             []string{"127.0.0.1:9092"},
	"kafka.primary_topic":       "lockstep.primary",
	"kafka.standby_topic":       "lockstep.standby",
	"kafka.standby_partitions":  4,
	"kafka.tls.enabled":         false,
	"kafka.tls.ca_file":         "",
	"kafka.tls.cert_file":       "",
	"kafka.tls.key_file":        "",
	"kafka.tls.skip_verify":     false,
	"kafka.sasl.mechanism":      "",
	"kafka.sasl.user":           "",
	"kafka.sasl.password":       "",
	"kafka.sasl.password_file":  "",
	"kafka.max_message_bytes":   64 << 20,
	"kafka.client_id":           "lockstep",
	"kafka.transaction_timeout": "60s",
	"redis.address":             "127.0.0.1:6380",
	"redis.cluster":             false,
	"redis.user":                "",
	"redis.password":            "",
	"redis.password_file":       "",
	"redis.db":                  0,
	"producer.server_id":        4201,
	"producer.transactional_id": "lockstep-producer",
	"producer.batch_rows":       5000,
	"producer.linger":           "5ms",
	"applier.name":              "storage-applier",
	"applier.batch_rows":        5000,
	"applier.linger":            "5ms",
	"cache.topic":               "",
	"cache.group":               "lockstep-cache",
	"cache.instance_id":         "",
	"cache.session_timeout":     "10s",
	"cache.tombstone_ttl":       "24h",
	"cache.wait_replicas":       0,
	"cache.wait_timeout":        "2s",
	"cache.key_prefix":          "",
	"cache.rules":               []Rule{},
	"cache.hook.url":            "",
	"cache.hook.timeout":        "5s",
	"cache.hook.retries":        3,
	"cache.hook.on_failure":     "block",
	"metrics.listen":            "auto",
	"log.level":                 "info",
	"log.format":                "text",
}

func init() {
	for _, db := range []struct{ name, addr string }{{"primary", "127.0.0.1:3307"}, {"standby", "127.0.0.1:3308"}} {
		defaults[db.name+".address"] = db.addr
		defaults[db.name+".user"] = "root"
		defaults[db.name+".password"] = ""
		defaults[db.name+".password_file"] = ""
		defaults[db.name+".databases"] = []string{}
		defaults[db.name+".accounts"] = []string{}
		for _, k := range []string{"enabled", "ca_file", "cert_file", "key_file", "skip_verify"} {
			defaults[db.name+".tls."+k] = defaults["kafka.tls."+k]
			defaults["redis.tls."+k] = defaults["kafka.tls."+k]
		}
	}
}

// Load reads the file (optional: "" uses defaults and environment only),
// applies LOCKSTEP_* variables and key=value overrides, reads secret files,
// and validates the result.
func Load(file string, overrides []string) (*Config, error) {
	v := viper.New()
	for k, val := range defaults {
		v.SetDefault(k, val)
	}
	v.SetEnvPrefix("LOCKSTEP")
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	v.AutomaticEnv()
	if file != "" {
		v.SetConfigFile(file)
		if err := v.ReadInConfig(); err != nil {
			return nil, fmt.Errorf("read config %s: %w", file, err)
		}
	}
	for _, o := range overrides {
		k, val, ok := strings.Cut(o, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("override %q: want section.key=value", o)
		}
		if !Known(k) {
			return nil, fmt.Errorf("override %q: unknown key %s", o, k)
		}
		v.Set(k, val)
	}
	var c Config
	err := v.UnmarshalExact(&c, viper.DecodeHook(mapstructure.ComposeDecodeHookFunc(
		mapstructure.StringToTimeDurationHookFunc(),
		mapstructure.StringToSliceHookFunc(","),
	)))
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", orDefaults(file), err)
	}
	if err := c.readSecrets(file); err != nil {
		return nil, err
	}
	c.warnUnverified()
	slices.Sort(c.warnings)
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", orDefaults(file), err)
	}
	return &c, nil
}

func orDefaults(file string) string {
	if file == "" {
		return "(defaults and environment)"
	}
	return file
}

// readSecrets reads the *_password_file keys, and warns about files that
// hold secrets and that other users may read.
func (c *Config) readSecrets(file string) error {
	secrets := []struct {
		key        string
		file, dest *string
	}{
		{"kafka.sasl.password_file", &c.Kafka.SASL.PasswordFile, &c.Kafka.SASL.Password},
		{"primary.password_file", &c.Primary.PasswordFile, &c.Primary.Password},
		{"standby.password_file", &c.Standby.PasswordFile, &c.Standby.Password},
		{"redis.password_file", &c.Redis.PasswordFile, &c.Redis.Password},
	}
	inFile := false // a password written in the config file itself
	for _, s := range secrets {
		if *s.file == "" {
			inFile = inFile || *s.dest != ""
			continue
		}
		b, err := os.ReadFile(*s.file)
		if err != nil {
			return fmt.Errorf("config %s: read secret: %w", s.key, err)
		}
		*s.dest = strings.TrimRight(string(b), "\r\n")
		c.warnReadable(s.key+" = "+*s.file, *s.file)
	}
	if inFile && file != "" {
		c.warnReadable("config file "+file+", which holds passwords,", file)
	}
	return nil
}

// warnUnverified warns about every link whose server certificate is not
// verified.
func (c *Config) warnUnverified() {
	for key, t := range map[string]TLS{"kafka.tls": c.Kafka.TLS, "primary.tls": c.Primary.TLS, "standby.tls": c.Standby.TLS, "redis.tls": c.Redis.TLS} {
		if t.Enabled && t.SkipVerify {
			c.warnings = append(c.warnings, key+".skip_verify is on: the server's certificate is NOT verified, so anyone on the network path can read and change what lockstep sends; set "+key+".ca_file instead")
		}
	}
}

// warnReadable warns when a file holding secrets is open to other users.
func (c *Config) warnReadable(what, path string) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		c.warnings = append(c.warnings, fmt.Sprintf("%s is readable by other users (mode %04o): chmod 600 it", what, fi.Mode().Perm()))
	}
}

var (
	topicName   = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	templateVar = regexp.MustCompile(`\{([^{}]*)\}`)
)

// CarriedAccount reports whether statements on an account ("user@host",
// or a role's name) are carried to the standby: primary.accounts names it,
// and it is not an account lockstep itself uses. A role's name also
// matches it at host %, as MySQL, whose roles are accounts, writes it.
func (c *Config) CarriedAccount(account string) bool {
	user, _, _ := strings.Cut(account, "@")
	if user == "" || user == c.Primary.User || user == c.Standby.User {
		return false
	}
	for _, p := range c.Primary.Accounts {
		ok, _ := path.Match(p, account)
		if !ok && !strings.Contains(p, "@") {
			ok, _ = path.Match(p+"@%", account)
		}
		if ok {
			return true
		}
	}
	return false
}

// Validate checks every key; the error lists all problems, each with its key,
// its value and what is expected.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key string, val any, want string) {
		errs = append(errs, fmt.Errorf("%s = %v: %s", key, val, want))
	}
	if len(c.Kafka.Brokers) == 0 {
		bad("kafka.brokers", c.Kafka.Brokers, "want at least one host:port")
	}
	for _, a := range c.Primary.Accounts {
		if _, err := path.Match(a, ""); err != nil || a == "" {
			bad("primary.accounts", a, "want a pattern of user@host, with * and ? (e.g. app_*@%)")
		}
	}
	if len(c.Standby.Accounts) > 0 {
		bad("standby.accounts", c.Standby.Accounts, "accounts are carried from the primary: set primary.accounts")
	}
	for _, b := range c.Kafka.Brokers {
		if !strings.Contains(b, ":") {
			bad("kafka.brokers", b, "want host:port")
		}
	}
	for key, t := range map[string]string{"kafka.primary_topic": c.Kafka.PrimaryTopic, "kafka.standby_topic": c.Kafka.StandbyTopic} {
		if !topicName.MatchString(t) {
			bad(key, fmt.Sprintf("%q", t), "want a Kafka topic name (letters, digits, '.', '_', '-')")
		}
	}
	if c.Kafka.PrimaryTopic == c.Kafka.StandbyTopic {
		bad("kafka.standby_topic", c.Kafka.StandbyTopic, "must differ from kafka.primary_topic")
	}
	if c.Kafka.StandbyPartitions < 1 {
		bad("kafka.standby_partitions", c.Kafka.StandbyPartitions, "want 1 or more")
	}
	if c.Kafka.TransactionTimeout < time.Second {
		bad("kafka.transaction_timeout", c.Kafka.TransactionTimeout, "want 1s or more")
	}
	if c.Kafka.MaxMessageBytes < 1<<20 || c.Kafka.MaxMessageBytes > 1<<30 {
		bad("kafka.max_message_bytes", c.Kafka.MaxMessageBytes, "want 1048576 (1 MiB) to 1073741824 (1 GiB)")
	}
	switch c.Kafka.SASL.Mechanism {
	case "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
	default:
		bad("kafka.sasl.mechanism", c.Kafka.SASL.Mechanism, "want PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or empty")
	}
	for _, d := range []struct {
		name string
		db   Database
	}{{"primary", c.Primary}, {"standby", c.Standby}} {
		if !strings.Contains(d.db.Address, ":") {
			bad(d.name+".address", d.db.Address, "want host:port")
		}
		if d.db.User == "" {
			bad(d.name+".user", `""`, "want a user name")
		}
	}
	addrs := c.Redis.Addresses()
	if len(addrs) == 0 || slices.ContainsFunc(addrs, func(a string) bool { return !strings.Contains(a, ":") }) {
		bad("redis.address", c.Redis.Address, "want host:port (on a cluster, seed nodes host:port,host:port,...)")
	}
	if len(addrs) > 1 && !c.Redis.Cluster {
		bad("redis.address", c.Redis.Address, "several addresses name the nodes of a Redis Cluster: set redis.cluster: true, or give one host:port")
	}
	if c.Redis.DB < 0 || c.Redis.DB > 15 {
		bad("redis.db", c.Redis.DB, "want 0..15")
	}
	if c.Redis.Cluster && c.Redis.DB != 0 {
		bad("redis.db", c.Redis.DB, "Redis Cluster has database 0 only: want 0 with redis.cluster: true")
	}
	if c.Producer.ServerID == 0 {
		bad("producer.server_id", 0, "want a replication server id unique among the primary's servers and replicas")
	}
	if c.Producer.BatchRows < 1 {
		bad("producer.batch_rows", c.Producer.BatchRows, "want 1 or more")
	}
	if c.Applier.BatchRows < 1 {
		bad("applier.batch_rows", c.Applier.BatchRows, "want 1 or more")
	}
	// A Kafka transaction stays open up to its linger, every one of them:
	// well inside the time after which the broker aborts it.
	for _, l := range []struct {
		key    string
		linger time.Duration
	}{{"producer.linger", c.Producer.Linger}, {"applier.linger", c.Applier.Linger}} {
		if l.linger < 0 || l.linger > c.Kafka.TransactionTimeout/10 {
			bad(l.key, l.linger, fmt.Sprintf("want 0 (no waiting) to a tenth of kafka.transaction_timeout (%s)", c.Kafka.TransactionTimeout/10))
		}
	}
	if c.Applier.Name == "" {
		bad("applier.name", `""`, "want a name for the checkpoint row")
	}
	if c.Cache.Topic != "" && c.Cache.Topic != c.Kafka.StandbyTopic && c.Cache.Topic != c.Kafka.PrimaryTopic {
		bad("cache.topic", c.Cache.Topic, "want kafka.standby_topic, kafka.primary_topic (primary site) or empty (standby topic)")
	}
	if c.Cache.SessionTimeout < 6*time.Second || c.Cache.SessionTimeout > 5*time.Minute {
		bad("cache.session_timeout", c.Cache.SessionTimeout, "want 6s to 5m (the broker's group session limits)")
	}
	if c.Cache.WaitReplicas < 0 {
		bad("cache.wait_replicas", c.Cache.WaitReplicas, "want 0 (do not wait) or the number of replicas each master must have a batch on")
	}
	if c.Cache.WaitReplicas > 0 && (c.Cache.WaitTimeout < time.Millisecond || c.Cache.WaitTimeout > c.Cache.SessionTimeout) {
		bad("cache.wait_timeout", c.Cache.WaitTimeout, fmt.Sprintf("want 1ms to cache.session_timeout (%s)", c.Cache.SessionTimeout))
	}
	if c.Cache.TombstoneTTL < time.Second {
		bad("cache.tombstone_ttl", c.Cache.TombstoneTTL, "want 1s or more: an eviction's version must outlive any replay")
	}
	for i, r := range c.Cache.Rules {
		errs = append(errs, r.validate(fmt.Sprintf("cache.rules[%d]", i))...)
	}
	if u, err := url.Parse(c.Cache.Hook.URL); c.Cache.Hook.URL != "" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "") {
		bad("cache.hook.url", c.Cache.Hook.URL, "want an http:// or https:// URL, or empty for no webhook")
	}
	if c.Cache.Hook.Timeout <= 0 || c.Cache.Hook.Timeout > 5*time.Minute {
		bad("cache.hook.timeout", c.Cache.Hook.Timeout, "want more than 0s and at most 5m")
	}
	if c.Cache.Hook.Retries < 0 {
		bad("cache.hook.retries", c.Cache.Hook.Retries, "want 0 or more")
	}
	if c.Cache.Hook.OnFailure != "block" && c.Cache.Hook.OnFailure != "skip" {
		bad("cache.hook.on_failure", fmt.Sprintf("%q", c.Cache.Hook.OnFailure), "want block (the cache waits for the hook) or skip (log and go on)")
	}
	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", c.Log.Level, "want debug, info, warn or error")
	}
	if l := c.Metrics.Listen; l != "" && l != "auto" {
		if host, _, err := net.SplitHostPort(l); err != nil || host == "" {
			bad("metrics.listen", fmt.Sprintf("%q", l), "want auto (127.0.0.1, port 9101/9102/9103 for producer/storage-applier/cache-applier), empty (off) or host:port with the host given: 127.0.0.1:9101 for this machine only, 0.0.0.0:9101 for every interface")
		}
	}
	if c.Log.Format != "text" && c.Log.Format != "json" {
		bad("log.format", c.Log.Format, "want text or json")
	}
	return errors.Join(errs...)
}

func (r Rule) validate(at string) []error {
	var errs []error
	bad := func(key string, val any, want string) {
		errs = append(errs, fmt.Errorf("%s.%s = %v: %s", at, key, val, want))
	}
	db, table, ok := strings.Cut(r.Table, ".")
	if !ok || db == "" || table == "" {
		bad("table", fmt.Sprintf("%q", r.Table), "want database.table (shell patterns allowed, e.g. shop.*)")
	} else if _, err := path.Match(r.Table, ""); err != nil {
		bad("table", r.Table, "bad pattern: "+err.Error())
	}
	if len(r.Keys) == 0 {
		bad("keys", r.Keys, "want at least one key template such as user:{id}")
	}
	for _, k := range r.Keys {
		if len(templateVar.FindAllString(k, -1)) == 0 {
			bad("keys", k, "want a template naming at least one column in braces, e.g. user:{id}")
		}
		if strings.Count(k, "{") != strings.Count(k, "}") {
			bad("keys", k, "unbalanced braces")
		}
	}
	switch r.Action {
	case "refresh", "evict":
	default:
		bad("action", fmt.Sprintf("%q", r.Action), "want refresh or evict")
	}
	if r.SharedKey && r.Action == "refresh" {
		bad("shared_key", true, "a key several rows share can only be evicted (a refresh would write whichever row changed last): want action: evict")
	}
	switch r.Format {
	case "hash", "json":
	case "":
		if r.Action == "refresh" {
			bad("format", `""`, "want hash or json for a refresh rule")
		}
	default:
		bad("format", r.Format, "want hash or json")
	}
	if r.TTL < 0 {
		bad("ttl", r.TTL, "want 0 (no expiry) or a positive duration")
	}
	return errs
}

// KeyColumns lists the column names a key template uses.
func KeyColumns(template string) []string {
	var cols []string
	for _, m := range templateVar.FindAllStringSubmatch(template, -1) {
		cols = append(cols, m[1])
	}
	return cols
}

// CacheTopic is the topic the cache-applier consumes.
func (c *Config) CacheTopic() string {
	if c.Cache.Topic == "" {
		return c.Kafka.StandbyTopic
	}
	return c.Cache.Topic
}

// Redacted is the config as it may be logged: secrets replaced.
func (c Config) Redacted() Config {
	hide := func(s *string) {
		if *s != "" {
			*s = "[redacted]"
		}
	}
	hide(&c.Kafka.SASL.Password)
	hide(&c.Primary.Password)
	hide(&c.Standby.Password)
	hide(&c.Redis.Password)
	if u, err := url.Parse(c.Cache.Hook.URL); err == nil && u.User != nil {
		u.User = url.User("[redacted]")
		c.Cache.Hook.URL = u.String()
	}
	c.warnings = nil
	return c
}

// Known reports whether key (section.key) is a config key.
func Known(key string) bool {
	_, ok := defaults[key]
	return ok
}
