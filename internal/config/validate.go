package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"
)

var (
	topicName   = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)
	templateVar = regexp.MustCompile(`\{([^{}]*)\}`)
)

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
	for _, pair := range c.Kafka.ConnectVia {
		from, to, _ := strings.Cut(pair, "=")
		_, _, errFrom := net.SplitHostPort(from)
		if _, _, errTo := net.SplitHostPort(to); errFrom != nil || errTo != nil {
			bad("kafka.connect_via", pair, "want advertised=dial, both host:port: the broker address the cluster's metadata gives, then where to connect for it")
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
	switch c.Kafka.Compression {
	case "none", "snappy", "lz4", "zstd", "gzip":
	default:
		bad("kafka.compression", c.Kafka.Compression, "want none, snappy, lz4, zstd or gzip")
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
	if c.Applier.GroupRows < 1 {
		bad("applier.group_rows", c.Applier.GroupRows, "want 1 or more")
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
	if c.Cache.SampleRate < 0 || c.Cache.SampleRate > 1000 {
		bad("cache.sample_rate", c.Cache.SampleRate, "want 0 (no sampler) up to 1000 changes a second")
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
	if r := c.Metrics.RPOInterval; r < 0 || (r > 0 && r < 100*time.Millisecond) {
		bad("metrics.rpo_interval", r, "want 0 (no RPO measured) or 100ms and more: each measurement reads the primary's GTID position and a few records of the topics")
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
