package verify

import (
	"context"
	"database/sql"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/lockstep-dr/lockstep/internal/mysql"
	"github.com/lockstep-dr/lockstep/internal/sqltext"
)

// Object is one schema object's difference between primary and standby.
type Object struct {
	Kind, Name string // e.g. "view", "shop.v"
	Diff       string // "not on the standby", "not on the primary", "definitions differ"
}

// autoIncrement is the table option that counts inserts, which a rolled
// back insert moves on the primary only: not part of the definition.
var autoIncrement = regexp.MustCompile(` AUTO_INCREMENT=\d+`)

// Schemas compares the objects of the replicated databases: tables,
// sequences and views (as SHOW CREATE TABLE gives them), triggers,
// procedures, functions and events, definer included. The standby's
// triggers are compared without lockstep's guard, and its events held
// disabled because the primary runs them (SLAVESIDE_DISABLED, MySQL's REPLICA_SIDE_DISABLED) count as the
// primary's ENABLED.
// With carried (nil: none), the accounts it says are carried are compared
// too, by their grants (SHOW GRANTS, password hash included).
func Schemas(ctx context.Context, primary, standby *sql.DB, dbs []string, carried func(account string) bool) ([]Object, int, error) {
	p, err := objects(ctx, primary, dbs, carried)
	if err != nil {
		return nil, 0, fmt.Errorf("primary: %w", err)
	}
	s, err := objects(ctx, standby, dbs, carried)
	if err != nil {
		return nil, 0, fmt.Errorf("standby: %w", err)
	}
	var diffs []Object
	keys := make([]string, 0, len(p)+len(s))
	for k := range p {
		keys = append(keys, k)
	}
	for k := range s {
		if _, ok := p[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		kind, name, _ := strings.Cut(k, " ")
		pd, inP := p[k]
		sd, inS := s[k]
		switch {
		case !inS:
			diffs = append(diffs, Object{kind, name, "not on the standby"})
		case !inP:
			diffs = append(diffs, Object{kind, name, "not on the primary"})
		case pd != sd:
			diffs = append(diffs, Object{kind, name, "definitions differ: primary " + sqltext.Abbreviate(pd, 200) + " / standby " + sqltext.Abbreviate(sd, 200)})
		}
	}
	return diffs, len(keys), nil
}

// objects maps "kind db.name" to the object's normalised definition.
func objects(ctx context.Context, db *sql.DB, dbs []string, carried func(string) bool) (map[string]string, error) {
	out := make(map[string]string)
	if carried != nil {
		if err := accounts(ctx, db, carried, out); err != nil {
			return nil, err
		}
	}
	rows, err := db.QueryContext(ctx, "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_TYPE FROM information_schema.TABLES")
	if err != nil {
		return nil, fmt.Errorf("list tables: %w", err)
	}
	type table struct{ schema, name, kind string }
	var tables []table
	for rows.Next() {
		var t table
		if err := rows.Scan(&t.schema, &t.name, &t.kind); err != nil {
			rows.Close()
			return nil, err
		}
		if mysql.Replicated(t.schema, dbs) && t.kind != "TEMPORARY" && t.kind != "SYSTEM VIEW" {
			tables = append(tables, t)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	for _, t := range tables {
		def, err := showCreate(ctx, db, "SHOW CREATE TABLE "+mysql.QuoteTable(t.schema, t.name))
		if err != nil {
			return nil, err
		}
		kind := map[string]string{"VIEW": "view", "SEQUENCE": "sequence"}[t.kind]
		if kind == "" {
			kind = "table"
		}
		out[kind+" "+t.schema+"."+t.name] = autoIncrement.ReplaceAllString(def, "")
	}
	// kind, schema, name, attributes, body
	for _, q := range []string{
		`SELECT 'trigger', TRIGGER_SCHEMA, TRIGGER_NAME, CONCAT_WS(' ', ACTION_TIMING, EVENT_MANIPULATION, EVENT_OBJECT_TABLE, ACTION_ORDER, DEFINER, SQL_MODE), ACTION_STATEMENT FROM information_schema.TRIGGERS`,
		`SELECT LOWER(ROUTINE_TYPE), ROUTINE_SCHEMA, ROUTINE_NAME, CONCAT_WS(' ', DEFINER, DTD_IDENTIFIER, IS_DETERMINISTIC, SQL_DATA_ACCESS, SECURITY_TYPE, SQL_MODE), ROUTINE_DEFINITION FROM information_schema.ROUTINES`,
		`SELECT 'event', EVENT_SCHEMA, EVENT_NAME, CONCAT_WS(' ', DEFINER, EVENT_TYPE, EXECUTE_AT, INTERVAL_VALUE, INTERVAL_FIELD, IF(STATUS IN ('SLAVESIDE_DISABLED', 'REPLICA_SIDE_DISABLED'), 'ENABLED', STATUS), ON_COMPLETION), EVENT_DEFINITION FROM information_schema.EVENTS`,
	} {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			return nil, fmt.Errorf("list schema objects: %w", err)
		}
		for rows.Next() {
			var kind, schema, name string
			var attrs, body sql.NullString
			if err := rows.Scan(&kind, &schema, &name, &attrs, &body); err != nil {
				rows.Close()
				return nil, err
			}
			if mysql.Replicated(schema, dbs) {
				out[kind+" "+schema+"."+name] = attrs.String + " " + sqltext.TriggerBody(body.String)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// showCreate returns the definition column of a SHOW CREATE statement.
func showCreate(ctx context.Context, db *sql.DB, q string) (string, error) {
	rows, err := db.QueryContext(ctx, q)
	if err != nil {
		return "", fmt.Errorf("%s: %w", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil || !rows.Next() {
		return "", fmt.Errorf("%s: no answer (%v)", q, err)
	}
	vals := make([]sql.RawBytes, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	if err := rows.Scan(dest...); err != nil {
		return "", err
	}
	return string(vals[1]), rows.Err()
}

// accounts adds the grants of each carried account to out.
func accounts(ctx context.Context, db *sql.DB, carried func(string) bool, out map[string]string) error {
	rows, err := db.QueryContext(ctx, "SELECT User, Host FROM mysql.user")
	if err != nil {
		return fmt.Errorf("list accounts (the user needs SELECT on mysql.user): %w", err)
	}
	var names [][2]string
	for rows.Next() {
		var u, h string
		if err := rows.Scan(&u, &h); err != nil {
			rows.Close()
			return err
		}
		names = append(names, [2]string{u, h})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	quote := func(s string) string { return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'" }
	for _, n := range names {
		account, who := n[0]+"@"+n[1], quote(n[0])+"@"+quote(n[1])
		if n[1] == "" { // a role
			account, who = n[0], quote(n[0])
		}
		if !carried(account) {
			continue
		}
		rows, err := db.QueryContext(ctx, "SHOW GRANTS FOR "+who)
		if err != nil {
			return fmt.Errorf("SHOW GRANTS FOR %s: %w", who, err)
		}
		var grants []string
		for rows.Next() {
			var g string
			if err := rows.Scan(&g); err != nil {
				rows.Close()
				return err
			}
			grants = append(grants, g)
		}
		rows.Close()
		slices.Sort(grants)
		out["account "+account] = strings.Join(grants, "; ")
	}
	return nil
}
