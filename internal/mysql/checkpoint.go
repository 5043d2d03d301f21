package mysql

import (
	"context"
	"database/sql"
	_ "embed"
	"errors"
	"fmt"
)

// Applied is a storage-applier's checkpoint on the standby: what it holds
// of the primary log.
type Applied struct {
	// Offset is the primary-log offset of the last record applied; -1 before any.
	Offset int64
	// GTIDs is every primary transaction applied, as a GTID set.
	GTIDs string
	// Epoch numbers the primary log Offset belongs to (schemas.Standby.Epoch).
	Epoch int64
	// TopicID is the id of that primary log's topic ("" before it was read).
	TopicID string
}

// Checkpoint reads the storage-applier's checkpoint on the standby, or
// offset -1 and no GTIDs when nothing was applied yet (no row, or no
// checkpoint table).
func Checkpoint(ctx context.Context, q RowQuerier, applier string) (Applied, error) {
	a := Applied{Offset: -1}
	err := q.QueryRowContext(ctx, "SELECT applied_offset, gtid, epoch, topic_id FROM lockstep.checkpoint WHERE name = ?", applier).Scan(&a.Offset, &a.GTIDs, &a.Epoch, &a.TopicID)
	if ErrorNumber(err) == 1054 {
		// a table of a storage-applier from before epochs: epoch 0
		err = q.QueryRowContext(ctx, "SELECT applied_offset, gtid FROM lockstep.checkpoint WHERE name = ?", applier).Scan(&a.Offset, &a.GTIDs)
	}
	if errors.Is(err, sql.ErrNoRows) || noCheckpointTable(err) {
		return Applied{Offset: -1}, nil
	}
	if err != nil {
		return Applied{Offset: -1}, fmt.Errorf("read the standby checkpoint %q (applier.name): %w", applier, err)
	}
	return a, nil
}

// CheckpointSQL creates lockstep's own tables on the standby.
//
//go:embed checkpoint.sql
var CheckpointSQL string

// noCheckpointTable: the server has no lockstep.checkpoint (1146: no such
// table; MySQL: 1049, no lockstep database).
func noCheckpointTable(err error) bool {
	n := ErrorNumber(err)
	return n == 1146 || n == 1049
}

// NoCheckpoint reports whether err says the server has no checkpoint
// table, or it lacks the column asked for (1054: a table of an earlier
// lockstep).
func NoCheckpoint(err error) bool { return noCheckpointTable(err) || ErrorNumber(err) == 1054 }

// PrepareCheckpoint creates lockstep's tables on the standby if needed
// (CheckpointSQL), and adds the columns a checkpoint table of an
// earlier lockstep lacks.
func PrepareCheckpoint(ctx context.Context, db *sql.DB) error {
	if _, err := db.ExecContext(ctx, CheckpointSQL); err != nil {
		return fmt.Errorf("create lockstep.checkpoint on the standby (the user needs CREATE on lockstep.*): %w", err)
	}
	for _, c := range []struct{ name, def string }{
		{"rewind_end", "BIGINT NOT NULL DEFAULT -1"},
		{"epoch", "BIGINT NOT NULL DEFAULT 0"},
	} {
		var has int
		err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = 'lockstep' AND TABLE_NAME = 'checkpoint' AND COLUMN_NAME = ?", c.name).Scan(&has)
		if err == nil && has == 0 {
			_, err = db.ExecContext(ctx, "ALTER TABLE lockstep.checkpoint ADD COLUMN "+c.name+" "+c.def)
		}
		if err != nil {
			return fmt.Errorf("add column %s to lockstep.checkpoint on the standby (the user needs ALTER on lockstep.*): %w", c.name, err)
		}
	}
	return nil
}

// NewEpoch moves the checkpoint of applier onto a primary log started anew
// (topic id topicID) at what it has applied: the next epoch, applied up to
// the log's first record, at offset start, the same GTID set. It moves it
// only from was, and
// drops the changes the standby made that were not published yet (they
// were for the standby log that is gone; the cache is rebuilt from the
// standby).
func NewEpoch(ctx context.Context, db *sql.DB, applier string, was Applied, topicID string, start int64) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit, a no-op
	res, err := tx.ExecContext(ctx, `UPDATE lockstep.checkpoint SET epoch = ?, topic_id = ?, applied_offset = ?, ddl_offset = NULL, rewind_end = -1, updated_at = NOW(6)
		WHERE name = ? AND epoch = ? AND applied_offset = ? AND gtid = ?`, was.Epoch+1, topicID, start-1, applier, was.Epoch, was.Offset, was.GTIDs)
	var n int64
	if err == nil {
		n, err = res.RowsAffected()
	}
	if err == nil && n != 1 {
		err = fmt.Errorf("it moved since it was read: is a storage-applier running?")
	}
	if err == nil {
		_, err = tx.ExecContext(ctx, "DELETE FROM lockstep.standby_changes WHERE applier = ?", applier)
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		return fmt.Errorf("move the standby checkpoint %q to epoch %d: %w", applier, was.Epoch+1, err)
	}
	return nil
}
