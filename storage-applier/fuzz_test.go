package main

import (
	"strings"
	"testing"

	"github.com/lockstep-dr/lockstep/schemas"
)

// Any record the decoder accepts becomes a statement with one argument per
// placeholder, or an error; never a panic, and never a value in the SQL
// text: identifiers are quoted, values are arguments.
func FuzzRowStatement(f *testing.F) {
	f.Add([]byte(`{"schema_version":1,"op":"insert","database":"d","table":"t","columns":[{"name":"id","type":"int","key":true},{"name":"b","type":"blob","binary":true}],"after":{"id":"1","b":"AP8="},"txn":{"gtid":"0-1-1","index":0,"last":true}}`))
	f.Add([]byte(`{"schema_version":1,"op":"update","database":"d","table":"t","columns":[{"name":"f","type":"float"},{"name":"x` + "`" + `y","type":"text"}],"before":{"f":"1.5","x` + "`" + `y":"'); DROP TABLE t; --"},"after":{"f":null},"txn":{"gtid":"0-1-1","index":0,"last":true}}`))
	f.Add([]byte(`{"schema_version":1,"op":"delete","database":"d","table":"t","columns":[{"name":"a","type":"int"}],"before":{"a":"7"},"txn":{"gtid":"0-1-2","index":1,"last":false}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := schemas.Decode(in)
		if err != nil || r.Op == schemas.OpDDL || r.Op == schemas.OpPosition {
			return
		}
		generated := map[string]bool{}
		if len(r.Columns) > 1 {
			generated[r.Columns[len(r.Columns)-1].Name] = true
		}
		q, args, err := rowStatement(r, &standbyTable{generated: generated})
		if err != nil {
			return
		}
		if n := strings.Count(q, "?"); n != len(args) {
			t.Fatalf("%d placeholders, %d arguments: %s", n, len(args), q)
		}
		for _, a := range args {
			if s, ok := a.(string); ok && len(s) > 3 && !strings.Contains(r.Name(), s) && strings.Contains(q, s) {
				for _, c := range r.Columns {
					if strings.Contains(c.Name, s) {
						return // the value is also part of a (quoted) name
					}
				}
				t.Fatalf("value %q appears in the SQL text: %s", s, q)
			}
		}
	})
}
