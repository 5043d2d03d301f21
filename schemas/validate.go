package schemas

import (
	"bytes"
	"embed"
	"fmt"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed *.schema.json
var schemaFiles embed.FS

const schemaBase = "https://lockstep.dev/schemas/"

var compiled struct {
	once             sync.Once
	primary, standby *jsonschema.Schema
	err              error
}

func compile() {
	c := jsonschema.NewCompiler()
	for _, name := range []string{"primary.schema.json", "standby.schema.json"} {
		b, err := schemaFiles.ReadFile(name)
		if err != nil {
			compiled.err = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			compiled.err = fmt.Errorf("parse %s: %w", name, err)
			return
		}
		if err := c.AddResource(schemaBase+name, doc); err != nil {
			compiled.err = err
			return
		}
	}
	compiled.primary, compiled.err = c.Compile(schemaBase + "primary.schema.json")
	if compiled.err == nil {
		compiled.standby, compiled.err = c.Compile(schemaBase + "standby.schema.json")
	}
}

// ValidatePrimary checks a raw primary-log record against primary.schema.json.
func ValidatePrimary(raw []byte) error { return validate(raw, false) }

// ValidateStandby checks a raw standby-log record against standby.schema.json.
func ValidateStandby(raw []byte) error { return validate(raw, true) }

func validate(raw []byte, standby bool) error {
	compiled.once.Do(compile)
	if compiled.err != nil {
		return fmt.Errorf("compile JSON schemas: %w", compiled.err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return fmt.Errorf("record is not JSON: %w", err)
	}
	s := compiled.primary
	if standby {
		s = compiled.standby
	}
	return s.Validate(doc)
}
