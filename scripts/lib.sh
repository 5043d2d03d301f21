# Shared helpers for the dev scripts. Sourced, never run.
# Every server lives under $DEV (default .dev/ in the repo) with a pid file,
# so the scripts start only what is not running and stop only what they started.
# LOCKSTEP_TLS_DIR (ca.pem, server.pem, server-key.pem) makes MariaDB and Redis
# take TLS connections only (the TLS tests start such servers).
# LOCKSTEP_FLAVOR=mysql starts MySQL 9.7 primary and standby instead of
# MariaDB: Debian's unstable suite's mysqld, run in a private root built
# once with debootstrap (LOCKSTEP_MYSQL_ROOT, outside the clone so that
# later runs reuse it), since its packages conflict with MariaDB's.
# LOCKSTEP_REDIS=cluster starts a Redis Cluster (3 masters, 3 replicas, on
# LOCKSTEP_REDIS_PORT, default 7001, and the 5 ports after it) instead of
# the single Redis, and points the services at it.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The stacks the scripts start, each in a folder and on ports of its own, so
# that they run side by side: the one table of them. Every port is below the
# kernel's ephemeral range (32768-), where a client connection may hold one
# (CI once saw a Redis node fail to start on 37006), a cluster node's bus
# port (its port + 10000) too. LOCKSTEP_STACK picks one (default dev);
# LOCKSTEP_DEV_DIR and LOCKSTEP_*_PORT override it, except in a script that
# owns its stack (OWN_STACK=test before sourcing): there the table alone says
# where the stack lives, whatever the caller's shell holds.
#   stack  folder      primary standby redis cluster kafka extra
#   dev    .dev          3307    3308   6380   7001   9092     0  the demo, dev-up.sh
#   test   .dev/test    13307   13308  16380  17101      0 13317  MySQL pair on extra, +1; Kafka in-process
#   chaos  .dev/chaos   23307   23308  26380  21001  29092     0
#   bench  .dev/bench   24307   24308  24380  22001  24092 24309  replicas on extra..+2, pprof on +3..+5
if [ -n "${OWN_STACK:-}" ]; then
	unset LOCKSTEP_DEV_DIR LOCKSTEP_PRIMARY_PORT LOCKSTEP_STANDBY_PORT LOCKSTEP_REDIS_PORT LOCKSTEP_KAFKA_PORT
	export LOCKSTEP_STACK="$OWN_STACK"
fi
STACK="${LOCKSTEP_STACK:-dev}"
case "$STACK" in
dev) stack=(.dev 3307 3308 6380 7001 9092 0) ;;
test) stack=(.dev/test 13307 13308 16380 17101 0 13317) ;;
chaos) stack=(.dev/chaos 23307 23308 26380 21001 29092 0) ;;
bench) stack=(.dev/bench 24307 24308 24380 22001 24092 24309) ;;
*) printf 'error: LOCKSTEP_STACK=%s: want dev (the default), test, chaos or bench\n' "$STACK" >&2; exit 1 ;;
esac
DEV="${LOCKSTEP_DEV_DIR:-$ROOT/${stack[0]}}"
PRIMARY_PORT="${LOCKSTEP_PRIMARY_PORT:-${stack[1]}}"
# Another server id lets a second primary (a shard, or a site the roles
# reverse to) write GTIDs of its own.
PRIMARY_SERVER_ID="${LOCKSTEP_PRIMARY_SERVER_ID:-1}"
STANDBY_PORT="${LOCKSTEP_STANDBY_PORT:-${stack[2]}}"
REDIS_MODE="${LOCKSTEP_REDIS:-single}"
CLUSTER_PORT="${stack[4]}"
REDIS_PORT="${LOCKSTEP_REDIS_PORT:-$([ "$REDIS_MODE" = cluster ] && echo "$CLUSTER_PORT" || echo "${stack[3]}")}"
KAFKA_PORT="${LOCKSTEP_KAFKA_PORT:-${stack[5]}}"
EXTRA_PORT="${stack[6]}"
# LOCKSTEP_WAN=50ms (a round trip, as devtool wan --shape takes it) makes the
# dev stack two sites: the producer, at the standby site with Kafka, reads
# the primary's binlog across a simulated WAN link on LOCKSTEP_WAN_PORT.
WAN_SHAPE="${LOCKSTEP_WAN:-}"
WAN_PORT="${LOCKSTEP_WAN_PORT:-$((PRIMARY_PORT + 10))}"
FLAVOR="${LOCKSTEP_FLAVOR:-mariadb}"
MYSQL_ROOT="${LOCKSTEP_MYSQL_ROOT:-/var/cache/lockstep/mysql-9.7}"
case "$FLAVOR" in
mariadb | mysql) ;;
*) printf 'error: LOCKSTEP_FLAVOR=%s: want mariadb (the default) or mysql\n' "$FLAVOR" >&2; exit 1 ;;
esac
case "$REDIS_MODE" in
single | cluster) ;;
*) printf 'error: LOCKSTEP_REDIS=%s: want single (the default) or cluster\n' "$REDIS_MODE" >&2; exit 1 ;;
esac
export PATH="/usr/local/go/bin:$PATH"

