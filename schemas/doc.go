// Package schemas is lockstep's wire contract: the JSON records carried by the
// primary log and the standby log, their JSON Schemas, and the SQL of
// lockstep's own tables.
//
// One record is one changed row (or one DDL statement). Values are lossless:
//
//   - NULL is JSON null; every other value is a JSON string.
//   - Integers (signed and unsigned, any width), DECIMAL, FLOAT and DOUBLE are
//     their decimal text; FLOAT and DOUBLE use the shortest text that reads
//     back to the same bits.
//   - DATE, DATETIME, TIMESTAMP and TIME are MySQL's text form with the
//     column's fractional digits; TIMESTAMP is in UTC.
//   - YEAR is four digits; ENUM is the member's name; SET is the member names
//     joined by commas; JSON is its text.
//   - Character columns are their text; columns marked "binary" in the
//     record's column list (BINARY, VARBINARY, BLOB, BIT and any column with
//     the binary character set) are base64 of the raw bytes.
//
// A record's version, used for compare-and-set in the cache, is its position
// in primary commit order: the primary-log offset it was read from.
package schemas
