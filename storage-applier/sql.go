package main

// The storage-applier's own statements. Row statements are built per table
// in rows.go from quoted identifiers and placeholders, never from values.
const (
	sqlSelectCheckpoint = `SELECT applied_offset, COALESCE(ddl_offset, -1), gtid, topic_id, rewind_end, epoch FROM lockstep.checkpoint WHERE name = ?`
	sqlRewind           = `UPDATE lockstep.checkpoint SET applied_offset = ?, gtid = ?, ddl_offset = NULL, rewind_end = ?, updated_at = NOW(6)
		WHERE name = ? AND applied_offset = ?`
	// A checkpoint learns its topic's id once, before anything is applied.
	sqlSetTopicID = `UPDATE lockstep.checkpoint SET topic_id = ? WHERE name = ? AND topic_id = ''`
	// The hot-spare lock: held by the one applier that applies.
	sqlLockHolder       = `SELECT IS_USED_LOCK(?) = CONNECTION_ID()`
	sqlInsertCheckpoint = `INSERT INTO lockstep.checkpoint (name, topic, topic_partition, applied_offset, gtid, updated_at, epoch)
		VALUES (?, ?, 0, -1, '', NOW(6), ?)`
	// The applied_offset condition fences a second applier: only the one that
	// read the current offset can move it.
	sqlAdvanceCheckpoint = `UPDATE lockstep.checkpoint SET applied_offset = ?, gtid = ?, ddl_offset = NULL, updated_at = NOW(6)
		WHERE name = ? AND applied_offset = ?`
	sqlMarkDDL = `UPDATE lockstep.checkpoint SET ddl_offset = ?, updated_at = NOW(6)
		WHERE name = ? AND applied_offset = ?`
	sqlSchemaExists = `SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`
)

const (
	sqlInsertChange  = `REPLACE INTO lockstep.standby_changes (applier, primary_offset, seq, record) VALUES (?, ?, ?, ?)`
	sqlSelectChanges = `SELECT record FROM lockstep.standby_changes WHERE applier = ? AND primary_offset BETWEEN ? AND ? ORDER BY primary_offset, seq`
	// published up to the first offset, or left beyond the checkpoint
	// (the second) by an apply that a rewind undid
	sqlPruneChanges = `DELETE FROM lockstep.standby_changes WHERE applier = ? AND (primary_offset <= ? OR primary_offset > ?)`
	// sqlReferencing lists the foreign keys that reference a table, a row
	// per column, with their actions.
	sqlReferencing = `SELECT rc.CONSTRAINT_SCHEMA, rc.TABLE_NAME, rc.CONSTRAINT_NAME, rc.DELETE_RULE, rc.UPDATE_RULE, k.COLUMN_NAME, k.REFERENCED_COLUMN_NAME
		FROM information_schema.REFERENTIAL_CONSTRAINTS rc
		JOIN information_schema.KEY_COLUMN_USAGE k
		  ON k.CONSTRAINT_SCHEMA = rc.CONSTRAINT_SCHEMA AND k.CONSTRAINT_NAME = rc.CONSTRAINT_NAME AND k.TABLE_NAME = rc.TABLE_NAME
		WHERE rc.UNIQUE_CONSTRAINT_SCHEMA = ? AND rc.REFERENCED_TABLE_NAME = ? AND k.REFERENCED_COLUMN_NAME IS NOT NULL
		ORDER BY rc.CONSTRAINT_SCHEMA, rc.TABLE_NAME, rc.CONSTRAINT_NAME, k.ORDINAL_POSITION`
)

// sqlFoldable says whether a table's changes may be folded (fold.go):
// InnoDB, a primary key none of whose columns is FLOAT or DOUBLE, no other
// unique key, no foreign key in or out, no trigger, no CHECK constraint.
const sqlFoldable = `SELECT
	(SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?) = 'InnoDB'
	AND (SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_KEY = 'PRI' AND DATA_TYPE NOT IN ('float', 'double')) =
		(SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY')
	AND (SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND INDEX_NAME = 'PRIMARY') > 0
	AND (SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND NON_UNIQUE = 0 AND INDEX_NAME <> 'PRIMARY') = 0
	AND (SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE (CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ?) OR (UNIQUE_CONSTRAINT_SCHEMA = ? AND REFERENCED_TABLE_NAME = ?)) = 0
	AND (SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE EVENT_OBJECT_SCHEMA = ? AND EVENT_OBJECT_TABLE = ?) = 0
	AND (SELECT COUNT(*) FROM information_schema.TABLE_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ? AND TABLE_NAME = ? AND CONSTRAINT_TYPE = 'CHECK') = 0`