# The services and helpers find the private servers through these.
export LOCKSTEP_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export LOCKSTEP_PRIMARY_ADDRESS="127.0.0.1:$PRIMARY_PORT"
export LOCKSTEP_STANDBY_ADDRESS="127.0.0.1:$STANDBY_PORT"
export LOCKSTEP_REDIS_ADDRESS="127.0.0.1:$REDIS_PORT"
# cluster_seeds PORT: the seed addresses of the cluster on PORT..PORT+5,
# three of them: the client finds every node from any.
cluster_seeds() { echo "127.0.0.1:$1,127.0.0.1:$(($1 + 1)),127.0.0.1:$(($1 + 2))"; }
REDIS_CLI="redis-cli -p $REDIS_PORT" # for the scripts' hints
if [ "$REDIS_MODE" = cluster ]; then
	LOCKSTEP_REDIS_ADDRESS="$(cluster_seeds "$REDIS_PORT")"
	export LOCKSTEP_REDIS_CLUSTER=true
	REDIS_CLI="redis-cli -c -p $REDIS_PORT"
fi

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# alive PIDFILE: true when the pid file names a running process.
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_for DESC CMD...: retry CMD for up to 60 s.
wait_for() {
	local desc="$1"; shift
	for _ in $(seq 1 300); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	die "$desc did not answer within 60 s (see the logs under $DEV)"
}

