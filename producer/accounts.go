package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/go-mysql-org/go-mysql/replication"

	"github.com/lockstep-dr/lockstep/internal/sqltext"
	"github.com/lockstep-dr/lockstep/schemas"
)

// account carries a statement on accounts when every account it names is
// one primary.accounts names and none is lockstep's own, with passwords
// given as text turned into their hashes. A statement that names carried
// and other accounts together is refused: the standby cannot take half.
func (t *tailer) account(ctx context.Context, h *replication.EventHeader, schema, q string, d sqltext.DDL) error {
	if len(t.cfg.Primary.Accounts) == 0 || len(d.Accounts) == 0 {
		t.log.Debug("statement on accounts or the server, not carried", "gtid", t.gtid, "query", sqltext.Abbreviate(sqltext.HashPasswords(q), 200))
		return nil
	}
	in, out := partition(d.Accounts, t.cfg.CarriedAccount)
	switch {
	case len(in) == 0:
		return nil
	case len(out) > 0:
		return t.refuse(h, "", fmt.Sprintf("%s on accounts that primary.accounts names (%s) and others (%s) in one statement",
			d.Verb, strings.Join(in, ", "), strings.Join(out, ", ")),
			"name the carried accounts in statements of their own")
	}
	q = sqltext.HashPasswords(q)
	t.log.Info("account statement", "gtid", t.gtid, "accounts", in, "statement", sqltext.Abbreviate(q, 200))
	return t.emit(ctx, &schemas.Record{Op: schemas.OpDDL, Schema: schema, Statement: q}, h)
}

// partition splits names into those carried and the others, in order.
func partition(names []string, carried func(string) bool) (in, out []string) {
	for _, n := range names {
		if carried(n) {
			in = append(in, n)
		} else {
			out = append(out, n)
		}
	}
	return in, out
}
