package config

import (
	"fmt"
	"maps"
	"path"
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
// its own, none shared with another shard, and no cache key two shards
// could both write.
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
	return c.validateShardKeys()
}

// InDatabases reports whether the rule's table pattern ("db.table") may
// match a table of one of dbs; with dbs empty, of any.
func (r Rule) InDatabases(dbs []string) bool {
	db, _, _ := strings.Cut(r.Table, ".")
	if len(dbs) == 0 {
		return true
	}
	return slices.ContainsFunc(dbs, func(d string) bool {
		ok, _ := path.Match(db, d)
		return ok
	})
}

// validateShardKeys refuses cache rules two shards could write one key
// through: the key's version would come from one shard's log or the
// other's, which cannot be ordered, and the cache would keep the last
// write rather than the newest row.
func (c *Config) validateShardKeys() error {
	type key struct {
		shard, template string
		rule            int
	}
	var keys []key
	for i, r := range c.Cache.Rules {
		var owners []string
		for _, name := range c.ShardNames() {
			if r.InDatabases(c.Shards[name].Databases) {
				owners = append(owners, name)
			}
		}
		if len(owners) > 1 {
			return fmt.Errorf("cache.rules[%d] (%s): the table matches databases of shards %s, so its keys would be written from the primary logs of both, whose versions cannot be ordered: write one rule per shard, with the shard in its keys", i, r.Table, strings.Join(owners, " and "))
		}
		for _, k := range r.Keys {
			if len(owners) == 1 {
				keys = append(keys, key{owners[0], k, i})
			}
		}
	}
	for i, a := range keys {
		for _, b := range keys[i+1:] {
			if a.shard != b.shard && mayMeet(a.template, b.template) {
				return fmt.Errorf("cache.rules[%d] key %q (shard %s) and cache.rules[%d] key %q (shard %s) can name the same Redis key, whose version would come from two primary logs that cannot be ordered: put the shard in the keys (for example %q)",
					a.rule, a.template, a.shard, b.rule, b.template, b.shard, a.shard+":"+a.template)
			}
		}
	}
	return nil
}

// mayMeet reports whether two key templates can give the same key. A
// placeholder may stand for any text, so two templates with placeholders
// meet exactly when the text before the first placeholder of one starts
// the other's and the text after the last ends the other's; a template
// without one is a key of its own.
func mayMeet(a, b string) bool {
	pa, sa, va := literalEnds(a)
	pb, sb, vb := literalEnds(b)
	switch {
	case !va && !vb:
		return a == b
	case !va:
		return len(a) >= len(pb)+len(sb) && strings.HasPrefix(a, pb) && strings.HasSuffix(a, sb)
	case !vb:
		return mayMeet(b, a)
	}
	return (strings.HasPrefix(pa, pb) || strings.HasPrefix(pb, pa)) && (strings.HasSuffix(sa, sb) || strings.HasSuffix(sb, sa))
}

// literalEnds are the texts of a key template before its first and after
// its last placeholder, and whether it has one.
func literalEnds(template string) (prefix, suffix string, vars bool) {
	loc := templateVar.FindAllStringIndex(template, -1)
	if loc == nil {
		return template, "", false
	}
	return template[:loc[0][0]], template[loc[len(loc)-1][1]:], true
}
