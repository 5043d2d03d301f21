package main

// The storage-applier's own statements. Row statements are built per table
// in rows.go from quoted identifiers and placeholders, never from values.
const (
	sqlSelectCheckpoint = `SELECT applied_offset, COALESCE(ddl_offset, -1), gtid, topic_id, rewind_end FROM lockstep.checkpoint WHERE name = ?`
	// A checkpoint table from before rewind existed gets its column.
	sqlHasRewindEnd = `SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'lockstep' AND TABLE_NAME = 'checkpoint' AND COLUMN_NAME = 'rewind_end'`
	sqlAddRewindEnd = `ALTER TABLE lockstep.checkpoint ADD COLUMN rewind_end BIGINT NOT NULL DEFAULT -1`
	sqlRewind       = `UPDATE lockstep.checkpoint SET applied_offset = ?, gtid = ?, ddl_offset = NULL, rewind_end = ?, updated_at = NOW(6)
		WHERE name = ? AND applied_offset = ?`
	// A checkpoint learns its topic's id once, before anything is applied.
	sqlSetTopicID = `UPDATE lockstep.checkpoint SET topic_id = ? WHERE name = ? AND topic_id = ''`
	// The hot-spare lock: held by the one applier that applies.
	sqlGetLock          = `SELECT GET_LOCK(?, 0)`
	sqlLockHolder       = `SELECT IS_USED_LOCK(?) = CONNECTION_ID()`
	sqlInsertCheckpoint = `INSERT INTO lockstep.checkpoint (name, topic, topic_partition, applied_offset, gtid, updated_at)
		VALUES (?, ?, 0, -1, '', NOW(6))`
	// The applied_offset condition fences a second applier: only the one that
	// read the current offset can move it.
	sqlAdvanceCheckpoint = `UPDATE lockstep.checkpoint SET applied_offset = ?, gtid = ?, ddl_offset = NULL, updated_at = NOW(6)
		WHERE name = ? AND applied_offset = ?`
	sqlMarkDDL = `UPDATE lockstep.checkpoint SET ddl_offset = ?, updated_at = NOW(6)
		WHERE name = ? AND applied_offset = ?`
	sqlSchemaExists = `SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?`
)
