package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
)

// checkpoint is the standby's applied position in the primary log, kept in
// the standby database itself and moved in the same transaction as the rows.
type checkpoint struct {
	name string
	// offset is the primary-log offset of the last record applied; -1 before any.
	offset int64
	// ddlOffset is the offset of a DDL statement that was started and may
	// have finished; -1 when none.
	ddlOffset int64
	// applied is every primary transaction the standby holds, by GTID.
	applied mysql.GTIDSet
	topicID string
	// rewindEnd is, after a rewind, the last primary offset the standby
	// log held then; -1 otherwise.
	rewindEnd int64
	// epoch numbers the primary log offset belongs to (schemas.Standby.Epoch).
	epoch int64
}

// loadCheckpoint creates lockstep's table if needed and reads (or creates)
// the checkpoint row.
func loadCheckpoint(ctx context.Context, db *sql.DB, name, topic string) (*checkpoint, error) {
	if err := mysql.PrepareCheckpoint(ctx, db); err != nil {
		return nil, err
	}
	cp := &checkpoint{name: name}
	var gtids string
	err := db.QueryRowContext(ctx, sqlSelectCheckpoint, name).Scan(&cp.offset, &cp.ddlOffset, &gtids, &cp.topicID, &cp.rewindEnd, &cp.epoch)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := db.ExecContext(ctx, sqlInsertCheckpoint, name, topic, 0); err != nil {
			return nil, fmt.Errorf("create checkpoint %q: %w", name, err)
		}
		cp.offset, cp.ddlOffset, cp.rewindEnd = -1, -1, -1
	} else if err != nil {
		return nil, mysql.Classify(fmt.Errorf("read checkpoint %q: %w", name, err))
	}
	if cp.applied, err = mysql.ParseGTIDSet(gtids); err != nil {
		return nil, service.Permanentf("checkpoint %q in lockstep.checkpoint: %w", name, err)
	}
	return cp, nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// advance moves the checkpoint to offset and the applied set, only if it is
// still where this applier last saw it.
func (cp *checkpoint) advance(ctx context.Context, ex execer, offset int64, applied mysql.GTIDSet) error {
	res, err := ex.ExecContext(ctx, sqlAdvanceCheckpoint, offset, applied.String(), cp.name, cp.offset)
	var n int64
	if err == nil {
		n, _ = res.RowsAffected()
	}
	return cp.checkAdvance(n, err)
}

// checkAdvance judges the outcome of sqlAdvanceCheckpoint: it must move
// exactly the checkpoint row this applier last saw.
func (cp *checkpoint) checkAdvance(n int64, err error) error {
	if err != nil {
		return fmt.Errorf("advance checkpoint %q: %w", cp.name, err)
	}
	if n != 1 {
		return errFenced(cp.name, cp.offset)
	}
	return nil
}

// errFenced: another applier moved the checkpoint. Not permanent: this one
// restarts, and then waits as the hot spare.
func errFenced(name string, offset int64) error {
	return fmt.Errorf("checkpoint %q is no longer at offset %d: another storage-applier is applying to this standby", name, offset)
}

// checkTopic binds the checkpoint to the primary log's identity: offsets of
// a deleted and re-created topic mean nothing to it.
func (cp *checkpoint) checkTopic(ctx context.Context, db *sql.DB, topic, id string) error {
	switch {
	case id == "" || cp.topicID == id:
		return nil
	case cp.topicID == "":
		_, err := db.ExecContext(ctx, sqlSetTopicID, id, cp.name)
		cp.topicID = id
		return err
	default:
		return service.Permanentf("topic %s was deleted and re-created (its id is %s, the standby checkpoint %q was written for %s at offset %d): its offsets are not the ones applied. Nothing was applied. If Kafka lost the primary log, start it again at what the standby holds with producer reseed --from-standby; otherwise re-bootstrap the standby",
			topic, id, cp.name, cp.topicID, cp.offset)
	}
}

// committed records the new position after the transaction committed.
func (cp *checkpoint) committed(offset int64, applied mysql.GTIDSet) {
	cp.offset, cp.applied, cp.ddlOffset = offset, applied, -1
}
