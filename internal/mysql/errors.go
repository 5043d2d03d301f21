package mysql

import (
	"errors"

	gomysql "github.com/go-mysql-org/go-mysql/mysql"
	"github.com/go-sql-driver/mysql"

	"github.com/lockstep-dr/lockstep/internal/service"
)

// ErrorNumber is the server's error number, from either client library
// (database/sql's driver or go-mysql's binlog client), or 0 for errors that
// are not the server's.
func ErrorNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	var ge *gomysql.MyError
	if errors.As(err, &ge) {
		return ge.Code
	}
	return 0
}

// transient are the server errors that go away by themselves: the
// connection, the server's load, locks. Everything else the server says is
// about the data, the schema or the privileges, and repeats on every retry.
var transient = map[uint16]bool{
	1021: true,                         // disk full: waits for space
	1037: true, 1038: true, 1041: true, // out of memory
	1040: true,                                     // too many connections
	1053: true,                                     // server shutdown in progress
	1152: true,                                     // aborted connection
	1153: true,                                     // packet bigger than max_allowed_packet was refused mid-stream: the next session asks again
	1158: true, 1159: true, 1160: true, 1161: true, // network read/write errors
	1203: true,             // max_user_connections
	1205: true,             // lock wait timeout
	1213: true,             // deadlock
	1317: true,             // query interrupted
	1615: true,             // prepared statement needs to be re-prepared
	1927: true,             // connection killed
	2006: true, 2013: true, // server gone, lost connection
}

// hints say what to do about the permanent errors an operator meets most.
var hints = map[uint16]string{
	1062: "the standby already holds this key: it has diverged from the primary (a row written there by hand, or a second writer); find out why, then repair it (README, Operating) or bootstrap it again",
	1032: "the standby lacks the row: it has diverged from the primary; find out why, then repair it (README, Operating) or bootstrap it again",
	1451: "a row the primary deleted or changed is still referenced on the standby (a foreign key with no action): the standby has diverged from the primary; find out why, then repair it (README, Operating) or bootstrap it again",
	1452: "the row references a row the standby lacks (a foreign key): the standby has diverged from the primary, or the referenced table is in a database lockstep does not replicate; find out why, then repair it or bootstrap it again",
	1044: "grant the user the privileges README, Security lists",
	1045: "check the user and password in the config",
	1142: "grant the user the privileges README, Security lists",
	1227: "grant the user the privileges README, Security lists",
	1290: "the server runs with an option that refuses this (read_only?): grant the user READ_ONLY ADMIN (MySQL: CONNECTION_ADMIN), or turn the option off",
}

// Classify sorts an error from MySQL/MariaDB into retry (returned as is)
// and stop (service.Permanent), in one place for every service: errors
// that are not the server's (network, timeouts) and the transient server
// errors above are retried; every other server error is permanent, with
// what to do when it is a common one.
func Classify(err error) error {
	if err == nil || service.IsPermanent(err) {
		return err
	}
	n := ErrorNumber(err)
	if n == 0 || transient[n] {
		return err
	}
	return service.PermanentTodo(err, hints[n])
}
