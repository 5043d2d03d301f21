package cacheapply

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/service"
	"github.com/lockstep-dr/lockstep/internal/sqltext"
	"github.com/lockstep-dr/lockstep/schemas"
)

// ddlEffect is what a DDL statement may have done to tables.
type ddlEffect struct {
	// rows names the tables ("db.table") whose rows or columns it may have
	// changed; shaped, those whose columns or indexes it may have changed
	// (new tables too).
	rows, shaped []string
	// droppedDB is the database it dropped whole.
	droppedDB string
}

// ddlEffectOf reads what a DDL statement may have changed.
func ddlEffectOf(r *schemas.Record) ddlEffect {
	d, err := sqltext.ParseDDL(r.Statement)
	if err != nil {
		return ddlEffect{} // the producer carries only statements it reads
	}
	defaultDB := r.Schema
	if defaultDB == "" {
		defaultDB = r.Database
	}
	var names []string
	for _, n := range d.Objects {
		names = append(names, n.Qualified(defaultDB))
	}
	switch {
	case d.Kind == "DATABASE" && d.Verb == "DROP":
		return ddlEffect{droppedDB: d.Objects[0].Name}
	case d.Kind == "INDEX" && d.On != nil:
		return ddlEffect{shaped: []string{d.On.Qualified(defaultDB)}}
	case d.Kind != "TABLE":
		return ddlEffect{}
	case d.Verb == "CREATE" && !d.OrReplace:
		return ddlEffect{shaped: names} // a new table has no rows
	case d.Verb != "CREATE" && d.Verb != "ALTER" && d.Verb != "DROP" && d.Verb != "TRUNCATE" && d.Verb != "RENAME":
		return ddlEffect{} // ANALYZE, OPTIMIZE, ...: the rows stay
	}
	return ddlEffect{rows: names, shaped: names}
}

// afterDDL brings the keys of every cached table a DDL statement changed
// in line with the standby, at the statement's version: each row's keys are
// written again (new columns, a new shape), and keys that no row explains
// any more (a dropped, truncated or renamed table) are evicted. Changes
// after the statement have higher versions and win over this refresh.
func (a *cacheApplier) afterDDL(ctx context.Context, r *schemas.Record, version string) error {
	e := ddlEffectOf(r)
	cached := false
	for _, rule := range a.rules.Rules() {
		var names []string
		for _, t := range e.rows {
			if rule.Matches(t) {
				names = append(names, t)
			}
		}
		if e.droppedDB != "" && strings.HasPrefix(rule.Table, e.droppedDB+".") {
			names = append(names, rule.Table)
		}
		for _, name := range names {
			if err := a.refreshTable(ctx, r, rule, name, version); err != nil {
				return err
			}
		}
		cached = cached || slices.ContainsFunc(e.shaped, rule.Matches)
	}
	if !cached {
		return nil
	}
	// The new shape may no longer fit a rule (a unique index dropped).
	if err := a.rebuild.checkRules(ctx, nil); err != nil {
		return fmt.Errorf("after DDL %q: %w", r.Statement, err)
	}
	return nil
}

func (a *cacheApplier) refreshTable(ctx context.Context, r *schemas.Record, rule *cacherule.Rule, name, version string) error {
	b := &batch{w: a.w}
	keys := make(map[string]bool)
	// At the primary site there is no standby to read: keys are evicted.
	if rule.Refresh() && !a.primaryTopic {
		db, err := a.rebuild.database(ctx)
		if err != nil {
			return err
		}
		err = refill(ctx, db, b, rule, name, version, false, keys)
		if mysql.ErrorNumber(err) == 1146 || mysql.ErrorNumber(err) == 1049 { // gone: no rows
			err = nil
		}
		if err != nil {
			return service.Permanentf("after DDL %q: %w; update cache.rules and restart", r.Statement, err)
		}
	}
	refreshed := len(keys)
	evicted, err := evictUnexplained(ctx, b, rule, keys, version, false)
	if err != nil {
		return fmt.Errorf("evict the keys of %s: %w", name, err)
	}
	if err := b.flush(ctx); err != nil {
		return err
	}
	a.log.Info("DDL on a cached table: its keys brought in line with the standby", "table", name, "statement", r.Statement,
		"refreshed", refreshed, "evicted", evicted)
	return nil
}

// evictUnexplained evicts, at version, every key of a rule in Redis that
// explained (the keys rows explain) does not hold, and returns how many.
func evictUnexplained(ctx context.Context, out *batch, rule *cacherule.Rule, explained map[string]bool, version string, snapshot bool) (int, error) {
	n := 0
	err := rule.EachKey(ctx, out.w.rdb, func(k string) error {
		if explained[k] {
			return nil
		}
		explained[k] = true
		n++
		return out.add(ctx, op{key: k, version: version, mode: modeDelete, snapshot: snapshot})
	})
	return n, err
}
