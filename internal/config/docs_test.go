package config

import (
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// leaves flattens a YAML document into its keys, "section.key" (a list or
// an empty map is one value), with their values.
func leaves(prefix string, v any, out map[string]any) {
	m, ok := v.(map[string]any)
	if !ok || len(m) == 0 {
		out[prefix] = v
		return
	}
	for k, child := range m {
		key := k
		if prefix != "" {
			key = prefix + "." + k
		}
		leaves(key, child, out)
	}
}

// The example file sets known keys only, each scalar to its default (it
// shows what the defaults are), but the cache rules it gives as an example.
func TestExampleFileMatchesTheKeys(t *testing.T) {
	b, err := os.ReadFile("../../lockstep.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	keys := make(map[string]any)
	leaves("", doc, keys)
	for key, v := range keys {
		def, ok := defaults[key]
		switch {
		case !ok:
			t.Errorf("lockstep.example.yaml sets %s, which is not a config key", key)
		case key == "cache.rules":
		case fmt.Sprint(def) != fmt.Sprint(v) && !(fmt.Sprint(v) == "[]" && fmt.Sprint(def) == "map[]"):
			t.Errorf("lockstep.example.yaml sets %s to %v; its default is %v", key, v, def)
		}
	}
	// Every section's keys are there, but the secrets' files and the TLS
	// and SASL details (the README's table names them).
	for key := range defaults {
		if _, ok := keys[key]; !ok && !regexp.MustCompile(`password_file$|\.tls\.|\.sasl\.`).MatchString(key) && !strings.HasPrefix(key, "standby.") {
			t.Errorf("lockstep.example.yaml does not show %s", key)
		}
	}
}

// The README's configuration table names every key, and only keys.
func TestREADMETableNamesEveryKey(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "| section | keys |")
	if start < 0 {
		t.Fatal("README.md has no configuration table")
	}
	table := text[start:]
	table = table[:strings.Index(table, "\n\n")]
	named := make(map[string]bool)
	cell := regexp.MustCompile("`([a-z_]+(?:\\.[a-z_{},*]+)*)`")
	for _, row := range strings.Split(table, "\n")[2:] {
		cols := strings.Split(row, "|")
		if len(cols) < 3 {
			t.Fatalf("README table row %q", row)
		}
		var sections []string
		for _, m := range cell.FindAllStringSubmatch(cols[1], -1) {
			sections = append(sections, m[1])
		}
		for _, m := range cell.FindAllStringSubmatch(cols[2], -1) {
			for _, sec := range sections {
				for _, k := range expand(m[1]) {
					named[sec+"."+k] = true
				}
			}
		}
		for _, sec := range sections {
			named[sec] = true
		}
	}
	for key := range defaults {
		if !named[key] && !namedByStar(named, key) {
			t.Errorf("the README's configuration table does not name %s", key)
		}
	}
}

// expand turns "tls.{enabled,ca_file}" into its keys.
func expand(k string) []string {
	i, j := strings.Index(k, "{"), strings.Index(k, "}")
	if i < 0 || j < i {
		return []string{k}
	}
	var out []string
	for _, part := range strings.Split(k[i+1:j], ",") {
		out = append(out, k[:i]+part+k[j+1:])
	}
	return out
}

// namedByStar reports whether the table names key by a pattern
// ("primary.tls.*").
func namedByStar(named map[string]bool, key string) bool {
	parts := strings.Split(key, ".")
	return len(parts) > 2 && named[strings.Join(parts[:len(parts)-1], ".")+".*"]
}
