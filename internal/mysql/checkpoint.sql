-- lockstep's own state in the standby database.
-- The storage-applier writes applied_offset in the same transaction as the
-- rows it applied, so the checkpoint can never disagree with the data.
CREATE DATABASE IF NOT EXISTS lockstep;
CREATE TABLE IF NOT EXISTS lockstep.checkpoint (
  name             VARCHAR(191) NOT NULL PRIMARY KEY,
  topic            VARCHAR(249) NOT NULL,
  topic_partition  INT NOT NULL,
  -- the primary log's topic id: a re-created topic restarts its offsets
  topic_id         VARCHAR(64) NOT NULL DEFAULT '',
  applied_offset   BIGINT NOT NULL,
  -- every primary transaction applied, as a MariaDB GTID set (last
  -- sequence number per domain): a duplicate in the log is skipped
  gtid             VARCHAR(1024) NOT NULL,
  -- the offset of a DDL statement that was started but may not have finished
  -- (DDL commits on its own and cannot join the checkpoint's transaction)
  ddl_offset       BIGINT NULL,
  updated_at       DATETIME(6) NOT NULL,
  -- after storage-applier rewind: the last primary offset the standby log
  -- held then; the applier applies up to it again and republishes it
  rewind_end       BIGINT NOT NULL DEFAULT -1,
  -- numbers the primary log applied_offset belongs to: producer reseed
  -- moves the standby onto a primary log started anew, in the next epoch
  -- (the cache's versions are (epoch, offset) pairs)
  epoch            BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB;
-- Changes the standby made itself, which no primary record carries (the
-- cascades of foreign keys): written in the same transaction as the rows
-- that set them off, so that the standby log gets them even after a crash
-- between the standby's COMMIT and their publication; deleted once published.
CREATE TABLE IF NOT EXISTS lockstep.standby_changes (
  applier          VARCHAR(191) NOT NULL,
  -- the primary-log offset of the record whose change set it off
  primary_offset   BIGINT NOT NULL,
  seq              INT NOT NULL,
  -- the standby-log record, JSON
  record           MEDIUMBLOB NOT NULL,
  PRIMARY KEY (applier, primary_offset, seq)
) ENGINE=InnoDB;
