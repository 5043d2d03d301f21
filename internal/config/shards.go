package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// Shard is one primary of a sharded source (Config.Shards): its address and
// the databases that are its own.
type Shard struct {
	Address   string   `mapstructure:"address" yaml:"address"`
	Databases []string `mapstructure:"databases" yaml:"databases"`
}

// ShardNames are the configured shards' names, sorted.
func (c *Config) ShardNames() []string { return slices.Sorted(maps.Keys(c.Shards)) }

// ForShard is the config of one shard's pipeline: the primary's address and
// databases from its entry (the rest of the primary section is shared),
// and the names that must differ between the pipelines of one standby site
// (the two topics, cache.topic if set, applier.name,
// producer.transactional_id, cache.group) with "-<name>" added; with
// metrics.listen auto, each shard's services listen 10 ports above the
// previous shard's.
func (c *Config) ForShard(name string) (*Config, error) {
	s, ok := c.Shards[name]
	if !ok {
		return nil, fmt.Errorf("shard %q: not one of the configured shards (%s)", name, strings.Join(c.ShardNames(), ", "))
	}
	out := *c
	out.Shard, out.shardIndex = name, slices.Index(c.ShardNames(), name)
	out.Primary.Address, out.Primary.Databases = s.Address, s.Databases
	suffix := "-" + name
	out.Kafka.PrimaryTopic += suffix
	out.Kafka.StandbyTopic += suffix
	if out.Cache.Topic != "" {
		out.Cache.Topic += suffix
	}
	out.Applier.Name += suffix
	out.Producer.TransactionalID += suffix
	out.Cache.Group += suffix
	return &out, nil
}

// OneSource refuses a config of shards that names none: a service runs the
// pipeline of one shard (shard, or LOCKSTEP_SHARD).
func (c *Config) OneSource() error {
	if len(c.Shards) > 0 && c.Shard == "" {
		return fmt.Errorf("the config has shards (%s): say which one this process serves with --set shard=NAME or LOCKSTEP_SHARD=NAME", strings.Join(c.ShardNames(), ", "))
	}
	return nil
}

// validateShards checks the shards: each with an address and databases of
// its own, none shared with another shard.
func (c *Config) validateShards() error {
	if len(c.Shards) == 0 {
		if c.Shard != "" {
			return fmt.Errorf("shard = %q, but no shards are configured", c.Shard)
		}
		return nil
	}
	owner := make(map[string]string)
	for _, name := range c.ShardNames() {
		s := c.Shards[name]
		if name == "" || strings.ContainsAny(name, " .:/") {
			return fmt.Errorf("shards: name %q: want letters, digits, - or _ (it goes into topic and group names)", name)
		}
		if s.Address == "" || len(s.Databases) == 0 {
			return fmt.Errorf("shards.%s: needs address and databases (the databases that are this shard's own)", name)
		}
		for _, db := range s.Databases {
			if other, ok := owner[db]; ok {
				return fmt.Errorf("shards.%s.databases: %s is shard %s's too: the shards of one standby site write disjoint databases", name, db, other)
			}
			owner[db] = name
		}
	}
	return nil
}
