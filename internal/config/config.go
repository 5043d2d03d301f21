// Package config loads the one YAML file that configures all three services.
// Every key has a default, can be overridden by an environment variable
// LOCKSTEP_<SECTION>_<KEY> and by a --set section.key=value flag, and the
// whole is checked once by Validate, whose errors name the key and the value.
package config

import (
	"fmt"
	"path"
	"strings"
	"time"
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
	// Shards are the primaries of a sharded source, each with a pipeline of
	// its own into one standby site (one standby database, one Redis): one
	// config serves them all (see ForShard), and a process runs the
	// pipeline of the one Shard names.
	Shards map[string]Shard `mapstructure:"shards" yaml:"shards"`
	Shard  string           `mapstructure:"shard" yaml:"shard"`

	// warnings are what Load found risky but allowed.
	warnings []string
	// shardIndex is Shard's place among the shards' names, sorted.
	shardIndex int
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
	// Compression is the codec the writers compress record batches with
	// (readers take any): none, snappy, lz4, zstd or gzip.
	Compression string `mapstructure:"compression" yaml:"compression"`
	// TransactionTimeout bounds how long a dead writer's open transaction
	// holds back read-committed consumers.
	TransactionTimeout time.Duration `mapstructure:"transaction_timeout" yaml:"transaction_timeout"`
	// ConnectVia lists "advertised=dial" pairs of host:port: a broker
	// that the cluster's metadata names advertised is reached at dial (a
	// tunnel, a proxy) — the TLS name checked stays advertised's host.
	ConnectVia []string `mapstructure:"connect_via" yaml:"connect_via"`
}

// Via is kafka.connect_via as a map from advertised to dial address.
func (k Kafka) Via() map[string]string {
	via := make(map[string]string, len(k.ConnectVia))
	for _, pair := range k.ConnectVia {
		if from, to, ok := strings.Cut(pair, "="); ok {
			via[from] = to
		}
	}
	return via
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
	Name string `mapstructure:"name" yaml:"name"`
	// BatchRows bounds the rows of one Kafka transaction of the standby log.
	BatchRows int `mapstructure:"batch_rows" yaml:"batch_rows"`
	// GroupRows bounds the rows of the primary transactions one standby
	// transaction takes under a backlog.
	GroupRows int           `mapstructure:"group_rows" yaml:"group_rows"`
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
	// AllowEviction lets the cache-applier write to a Redis that may evict
	// keys under memory pressure (a maxmemory-policy other than
	// noeviction), which it otherwise refuses: see cacheapply.checkEviction.
	AllowEviction bool   `mapstructure:"allow_eviction" yaml:"allow_eviction"`
	KeyPrefix     string `mapstructure:"key_prefix" yaml:"key_prefix"`
	// SampleRate is how many changes a second the consistency sampler
	// follows into the cache (0: off); see cacheapply's sampler.
	SampleRate float64 `mapstructure:"sample_rate" yaml:"sample_rate"`
	Rules      []Rule  `mapstructure:"rules" yaml:"rules"`
	Hook       Hook    `mapstructure:"hook" yaml:"hook"`
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
	// RPOInterval is how often the appliers measure their stage's RPO
	// against the primary; 0 for never.
	RPOInterval time.Duration `mapstructure:"rpo_interval" yaml:"rpo_interval"`
}

// MetricsAddress is where a service exports its metrics; "" for nowhere.
func (c *Config) MetricsAddress(service string) string {
	if c.Metrics.Listen != "auto" {
		return c.Metrics.Listen
	}
	port, ok := map[string]int{"producer": 9101, "storage-applier": 9102, "cache-applier": 9103}[service]
	if !ok {
		return ""
	}
	return fmt.Sprintf("127.0.0.1:%d", port+10*c.shardIndex)
}

type Log struct {
	Level  string `mapstructure:"level" yaml:"level"`
	Format string `mapstructure:"format" yaml:"format"` // text | json
}

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

// CacheTopic is the topic the cache-applier consumes.
func (c *Config) CacheTopic() string {
	if c.Cache.Topic == "" {
		return c.Kafka.StandbyTopic
	}
	return c.Cache.Topic
}
