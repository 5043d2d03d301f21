package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
)

// defaults lists every key: viper ignores an environment variable for a key
// it has never heard of.
var defaults = map[string]any{
	"kafka.brokers":             []string{"127.0.0.1:9092"},
	"kafka.connect_via":         []string{},
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
	"kafka.compression":         "snappy",
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
	"applier.group_rows":        5000,
	"applier.linger":            "5ms",
	"cache.topic":               "",
	"cache.group":               "lockstep-cache",
	"cache.instance_id":         "",
	"cache.session_timeout":     "10s",
	"cache.tombstone_ttl":       "24h",
	"cache.wait_replicas":       0,
	"cache.wait_timeout":        "2s",
	"cache.allow_eviction":      false,
	"cache.key_prefix":          "",
	"cache.sample_rate":         0,
	"cache.rules":               []Rule{},
	"cache.hook.url":            "",
	"cache.hook.timeout":        "5s",
	"cache.hook.retries":        3,
	"cache.hook.on_failure":     "block",
	"metrics.listen":            "auto",
	"metrics.rpo_interval":      "5s",
	"log.level":                 "info",
	"log.format":                "text",
	"shards":                    map[string]Shard{},
	"shard":                     "",
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
	if err := c.validateShards(); err != nil {
		return nil, fmt.Errorf("config %s: %w", orDefaults(file), err)
	}
	if c.Shard != "" {
		s, err := c.ForShard(c.Shard)
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", orDefaults(file), err)
		}
		c = *s
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

// Known reports whether key (section.key) is a config key.
func Known(key string) bool {
	_, ok := defaults[key]
	return ok
}
