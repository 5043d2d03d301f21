package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigLoads(t *testing.T) {
	c, err := Load("../../lockstep.example.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Kafka.PrimaryTopic != "lockstep.primary" || len(c.Cache.Rules) != 3 || c.Cache.TombstoneTTL != 24*time.Hour {
		t.Fatalf("example config read wrong: %+v", c)
	}
	if c.CacheTopic() != c.Kafka.StandbyTopic {
		t.Fatalf("cache topic %q, want the standby topic", c.CacheTopic())
	}
}

func TestEnvironmentAndFlagsOverrideTheFile(t *testing.T) {
	t.Setenv("LOCKSTEP_KAFKA_BROKERS", "a:1,b:2")
	t.Setenv("LOCKSTEP_PRODUCER_LINGER", "5ms")
	c, err := Load("../../lockstep.example.yaml", []string{"redis.db=3"})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(c.Kafka.Brokers, ",") != "a:1,b:2" || c.Producer.Linger != 5*time.Millisecond || c.Redis.DB != 3 {
		t.Fatalf("overrides not applied: brokers %v linger %s db %d", c.Kafka.Brokers, c.Producer.Linger, c.Redis.DB)
	}
}

func write(t *testing.T, body string) string {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadConfigNamesKeyAndValue(t *testing.T) {
	for _, c := range []struct{ body, want string }{
		{"kafka:\n  brokers: [nohostport]\n", "kafka.brokers = nohostport: want host:port"},
		{"kafka:\n  standby_topic: lockstep.primary\n", "kafka.standby_topic = lockstep.primary: must differ"},
		{"producer:\n  server_id: 0\n", "producer.server_id = 0"},
		{"cache:\n  rules:\n    - {table: users, keys: ['u:{id}'], action: refresh, format: hash}\n", `cache.rules[0].table = "users": want database.table`},
		{"cache:\n  rules:\n    - {table: a.b, keys: ['static'], action: refresh, format: hash}\n", "cache.rules[0].keys = static"},
		{"cache:\n  rules:\n    - {table: a.b, keys: ['k:{id}'], action: upsert, format: hash}\n", `cache.rules[0].action = "upsert": want refresh or evict`},
		{"cache:\n  rules:\n    - {table: a.b, keys: ['k:{c}'], action: refresh, format: hash, shared_key: true}\n", "cache.rules[0].shared_key = true: a key several rows share can only be evicted"},
		{"cache:\n  hook: {url: 'ftp://app/changes'}\n", "cache.hook.url = ftp://app/changes: want an http:// or https:// URL"},
		{"cache:\n  hook: {on_failure: ignore}\n", `cache.hook.on_failure = "ignore": want block`},
		{"cache:\n  hook: {timeout: 0s}\n", "cache.hook.timeout = 0s"},
		{"log:\n  level: loud\n", "log.level = loud"},
		{"cache:\n  wait_replicas: -1\n", "cache.wait_replicas = -1"},
		{"cache:\n  wait_replicas: 1\n  wait_timeout: 1m\n", "cache.wait_timeout = 1m0s: want 1ms to cache.session_timeout (10s)"},
		{"applier:\n  linger: 7s\n", "applier.linger = 7s: want 0 (no waiting) to a tenth of kafka.transaction_timeout (6s)"},
		{"producer:\n  linger: -1ms\n", "producer.linger = -1ms"},
		{"kafka:\n  brokerz: [a:1]\n", "brokerz"},
		{"kafka:\n  compression: brotli\n", "kafka.compression = brotli: want none, snappy, lz4, zstd or gzip"},
		{"kafka:\n  connect_via: [\"kafka-1:9092\"]\n", "kafka.connect_via = kafka-1:9092: want advertised=dial, both host:port"},
		{"kafka:\n  connect_via: [\"kafka-1:9092=tunnel\"]\n", "kafka.connect_via = kafka-1:9092=tunnel: want advertised=dial"},
		{"metrics:\n  rpo_interval: 10ms\n", "metrics.rpo_interval = 10ms: want 0 (no RPO measured) or 100ms and more"},
		{"redis:\n  address: a:1,b:2\n", "redis.address = a:1,b:2: several addresses name the nodes of a Redis Cluster: set redis.cluster: true"},
		{"redis:\n  address: a:1,b\n  cluster: true\n", "redis.address = a:1,b: want host:port"},
		{"redis:\n  address: a:1\n  cluster: true\n  db: 2\n", "redis.db = 2: Redis Cluster has database 0 only"},
	} {
		_, err := Load(write(t, c.body), nil)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("config %q: error %v, want it to contain %q", c.body, err, c.want)
		}
	}
	if _, err := Load("", []string{"no.such=1"}); err == nil || !strings.Contains(err.Error(), "unknown key no.such") {
		t.Errorf("unknown override: %v", err)
	}
}

