package sqltext

import (
	"reflect"
	"testing"
)

func TestTokensSkipStringsAndComments(t *testing.T) {
	q := "CREATE /* TRIGGER */ -- TRIGGER\n# TRIGGER\n/*!50003 TRIGGER*/ `a``b`.t 'it''s \\' TRIGGER' \"x\" @v @@global.read_only;"
	var got []string
	for _, tok := range Tokens(q) {
		got = append(got, tok.Text)
		if q[tok.Start:tok.End] == "" {
			t.Errorf("token %q has an empty span", tok.Text)
		}
	}
	want := []string{"CREATE", "TRIGGER", "a`b", ".", "t", "it's \\' TRIGGER", "x", "@v", "@@global.read_only", ";"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Tokens:\n got %q\nwant %q", got, want)
	}
	if toks := Tokens(q); !toks[1].Is("trigger") || toks[2].Kind != Quoted || toks[5].Kind != String {
		t.Fatalf("kinds: %+v", toks)
	}
}
