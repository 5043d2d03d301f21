// Package testenv gives integration tests their real servers: the private
// primary and standby (MariaDB, or MySQL in test.sh's second run) and Redis
// that scripts/test.sh starts (their addresses in LOCKSTEP_TEST_*), an
// in-process Kafka broker (kfake) per test, and names no other test uses,
// so tests can run side by side.
package testenv

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lockstep-dr/lockstep/internal/config"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/redisconn"
)

// Env is one test's servers and names.
type Env struct {
	Cfg     *config.Config
	Primary *sql.DB
	Standby *sql.DB
	Redis   redis.UniversalClient
	Kafka   *kfake.Cluster
	// Flavor is the primary's: the suite runs against MariaDB and MySQL.
	Flavor mysql.Flavor
	// DB is the test's own database, replicated and dropped at the end.
	DB string

	kafkaDir  string
	kafkaOpts []kfake.Opt
	// ownPrimary is the environment of scripts/lib.sh for a primary of
	// the test's own (NewOwnPrimary); nil for the shared one.
	ownPrimary []string
}

func startKafka(port int, dir string, opts []kfake.Opt) (*kfake.Cluster, error) {
	return kfake.NewCluster(append([]kfake.Opt{kfake.Ports(port), kfake.DefaultNumPartitions(1), kfake.DataDir(dir),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": "67108864"})}, opts...)...)
}

// RestartKafka stops the broker cleanly (as SIGTERM stops the dev broker)
// and starts it again on the same port and data folder.
func (e *Env) RestartKafka(t testing.TB, down time.Duration) {
	t.Helper()
	e.restartKafka(t, down, false)
}

// LoseKafka stops the broker, deletes its data (topics, offsets, groups)
// and starts it again, empty, on the same port: a Kafka cluster lost and
// built anew.
func (e *Env) LoseKafka(t testing.TB) {
	t.Helper()
	e.restartKafka(t, 0, true)
}

func (e *Env) restartKafka(t testing.TB, down time.Duration, wipe bool) {
	t.Helper()
	_, portStr, _ := strings.Cut(e.Cfg.Kafka.Brokers[0], ":")
	port, _ := strconv.Atoi(portStr)
	e.Kafka.Close()
	if wipe {
		if err := os.RemoveAll(e.kafkaDir); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(down)
	c, err := startKafka(port, e.kafkaDir, e.kafkaOpts)
	if err != nil {
		t.Fatalf("restart kfake on port %d: %v", port, err)
	}
	e.Kafka = c
}

var markOnce sync.Mutex

// Servers returns the addresses of the real servers, or stops the test:
// skipped when they are not configured and not required, failed when
// required (LOCKSTEP_TEST_REQUIRE=1, as scripts/test.sh sets) or configured
// but unreachable.
func Servers(t testing.TB) (primary, standby, redisAddr string) {
	t.Helper()
	primary, standby, redisAddr = os.Getenv("LOCKSTEP_TEST_PRIMARY"), os.Getenv("LOCKSTEP_TEST_STANDBY"), os.Getenv("LOCKSTEP_TEST_REDIS")
	if primary == "" || standby == "" || redisAddr == "" {
		unavailable(t, "integration test needs LOCKSTEP_TEST_PRIMARY, LOCKSTEP_TEST_STANDBY and LOCKSTEP_TEST_REDIS: run scripts/test.sh")
	}
	// Record that an integration test ran, so scripts/test.sh can fail a
	// run in which none did.
	if f := os.Getenv("LOCKSTEP_TEST_RAN_FILE"); f != "" {
		markOnce.Lock()
		if fh, err := os.OpenFile(f, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			fmt.Fprintln(fh, t.Name())
			fh.Close()
		}
		markOnce.Unlock()
	}
	return primary, standby, redisAddr
}

// New starts a broker for the test, connects to the real servers, and
// returns a config whose topics, names and database are the test's own.
func New(t testing.TB) *Env {
	t.Helper()
	pAddr, sAddr, rAddr := Servers(t)
	return build(t, pAddr, sAddr, rAddr, nil, func(*config.Config) {})
}

// NewOnCluster is New with the Redis Cluster of scripts/test.sh
// (LOCKSTEP_TEST_REDIS_CLUSTER: seed nodes, comma-separated) for the cache.
// Tests of several packages share the cluster at once; NewOnClusterAlone
// is for a test that kills its nodes or moves its slots.
func NewOnCluster(t testing.TB) *Env {
	t.Helper()
	return onCluster(t, syscall.LOCK_SH)
}

// NewOnClusterAlone is NewOnCluster for a test that disturbs the cluster:
// it waits until no other test (of any package) uses it, and keeps it to
// itself until it ends.
func NewOnClusterAlone(t testing.TB) *Env {
	t.Helper()
	return onCluster(t, syscall.LOCK_EX)
}

func onCluster(t testing.TB, how int) *Env {
	t.Helper()
	pAddr, sAddr, _ := Servers(t)
	seeds := os.Getenv("LOCKSTEP_TEST_REDIS_CLUSTER")
	if seeds == "" {
		unavailable(t, "a Redis Cluster test needs LOCKSTEP_TEST_REDIS_CLUSTER (seed nodes, comma-separated): run scripts/test.sh")
	}
	lockCluster(t, seeds, how)
	e := build(t, pAddr, sAddr, seeds, nil, func(c *config.Config) { c.Redis.Cluster = true })
	// An earlier test may have failed a master over: start on a cluster
	// whose every master serves its slots.
	Eventually(t, 30*time.Second, func() (bool, string) {
		err := redisconn.EachMaster(context.Background(), e.Redis, func(ctx context.Context, m *redis.Client) error {
			if info := m.ClusterInfo(ctx).Val(); !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("cluster state not ok on %s", m.Options().Addr)
			}
			// Nor a node it still suspects or holds failed (a test that
			// writes to every node would miss it).
			nodes, err := ClusterNodes(ctx, m)
			for _, n := range nodes {
				if strings.Contains(n.Flags, "fail") {
					return fmt.Errorf("%s holds %s as %s", m.Options().Addr, n.Addr, n.Flags)
				}
			}
			return err
		})
		return err == nil, fmt.Sprint(err)
	})
	return e
}

// ClusterNode is a node as a cluster node's CLUSTER NODES lists it.
type ClusterNode struct {
	Addr  string // host:port, without the bus port
	Flags string // e.g. "master", "myself,slave", "master,fail?"
}

// ClusterNodes are the nodes m knows: failed, syncing and new ones too,
// where a client's topology (CLUSTER SLOTS) leaves them out.
func ClusterNodes(ctx context.Context, m *redis.Client) ([]ClusterNode, error) {
	text, err := m.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, err
	}
	var nodes []ClusterNode
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("CLUSTER NODES of %s: line %q", m.Options().Addr, line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		nodes = append(nodes, ClusterNode{Addr: addr, Flags: f[2]})
	}
	return nodes, nil
}

// lockCluster holds a lock on the cluster at seeds, shared or exclusive
// (flock: between the test binaries go test runs side by side), until the
// test ends.
func lockCluster(t testing.TB, seeds string, how int) {
	t.Helper()
	name := filepath.Join(os.TempDir(), "lockstep-test-cluster-"+strings.NewReplacer(":", "_", ",", "-").Replace(seeds)+".lock")
	f, err := os.OpenFile(name, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("lock the test cluster: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		t.Fatalf("lock the test cluster (%s): %v", name, err)
	}
	t.Cleanup(func() { f.Close() }) // closing releases the lock
}

// unavailable stops a test whose servers are not configured: it fails when
// they are required (LOCKSTEP_TEST_REQUIRE=1, as scripts/test.sh sets),
// and skips otherwise.
func unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("LOCKSTEP_TEST_REQUIRE") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// NewOwnPrimary is New with a primary of the test's own, of the flavour
// LOCKSTEP_FLAVOR says (a private server process on a free port, its own
// data folder), which the test may kill and start again; the standby and
// Redis are the shared ones.
func NewOwnPrimary(t testing.TB) *Env {
	t.Helper()
	_, sAddr, rAddr := Servers(t)
	pAddr, env := ownServer(t, 1)
	e := build(t, pAddr, sAddr, rAddr, nil, func(*config.Config) {})
	e.ownPrimary = env
	return e
}

// NewOwnSites is NewOwnPrimary with a standby of the test's own as well,
// which writes a binlog (server id 2) as a primary does: the roles of the
// two sites can reverse.
func NewOwnSites(t testing.TB) *Env {
	t.Helper()
	_, _, rAddr := Servers(t)
	pAddr, env := ownServer(t, 1)
	sAddr := OwnServer(t, 2)
	e := build(t, pAddr, sAddr, rAddr, nil, func(*config.Config) {})
	e.ownPrimary = env
	return e
}

// NewOnOwnRedis is New with a Redis of the test's own, started with args
// (settings the shared one must not take while other packages use it).
func NewOnOwnRedis(t testing.TB, args ...string) *Env {
	t.Helper()
	pAddr, sAddr, _ := Servers(t)
	return build(t, pAddr, sAddr, OwnRedis(t, args...), nil, func(*config.Config) {})
}

// OwnRedis starts a redis-server of the test's own with args, on a free
// port, without persistence, and returns its address; it is killed when
// the test ends.
func OwnRedis(t testing.TB, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server (scripts/lib.sh installs it): %v", err)
	}
	port := strconv.Itoa(FreePorts(t, 1)[0])
	cmd := exec.Command(bin, append([]string{"--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir()}, args...)...)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	addr := "127.0.0.1:" + port
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	Eventually(t, 10*time.Second, func() (bool, string) {
		err := c.Ping(context.Background()).Err()
		return err == nil, "the test's own redis-server does not answer: " + fmt.Sprint(err)
	})
	return addr
}

// OwnServer starts a server of the test's own as scripts/lib.sh starts a
// primary (binlog on), with that server id, and returns its address; it is
// stopped when the test ends. A second standby, or a second primary.
func OwnServer(t testing.TB, serverID int) string {
	t.Helper()
	addr, _ := ownServer(t, serverID)
	return addr
}

// ownServer is OwnServer, with the environment of lib.sh for the server.
func ownServer(t testing.TB, serverID int) (string, []string) {
	t.Helper()
	port := strconv.Itoa(FreePorts(t, 1)[0])
	env := append(os.Environ(), "LOCKSTEP_DEV_DIR="+t.TempDir(), "LOCKSTEP_PRIMARY_PORT="+port, "LOCKSTEP_PRIMARY_SERVER_ID="+strconv.Itoa(serverID))
	lib(t, env, "start_primary")
	t.Cleanup(func() { lib(t, env, `stop "$DEV/primary/server.pid"`) })
	return "127.0.0.1:" + port, env
}

// KillPrimary kills the test's own primary server with SIGKILL, as a
// crash of the primary site would.
func (e *Env) KillPrimary(t testing.TB) {
	t.Helper()
	lib(t, e.ownPrimaryEnv(t), `stop "$DEV/primary/server.pid" KILL`)
}

// StartPrimary starts the test's own primary again on its data folder.
func (e *Env) StartPrimary(t testing.TB) {
	t.Helper()
	lib(t, e.ownPrimaryEnv(t), "start_primary")
}

func (e *Env) ownPrimaryEnv(t testing.TB) []string {
	if e.ownPrimary == nil {
		t.Fatal("the shared primary serves every test: only a primary of NewOwnPrimary may be stopped")
	}
	return e.ownPrimary
}

// build starts the broker with kafkaOpts, makes the test's config for the
// servers given, lets tweak change it, and connects as the config says.
func build(t testing.TB, pAddr, sAddr, rAddr string, kafkaOpts []kfake.Opt, tweak func(*config.Config)) *Env {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	kafkaDir := t.TempDir()
	c, err := startKafka(0, kafkaDir, kafkaOpts)
	if err != nil {
		t.Fatalf("start kfake: %v", err)
	}

	id := fmt.Sprintf("t%08x", rand.Uint32())
	cfg, err := config.Load("", nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Kafka.Brokers = c.ListenAddrs()
	cfg.Kafka.PrimaryTopic = id + ".primary"
	cfg.Kafka.StandbyTopic = id + ".standby"
	cfg.Primary.Address, cfg.Standby.Address, cfg.Redis.Address = pAddr, sAddr, rAddr
	cfg.Primary.Databases = []string{id}
	cfg.Producer.ServerID = 100000 + rand.Uint32N(1<<30)
	cfg.Producer.TransactionalID = id + "-producer"
	cfg.Applier.Name = id
	cfg.Cache.Group = id + "-cache"
	cfg.Cache.KeyPrefix = id + ":"
	cfg.Cache.TombstoneTTL = time.Hour
	cfg.Metrics.Listen = "" // tests run several instances of a service
	tweak(cfg)

	e := &Env{Cfg: cfg, Kafka: c, DB: id, kafkaDir: kafkaDir, kafkaOpts: kafkaOpts}
	t.Cleanup(func() { e.Kafka.Close() })
	if e.Primary, err = mysql.Open(ctx, "primary", cfg.Primary); err != nil {
		t.Fatalf("primary at %s (LOCKSTEP_TEST_PRIMARY) unreachable: %v", pAddr, err)
	}
	if e.Standby, err = mysql.Open(ctx, "standby", cfg.Standby); err != nil {
		t.Fatalf("standby at %s (LOCKSTEP_TEST_STANDBY) unreachable: %v", sAddr, err)
	}
	if e.Flavor, err = mysql.ServerFlavor(ctx, e.Primary); err != nil {
		t.Fatal(err)
	}
	if e.Redis, err = redisconn.Open(ctx, cfg.Redis); err != nil {
		t.Fatalf("Redis at %s (LOCKSTEP_TEST_REDIS, or LOCKSTEP_TEST_REDIS_CLUSTER) unreachable: %v", cfg.Redis.Address, err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		for _, db := range []*sql.DB{e.Primary, e.Standby} {
			_, _ = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+mysql.Quote(id))
			_, _ = db.ExecContext(ctx, "DELETE FROM lockstep.checkpoint WHERE name = ?", id)
		}
		// Deleted a thousand at a time (a test may leave 100,000s of keys),
		// one command each, since a cluster's keys are in many slots.
		pipe := e.Redis.Pipeline()
		_ = redisconn.Scan(ctx, e.Redis, "*"+id+":*", func(k string) error {
			pipe.Unlink(ctx, k)
			if pipe.Len() == 1000 {
				_, _ = pipe.Exec(ctx)
			}
			return nil
		})
		_, _ = pipe.Exec(ctx)
		e.Primary.Close()
		e.Standby.Close()
		e.Redis.Close()
	})
	return e
}

// Exec runs statements on a server and fails the test on error.
func Exec(t testing.TB, db *sql.DB, stmts ...string) {
	t.Helper()
	for _, s := range stmts {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// Eventually polls cond until it holds or timeout passes, then fails the
// test with cond's last description of what it saw.
func Eventually(t testing.TB, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, saw := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, saw)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// BinlogClients are the server ids of the clients the primary streams its
// binlog to (replicas, producers), as they registered.
func BinlogClients(t testing.TB, primary *sql.DB) []uint32 {
	t.Helper()
	flavor, err := mysql.ServerFlavor(context.Background(), primary)
	if err != nil {
		t.Fatal(err)
	}
	query := "SHOW REPLICA HOSTS"
	if flavor == mysql.MySQL {
		query = "SHOW REPLICAS"
	}
	rows, err := primary.Query(query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var ids []uint32
	for rows.Next() {
		var id uint32
		rest := make([]any, len(cols)-1)
		for i := range rest {
			rest[i] = new(sql.RawBytes)
		}
		if err := rows.Scan(append([]any{&id}, rest...)...); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return ids
}

// Count is SELECT COUNT(*) of a table, -1 while the table does not exist;
// any other error fails the test.
func Count(t testing.TB, db *sql.DB, table string) int {
	t.Helper()
	var n int
	err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n)
	if mysql.ErrorNumber(err) == 1146 || mysql.ErrorNumber(err) == 1049 { // no such table or database
		return -1
	}
	if err != nil {
		t.Fatalf("count %s: %v", table, err)
	}
	return n
}

// Seq is a table of the numbers 1..n in a column seq, to fill tables with
// INSERT ... SELECT: MariaDB's sequence engine, or on MySQL a cross join
// of digits.
func (e *Env) Seq(n int) string {
	if e.Flavor != mysql.MySQL {
		return fmt.Sprintf("%s.seq_1_to_%d", mysql.Quote(e.DB), n)
	}
	const digits = "(SELECT 0 d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)"
	sum, from := "1", ""
	for i, p := 0, 1; p < n; i, p = i+1, p*10 {
		sum += fmt.Sprintf(" + %d * d%d.d", p, i)
		if from != "" {
			from += " CROSS JOIN "
		}
		from += fmt.Sprintf("%s d%d", digits, i)
	}
	if from == "" {
		return "(SELECT 1 AS seq) AS seq"
	}
	return fmt.Sprintf("(SELECT %s AS seq FROM %s HAVING seq <= %d) AS seq", sum, from, n)
}

// Only stops a test that exercises what only one flavour of server has
// (MariaDB's sequences, MySQL's ...), saying so.
func (e *Env) Only(t testing.TB, f mysql.Flavor, what string) {
	t.Helper()
	if e.Flavor != f {
		t.Skipf("%s: %s only, the primary is %s", what, f, e.Flavor)
	}
}

// RedisNode is a node of the test Redis Cluster: its address, process and
// folder (as scripts/lib.sh's start_redis_cluster_node made it).
type RedisNode struct {
	Addr string
	PID  int
	Dir  string
}

// MasterOf is the master that holds key in the test Redis Cluster, and its
// node id.
func (e *Env) MasterOf(t testing.TB, key string) (*redis.Client, string) {
	t.Helper()
	ctx := context.Background()
	m, err := redisconn.MasterFor(ctx, e.Redis, key)
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.Do(ctx, "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatal(err)
	}
	return m, id
}

// MasterAndReplica are the master that holds key in the test Redis Cluster
// and its replica.
func (e *Env) MasterAndReplica(t testing.TB, key string) (master, replica RedisNode) {
	t.Helper()
	ctx := context.Background()
	m, id := e.MasterOf(t, key)
	// A master failed over by an earlier test may still wait for one.
	var lines []string
	var err error
	Eventually(t, 30*time.Second, func() (bool, string) {
		lines, err = m.Do(ctx, "CLUSTER", "REPLICAS", id).StringSlice()
		return err == nil && len(lines) > 0, fmt.Sprintf("the replicas of %s: %v %v", m.Options().Addr, lines, err)
	})
	addr, _, _ := strings.Cut(strings.Fields(lines[0])[1], "@")
	r := redis.NewClient(&redis.Options{Addr: addr})
	defer r.Close()
	return redisNode(t, m), redisNode(t, r)
}

func redisNode(t testing.TB, c *redis.Client) RedisNode {
	t.Helper()
	ctx := context.Background()
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		t.Fatal(err)
	}
	_, pid, _ := strings.Cut(info, "process_id:")
	n := RedisNode{Addr: c.Options().Addr}
	if n.PID, err = strconv.Atoi(strings.Fields(pid)[0]); err != nil {
		t.Fatalf("process_id of %s: %v", n.Addr, err)
	}
	dir, err := c.ConfigGet(ctx, "dir").Result()
	if err != nil {
		t.Fatal(err)
	}
	n.Dir = dir["dir"]
	return n
}

// StartRedisNode starts a killed node of the test Redis Cluster again; it
// rejoins the cluster (a master that was failed over, as a replica).
func (e *Env) StartRedisNode(t testing.TB, n RedisNode) {
	t.Helper()
	_, port, _ := strings.Cut(n.Addr, ":")
	lib(t, append(os.Environ(), "LOCKSTEP_DEV_DIR="+filepath.Dir(filepath.Dir(n.Dir))), "start_redis_cluster_node "+port)
	// Back as a replica once it has its master's data.
	c := redis.NewClient(&redis.Options{Addr: n.Addr})
	defer c.Close()
	Eventually(t, 30*time.Second, func() (bool, string) {
		info := c.Info(context.Background(), "replication").Val()
		return strings.Contains(info, "master_link_status:up"), "the node started again is not a replica in sync: " + info
	})
}
