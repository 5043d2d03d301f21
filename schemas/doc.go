// Package schemas is lockstep's wire contract: the JSON records carried by the
// primary log and the standby log, their JSON Schemas, and the SQL of
// lockstep's own tables.
//
// One record is one changed row (or one DDL statement). Values are lossless;
// a column's "type" in the record's column list fixes the text form:
//
//   - NULL is JSON null; every other value is a JSON string.
//   - tinyint, smallint, mediumint, int, bigint (with " unsigned") and
//     decimal(p,s) are decimal text over their full range, decimal with all
//     s fraction digits.
//   - float and double are the shortest text that reads back to the same
//     bits ("3.4028235e+38", "5e-324", "-0").
//   - date, datetime(n) and timestamp(n) are "YYYY-MM-DD hh:mm:ss" with the
//     column's n fraction digits; timestamp is in UTC; zero dates are
//     "0000-00-00 00:00:00". time(n) is "[-]hhh:mm:ss" with n fraction digits.
//   - year is four digits ("0000", "1901".."2155").
//   - enum is the member's name ("" for the empty member); set is the member
//     names joined by commas; json is its text.
//   - char, varchar and text in utf8mb4, utf8mb3 or ascii are the text;
//     latin1 text is turned into UTF-8 with MySQL's latin1 table, so every
//     byte value survives; the standby turns it back.
//   - Columns marked "binary" are base64 of the raw bytes: binary(n) (padded
//     to n bytes, as the column keeps it), varbinary, blob, bit(n) (big-endian,
//     as SELECT returns it), geometry (SRID and WKB, as stored), and text
//     in any other character set. MariaDB's inet4, inet6 and uuid columns
//     come as "binary" too (type binary, their 4 or 16 stored bytes): the
//     binlog does not name those types.
//   - Generated columns (virtual and stored) are carried like the others; the
//     standby computes its own.
//
// The JSON Schemas check the structure and the type names; Record.Check
// checks what every consumer relies on (each image holds exactly the
// record's columns, DDL is a transaction of its own, ...).
//
// A snapshot (producer snapshot) publishes, at the start of a stream, the
// CREATE statements of the replicated databases and tables (op "ddl") and
// their rows (op "snapshot", an after image only), in transactions marked
// txn.snapshot whose GTID names the snapshot's position; a position record
// with that GTID position follows, where the binlog stream continues.
//
// A record's version, used for compare-and-set in the cache, is its position
// in primary commit order: the primary-log offset it was read from, after
// the epoch of that primary log (standby.epoch: a primary log started anew
// after Kafka was lost has a greater one), see FormatVersion.
package schemas