func TestSecretsComeFromFilesAndAreRedacted(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(secret, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(write(t, "standby:\n  password_file: "+secret+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Standby.Password != "hunter2" {
		t.Fatalf("password from file = %q", c.Standby.Password)
	}
	if r := c.Redacted(); r.Standby.Password != "[redacted]" || c.Standby.Password != "hunter2" {
		t.Fatalf("redaction: %q (original now %q)", r.Standby.Password, c.Standby.Password)
	}
}

func TestRiskySettingsAreWarnedAbout(t *testing.T) {
	open := write(t, "redis:\n  password: s3cret\nkafka:\n  tls: {enabled: true, skip_verify: true}\ncache:\n  hook: {url: 'https://app:t0ken@app.example/changes'}\n")
	if err := os.Chmod(open, 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(open, nil)
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(c.Warnings(), "\n")
	for _, want := range []string{"kafka.tls.skip_verify is on: the server's certificate is NOT verified", "holds passwords, is readable by other users (mode 0644): chmod 600 it"} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings %q lack %q", w, want)
		}
	}
	if r := fmt.Sprintf("%+v", c.Redacted()); strings.Contains(r, "s3cret") || strings.Contains(r, "t0ken") {
		t.Errorf("the redacted config shows a secret: %s", r)
	}

	if err := os.Chmod(open, 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err = Load(open, []string{"kafka.tls.skip_verify=false"}); err != nil || len(c.Warnings()) != 0 {
		t.Errorf("a private file without skip_verify: warnings %q, err %v", c.Warnings(), err)
	}
}

func TestCarriedAccounts(t *testing.T) {
	c := &Config{Primary: Database{User: "lockstep_producer", Accounts: []string{"app_*@%", "*@10.0.0.?", "reporting"}}, Standby: Database{User: "lockstep_applier"}}
	for account, want := range map[string]bool{
		"app_web@%":                 true,
		"app_web@localhost":         false,
		"batch@10.0.0.7":            true,
		"reporting":                 true, // a role
		"reporting@%":               true, // a role as MySQL writes it
		"reporting@localhost":       false,
		"lockstep_producer@%":       false,
		"lockstep_applier@10.0.0.1": false, // lockstep's own, whatever the patterns say
		"root@%":                    false,
		"":                          false,
	} {
		if got := c.CarriedAccount(account); got != want {
			t.Errorf("CarriedAccount(%q) = %v, want %v", account, got, want)
		}
	}
	bad := *c
	bad.Primary.Accounts = []string{"app[@%"}
	bad.Standby.Accounts = []string{"x"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "primary.accounts") || !strings.Contains(err.Error(), "standby.accounts") {
		t.Fatalf("Validate: %v", err)
	}
}

func TestShardsFromOneConfig(t *testing.T) {
	file := write(t, `
primary: {user: repl}
kafka: {primary_topic: shop.primary, standby_topic: shop.standby}
applier: {name: shop}
cache: {group: shop-cache}
producer: {transactional_id: shop-producer}
shards:
  eu: {address: "10.0.0.1:3306", databases: [shop_eu]}
  us: {address: "10.0.0.2:3306", databases: [shop_us, audit_us]}
`)
	t.Setenv("LOCKSTEP_SHARD", "us")
	c, err := Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{c.Primary.Address, strings.Join(c.Primary.Databases, ","), c.Primary.User, c.Kafka.PrimaryTopic, c.Kafka.StandbyTopic, c.Applier.Name, c.Cache.Group, c.Producer.TransactionalID, c.MetricsAddress("cache-applier")}
	want := []string{"10.0.0.2:3306", "shop_us,audit_us", "repl", "shop.primary-us", "shop.standby-us", "shop-us", "shop-cache-us", "shop-producer-us", "127.0.0.1:9113"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("shard us: %v, want %v", got, want)
	}
	if err := c.OneSource(); err != nil {
		t.Fatal(err)
	}

	t.Setenv("LOCKSTEP_SHARD", "")
	all, err := Load(file, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := all.OneSource(); err == nil || !strings.Contains(err.Error(), "eu, us") {
		t.Fatalf("a config of shards naming none: %v, want an error naming them", err)
	}
	// Rules of one shard each, their keys apart: loaded.
	if _, err := Load(write(t, "shards:\n  eu: {address: 'a:1', databases: [shop_eu]}\n  us: {address: 'b:1', databases: [shop_us]}\n"+
		"cache: {rules: [{table: shop_eu.users, keys: ['eu:user:{id}'], action: evict}, {table: shop_us.users, keys: ['us:user:{id}'], action: evict}]}\n"), nil); err != nil {
		t.Fatalf("rules whose keys two shards cannot share: %v", err)
	}
	eu, err := all.ForShard("eu")
	if err != nil || eu.Kafka.PrimaryTopic != "shop.primary-eu" || eu.MetricsAddress("producer") != "127.0.0.1:9101" {
		t.Fatalf("ForShard(eu) = %+v, %v", eu, err)
	}

	for _, bad := range []struct{ body, want string }{
		{"shards:\n  eu: {address: 'a:1', databases: [x]}\n  us: {address: 'b:1', databases: [x]}\n", "shards.us.databases: x is shard eu's too"},
		{"shards:\n  eu: {databases: [x]}\n", "shards.eu: needs address and databases"},
		{"shards:\n  eu: {address: 'a:1', databases: [x]}\nshard: asia\n", `shard "asia": not one of the configured shards (eu)`},
		{"shard: eu\n", `shard = "eu", but no shards are configured`},
		{"shards:\n  'e/u': {address: 'a:1', databases: [x]}\n", `shards: name "e/u"`},
		{"shards:\n  eu: {address: 'a:1', databases: [shop_eu]}\n  us: {address: 'b:1', databases: [shop_us]}\ncache: {rules: [{table: shop_*.users, keys: ['user:{id}'], action: evict}]}\n",
			"cache.rules[0] (shop_*.users): the table matches databases of shards eu and us"},
		{"shards:\n  eu: {address: 'a:1', databases: [shop_eu]}\n  us: {address: 'b:1', databases: [shop_us]}\ncache: {rules: [{table: shop_eu.users, keys: ['user:{id}'], action: evict}, {table: shop_us.users, keys: ['u:{id}', 'user:{name}:x'], action: evict}]}\n",
			`cache.rules[0] key "user:{id}" (shard eu) and cache.rules[1] key "user:{name}:x" (shard us) can name the same Redis key`},
	} {
		if _, err := Load(write(t, bad.body), nil); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want an error with %q", bad.body, err, bad.want)
		}
	}
}

func TestKeyTemplatesMeet(t *testing.T) {
	for _, c := range []struct {
		a, b string
		meet bool
	}{
		{"user:{id}", "user:{id}", true},
		{"user:{id}", "user:email:{email}", true}, // id "email:x"
		{"eu:user:{id}", "us:user:{id}", false},
		{"user:{id}:eu", "user:{id}:us", false},
		{"{a}:x", "{b}:y", false},
		{"{a}:x", "{b}x", true},
		{"a:{x}:b:{y}", "a:{z}:c", true}, // y "1:c"
		{"session", "session", true},
		{"session", "sess{ion}", true},
		{"ab", "ab{x}b", false}, // too short for both ends
		{"item:1", "user:{id}", false},
	} {
		if got := mayMeet(c.a, c.b); got != c.meet {
			t.Errorf("mayMeet(%q, %q) = %v, want %v", c.a, c.b, got, c.meet)
		}
		if got := mayMeet(c.b, c.a); got != c.meet {
			t.Errorf("mayMeet(%q, %q) = %v, want %v", c.b, c.a, got, c.meet)
		}
	}
}
