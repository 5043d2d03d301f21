package sqltext

import "strings"

// ApplyingVar is the session variable the storage-applier's sessions set.
// The standby's triggers test it: their changes on the primary already
// arrive as rows of the primary log, and a native replica applying row
// events does not fire triggers either. For every other session (the
// application after a failover) a trigger fires as it did on the primary.
const ApplyingVar = "@lockstep_applying"

// triggerGuard is what the body of a trigger gets on the standby.
const triggerGuard = "IF " + ApplyingVar + " IS NULL THEN "

// triggerGuardEnd closes the guard.
const triggerGuardEnd = "; END IF"

// InertTrigger rewrites CREATE TRIGGER so that the trigger does nothing in
// the storage-applier's sessions: its body runs only when ApplyingVar is
// unset. ok is false for any other statement, returned as is.
//
// Keeping the definitions on the standby, rather than aside until a
// failover, lets the server itself carry them through RENAME TABLE and
// DROP TABLE, as it does on the primary (online schema change tools rely on
// both).
func InertTrigger(q string) (string, bool) {
	toks := Tokens(q)
	// CREATE [OR REPLACE] [DEFINER = user] TRIGGER ... FOR EACH ROW
	// [{FOLLOWS | PRECEDES} other] body
	if len(toks) == 0 || !toks[0].Is("CREATE") {
		return q, false
	}
	i := 1
	for i < len(toks) && !toks[i].Is("TRIGGER") {
		if toks[i].Is("TABLE") || toks[i].Is("VIEW") || toks[i].Is("PROCEDURE") || toks[i].Is("FUNCTION") || toks[i].Is("EVENT") || toks[i].Is("AS") {
			return q, false
		}
		i++
	}
	for ; i+2 < len(toks); i++ {
		if toks[i].Is("FOR") && toks[i+1].Is("EACH") && toks[i+2].Is("ROW") {
			break
		}
	}
	body := i + 3
	if body < len(toks) && (toks[body].Is("FOLLOWS") || toks[body].Is("PRECEDES")) {
		body += 2
	}
	last := len(toks) - 1
	for last >= body && toks[last].Text == ";" && toks[last].Kind == Symbol {
		last--
	}
	if body > last {
		return q, false
	}
	start, end := toks[body].Start, toks[last].End
	if q[start:min(len(q), start+len(triggerGuard))] == triggerGuard {
		return q, true // already guarded (a standby promoted, then replicated from)
	}
	return q[:start] + triggerGuard + q[start:end] + triggerGuardEnd + q[end:], true
}

// TriggerBody is a standby trigger's body (information_schema.TRIGGERS
// ACTION_STATEMENT) as the primary has it: without the guard.
func TriggerBody(body string) string {
	if strings.HasPrefix(body, triggerGuard) && strings.HasSuffix(body, triggerGuardEnd) {
		return body[len(triggerGuard) : len(body)-len(triggerGuardEnd)]
	}
	return body
}
