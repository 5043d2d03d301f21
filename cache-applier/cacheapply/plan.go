package cacheapply

import (
	"slices"

	"github.com/lockstep-dr/lockstep/internal/cacherule"
	"github.com/lockstep-dr/lockstep/schemas"
)

// plan lists the cache ops one change, at version, makes under one rule. An
// update that changes a key column evicts the key built from the before
// image, so no key is left pointing at old data.
func plan(rule *cacherule.Rule, rec *schemas.Record, version string) ([]op, error) {
	var before, after []string
	var afterRow cacherule.Row
	// An update that leaves the rule's key columns alone keeps its keys.
	if rec.Before != nil && (rec.After == nil || !rule.SameKeys(rec.Before, rec.After)) {
		row, err := cacherule.FromRecord(rec, rec.Before)
		if err != nil {
			return nil, err
		}
		if before, err = rule.Render(row); err != nil {
			return nil, err
		}
	}
	if rec.After != nil {
		var err error
		if afterRow, err = cacherule.FromRecord(rec, rec.After); err != nil {
			return nil, err
		}
		if after, err = rule.Render(afterRow); err != nil {
			return nil, err
		}
	}
	var ops []op
	for _, k := range before {
		if !slices.Contains(after, k) {
			ops = append(ops, op{key: k, version: version, mode: modeDelete})
		}
	}
	return append(ops, rowOps(rule, after, afterRow, version)...), nil
}

// rowOps are the ops that leave a row's keys as the rule wants them.
func rowOps(rule *cacherule.Rule, keys []string, row cacherule.Row, version string) []op {
	ops := make([]op, 0, len(keys))
	for _, k := range keys {
		switch {
		case !rule.Refresh():
			ops = append(ops, op{key: k, version: version, mode: modeDelete})
		case rule.Format == "json":
			ops = append(ops, op{key: k, version: version, mode: modeString, ttl: rule.TTL, payload: []any{rule.JSON(row)}})
		default:
			ops = append(ops, op{key: k, version: version, mode: modeHash, ttl: rule.TTL, payload: rule.Hash(row)})
		}
	}
	return ops
}