# ensure_packages [EXTRA...]: install the Debian packages the stack needs (and
# EXTRA packages, each named after its command, or given as COMMAND:PACKAGE)
# when apt is there.
ensure_packages() {
	local missing=()
	for extra in "$@"; do command -v "${extra%%:*}" >/dev/null || missing+=("${extra#*:}"); done
	command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
	command -v mariadb >/dev/null || missing+=(mariadb-client)
	command -v redis-server >/dev/null || missing+=(redis-server)
	command -v kcat >/dev/null || missing+=(kcat)
	command -v sysbench >/dev/null || missing+=(sysbench)
	[ ${#missing[@]} -eq 0 ] && return 0
	if ! command -v apt-get >/dev/null; then
		die "missing ${missing[*]} and no apt-get to install them: install them by hand"
	fi
	log "installing ${missing[*]}"
	apt-get update -qq >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

# start_mariadb NAME PORT SERVER_ID EXTRA_ARGS...: a private server in $DEV/NAME.
start_mariadb() {
	local name="$1" port="$2" id="$3"; shift 3
	local dir="$DEV/$name"
	if alive "$dir/server.pid"; then return 0; fi
	mkdir -p "$dir"
	if [ ! -d "$dir/data/mysql" ]; then
		log "initialising $name in $dir/data"
		mariadb-install-db --no-defaults --user=root --datadir="$dir/data" --auth-root-authentication-method=normal \
			--skip-test-db >"$dir/install.log" 2>&1 || die "mariadb-install-db for $name failed: see $dir/install.log"
	fi
	local mariadbd=/usr/sbin/mariadbd args
	command -v mariadbd >/dev/null && mariadbd="$(command -v mariadbd)"
	server_args "$dir" "$dir" "$port" "$id"
	"$mariadbd" "${args[@]}" "$@" >>"$dir/stdout.log" 2>&1 &
	server_ready "MariaDB $name" "$dir" "$port"
}

# server_args DIR AT PORT SERVER_ID: the options both flavours' servers start
# with, in args: their files in DIR, which the server sees as AT; with
# LOCKSTEP_TLS_DIR, its certificates copied there and TLS required.
server_args() {
	local dir="$1" at="$2" port="$3" id="$4"
	args=(--no-defaults --user=root --datadir="$at/data" --port="$port" --bind-address=127.0.0.1
		--socket="$at/server.sock" --pid-file="$at/server.pid" --log-error="$at/error.log"
		--server-id="$id" --skip-name-resolve --innodb-buffer-pool-size=256M
		--innodb-flush-log-at-trx-commit=2 --sync-binlog=0 --max-connections=500 --max-allowed-packet=64M)
	if [ -n "${LOCKSTEP_TLS_DIR:-}" ]; then
		cp "$LOCKSTEP_TLS_DIR/ca.pem" "$LOCKSTEP_TLS_DIR/server.pem" "$LOCKSTEP_TLS_DIR/server-key.pem" "$dir/"
		args+=(--ssl-ca="$at/ca.pem" --ssl-cert="$at/server.pem" --ssl-key="$at/server-key.pem" --require-secure-transport=ON)
	fi
}

# ensure_mysql_root: the private root MySQL runs in, built when missing
# (debootstrap of Debian sid with mysql-server-core, about a minute or five),
# from the Debian archive apt already uses.
ensure_mysql_root() {
	[ -x "$MYSQL_ROOT/usr/sbin/mysqld" ] && return 0
	command -v debootstrap >/dev/null || ensure_packages debootstrap
	local mirror
	mirror="$(grep -hoE '^(URIs:|deb) +https?://[^ ]+' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null |
		grep -v security | head -1 | awk '{print $2}')"
	mirror="${mirror:-http://deb.debian.org/debian}"
	log "building the MySQL root in $MYSQL_ROOT (debootstrap sid from $mirror; log: $MYSQL_ROOT.log)"
	rm -rf "$MYSQL_ROOT.tmp"
	mkdir -p "$(dirname "$MYSQL_ROOT")"
	debootstrap --variant=minbase --include=mysql-server-core,mysql-client sid "$MYSQL_ROOT.tmp" "$mirror" \
		>"$MYSQL_ROOT.log" 2>&1 || die "debootstrap of the MySQL root failed: see $MYSQL_ROOT.log"
	mv "$MYSQL_ROOT.tmp" "$MYSQL_ROOT"
}

# in_mysql_root DIR CMD...: run CMD in the MySQL root, with DIR seen there as
# /srv. The mount lives in the command's own mount namespace only: it goes
# with the process, and nothing on the host is mounted.
in_mysql_root() {
	local dir="$1"; shift
	mkdir -p "$MYSQL_ROOT/srv"
	unshare --mount sh -c 'mount --bind "$1" "$2/srv" && shift && exec chroot "$@"' sh "$dir" "$MYSQL_ROOT" "$@"
}

# start_mysql NAME PORT SERVER_ID EXTRA_ARGS...: a private MySQL in $DEV/NAME
# (paths below /srv are $DEV/NAME's).
start_mysql() {
	local name="$1" port="$2" id="$3"; shift 3
	local dir="$DEV/$name"
	if alive "$dir/server.pid"; then return 0; fi
	ensure_mysql_root
	mkdir -p "$dir"
	if [ ! -d "$dir/data/mysql" ]; then
		log "initialising MySQL $name in $dir/data"
		rm -rf "$dir/data"
		in_mysql_root "$dir" /usr/sbin/mysqld --no-defaults --initialize-insecure --user=root --datadir=/srv/data \
			>"$dir/install.log" 2>&1 || die "mysqld --initialize for $name failed: see $dir/install.log"
	fi
	local args
	server_args "$dir" /srv "$port" "$id"
	in_mysql_root "$dir" /usr/sbin/mysqld "${args[@]}" --mysqlx=OFF --secure-file-priv= "$@" >>"$dir/stdout.log" 2>&1 &
	server_ready "MySQL $name" "$dir" "$port"
}

# server_ready DESC DIR PORT: wait for a server just started, then let root
# in over TCP from 127.0.0.1, as the services connect (kept out of the
# binlog, so that a restart adds no transaction of its own).
server_ready() {
	local desc="$1" dir="$2" port="$3" tcp_tls=()
	[ -n "${LOCKSTEP_TLS_DIR:-}" ] && tcp_tls=(--ssl --ssl-ca="$LOCKSTEP_TLS_DIR/ca.pem")
	wait_for "$desc on 127.0.0.1:$port" mariadb --no-defaults -uroot --socket="$dir/server.sock" -e 'SELECT 1'
	mariadb --no-defaults -uroot --socket="$dir/server.sock" -e \
		"SET SESSION sql_log_bin = 0; CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'; GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;"
	wait_for "$desc over TCP" mariadb --no-defaults "${tcp_tls[@]}" -h127.0.0.1 -P"$port" -uroot -e 'SELECT 1'
}

# The primary: binlog in ROW format with full images and column metadata,
# GTIDs on; on MySQL, GTID mode.
start_primary() {
	if [ "$FLAVOR" = mysql ]; then
		start_mysql primary "$PRIMARY_PORT" "$PRIMARY_SERVER_ID" --log-bin=binlog --gtid-mode=ON --enforce-gtid-consistency=ON \
			--binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL
		return
	fi
	start_mariadb primary "$PRIMARY_PORT" "$PRIMARY_SERVER_ID" --log-bin="$DEV/primary/data/binlog" --binlog-format=ROW \
		--binlog-row-image=FULL --binlog-row-metadata=FULL --gtid-strict-mode=1 --log-slave-updates=1
}

# The standby takes writes from lockstep only: read_only keeps out every
# account without READ_ONLY ADMIN (MySQL: CONNECTION_ADMIN), as on a native
# replica.
start_standby() {
	if [ "$FLAVOR" = mysql ]; then
		start_mysql standby "$STANDBY_PORT" 2 --skip-log-bin --read-only=ON
		return
	fi
	start_mariadb standby "$STANDBY_PORT" 2 --skip-log-bin --read-only=ON
}

# redis_args PORT: the options of a Redis server on PORT (TLS only when
# LOCKSTEP_TLS_DIR is set), in listen, and redis-cli's to reach it, in cli.
redis_args() {
	listen=(--port "$1") cli=(-p "$1")
	if [ -n "${LOCKSTEP_TLS_DIR:-}" ]; then
		listen=(--port 0 --tls-port "$1" --tls-cert-file "$LOCKSTEP_TLS_DIR/server.pem"
			--tls-key-file "$LOCKSTEP_TLS_DIR/server-key.pem" --tls-ca-cert-file "$LOCKSTEP_TLS_DIR/ca.pem" --tls-auth-clients optional
			--tls-cluster yes --tls-replication yes)
		cli+=(--tls --cacert "$LOCKSTEP_TLS_DIR/ca.pem")
	fi
}

# start_redis_server DIR PORT EXTRA_ARGS...: one private Redis, no persistence.
start_redis_server() {
	local dir="$1" port="$2" listen cli; shift 2
	if alive "$dir/redis.pid"; then return 0; fi
	mkdir -p "$dir"
	redis_args "$port"
	redis-server "${listen[@]}" --bind 127.0.0.1 --daemonize yes --pidfile "$dir/redis.pid" \
		--dir "$dir" --save "" --appendonly no --logfile "$dir/redis.log" "$@" >/dev/null
	wait_for "Redis on 127.0.0.1:$port" redis-cli "${cli[@]}" ping
}

# start_redis: the private Redis, or with LOCKSTEP_REDIS=cluster a Redis
# Cluster of 3 masters and 3 replicas on REDIS_PORT..REDIS_PORT+5.
start_redis() {
	if [ "$REDIS_MODE" = cluster ]; then
		start_redis_cluster
		return
	fi
	start_redis_server "$DEV/redis" "$REDIS_PORT"
}

start_redis_cluster() {
	local nodes=() port listen cli
	for port in $(seq "$REDIS_PORT" $((REDIS_PORT + 5))); do
		start_redis_cluster_node "$port"
		nodes+=("127.0.0.1:$port")
	done
	redis_args "$REDIS_PORT"
	# New nodes know only themselves; nodes started again on their
	# nodes.conf find each other by themselves.
	if redis-cli "${cli[@]}" cluster info | grep -q '^cluster_known_nodes:1\b'; then
		log "creating the Redis Cluster ${nodes[*]}"
		redis-cli "${cli[@]}" --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes >"$DEV/redis-cluster/create.log" 2>&1 ||
			die "redis-cli --cluster create failed: see $DEV/redis-cluster/create.log"
	fi
	for port in $(seq "$REDIS_PORT" $((REDIS_PORT + 5))); do
		redis_args "$port"
		wait_for "the Redis Cluster node on 127.0.0.1:$port" bash -c "redis-cli ${cli[*]} cluster info | grep -q '^cluster_state:ok'"
		# Replicas attach after the slots are served: wait until each has
		# its master's data, so that a test may fail a master over.
		wait_for "the Redis Cluster node on 127.0.0.1:$port to be a master or a replica in sync" bash -c \
			"redis-cli ${cli[*]} info replication | grep -qE '^(master_link_status:up|connected_slaves:1)'"
	done
}

# start_redis_cluster_node PORT: one node of the cluster, in
# $DEV/redis-cluster/PORT; started again, it rejoins by its nodes.conf.
start_redis_cluster_node() {
	# A node gone for 2 s is failed over: tests kill masters.
	start_redis_server "$DEV/redis-cluster/$1" "$1" --cluster-enabled yes \
		--cluster-config-file "$DEV/redis-cluster/$1/nodes.conf" --cluster-node-timeout 2000
}

# stop_redis: whichever Redis start_redis started.
stop_redis() {
	local f
	for f in "$DEV/redis/redis.pid" "$DEV"/redis-cluster/*/redis.pid; do
		[ -e "$f" ] && stop "$f" TERM
	done
	return 0
}

# build_tools: the three services and the dev helpers, into $DEV/bin.
# LOCKSTEP_SKIP_BUILD=1 keeps binaries already built (the chaos harness
# restarts services with the binaries it started with).
build_tools() {
	if [ -n "${LOCKSTEP_SKIP_BUILD:-}" ] && [ -x "$DEV/bin/producer" ]; then return 0; fi
	mkdir -p "$DEV/bin"
	(cd "$ROOT" && go build -o "$DEV/bin/" ./producer ./storage-applier ./cache-applier ./scripts/devkafka ./scripts/devtool ./examples/users) \
		|| die "go build failed"
}

start_kafka() {
	local dir="$DEV/kafka"
	if alive "$dir/kafka.pid"; then return 0; fi
	mkdir -p "$dir"
	[ -x "$DEV/bin/devkafka" ] || build_tools
	nohup "$DEV/bin/devkafka" --port "$KAFKA_PORT" --data "$dir/data" >>"$dir/kafka.log" 2>&1 &
	echo $! >"$dir/kafka.pid"
	wait_for "Kafka (kfake) on 127.0.0.1:$KAFKA_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$KAFKA_PORT"
}

# start_wan: the WAN link between the sites (LOCKSTEP_WAN), if asked for.
start_wan() {
	[ -n "$WAN_SHAPE" ] || return 0
	local dir="$DEV/wan"
	if alive "$dir/wan.pid"; then return 0; fi
	mkdir -p "$dir"
	[ -x "$DEV/bin/devtool" ] || build_tools
	nohup "$DEV/bin/devtool" wan --listen "127.0.0.1:$WAN_PORT" --to "127.0.0.1:$PRIMARY_PORT" --shape "$WAN_SHAPE" >>"$dir/wan.log" 2>&1 &
	echo $! >"$dir/wan.pid"
	wait_for "the WAN link on 127.0.0.1:$WAN_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$WAN_PORT"
}

# stop PIDFILE SIGNAL: stop the process a pid file names and wait for it to go.
stop() {
	local pidfile="$1" sig="${2:-TERM}"
	alive "$pidfile" || { rm -f "$pidfile"; return 0; }
	local pid; pid="$(cat "$pidfile")"
	kill -s "$sig" "$pid"
	for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
	rm -f "$pidfile"
}
