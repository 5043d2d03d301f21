package main

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/go-mysql-org/go-mysql/replication"
)

func str(p *string) string {
	if p == nil {
		return "<NULL>"
	}
	return *p
}

func TestScalarRendersLosslessText(t *testing.T) {
	text, bin := scalar(false, nil), scalar(true, nil)
	_, conv := textCodec("latin1")
	latin1 := scalar(false, conv)
	for _, c := range []struct {
		name string
		dec  func(any) (*string, error)
		in   any
		want string
	}{
		{"NULL", text, nil, "<NULL>"},
		{"max uint64", text, uint64(math.MaxUint64), "18446744073709551615"},
		{"min int64", text, int64(math.MinInt64), "-9223372036854775808"},
		{"float32 shortest", text, float32(0.1), "0.1"},
		{"float64 shortest", text, 0.1, "0.1"},
		{"negative zero", text, math.Copysign(0, -1), "-0"},
		{"decimal string", text, "-12345678901234567890.123456789", "-12345678901234567890.123456789"},
		{"utf8mb4", text, "🦊 größe", "🦊 größe"},
		{"int8", text, int8(-128), "-128"},
		{"uint16", text, uint16(65535), "65535"},
		{"int32", text, int32(-2147483648), "-2147483648"},
		{"uint32", text, uint32(4294967295), "4294967295"},
		{"latin1 ASCII", latin1, "plain text 123", "plain text 123"},
		{"latin1 string", latin1, "caf\xe9 \x80", "café €"},
		{"latin1 bytes", latin1, []byte("\xff!"), "ÿ!"},
		{"binary is base64", bin, []byte{0, 0xff, '\n'}, base64.StdEncoding.EncodeToString([]byte{0, 0xff, '\n'})},
		{"year 0000 keeps four digits", year, 0, "0000"},
		{"year", year, 2155, "2155"},
		{"BINARY(4) padded", padded(4), "\x01", base64.StdEncoding.EncodeToString([]byte{1, 0, 0, 0})},
		{"BINARY(4) full", padded(4), "\x01\x02\x03\x04", base64.StdEncoding.EncodeToString([]byte{1, 2, 3, 4})},
		{"TIME(6) zero fraction", fraction(6), "-838:59:59", "-838:59:59.000000"},
		{"TIME(3) fraction kept", fraction(3), "-00:00:00.001", "-00:00:00.001"},
	} {
		got, err := c.dec(c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if str(got) != c.want {
			t.Errorf("%s: got %q, want %q", c.name, str(got), c.want)
		}
	}
	if _, err := text(struct{}{}); err == nil {
		t.Error("an unexpected Go type must be an error, not a guess")
	}
}

// MySQL's latin1 is Windows-1252 with the five undefined bytes kept: every
// byte must come back as itself after the trip through UTF-8.
func TestLatin1RoundTripsEveryByte(t *testing.T) {
	_, conv := textCodec("latin1")
	if conv == nil {
		t.Fatal("latin1 has no converter")
	}
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	utf, err := conv(all)
	if err != nil {
		t.Fatal(err)
	}
	back, err := latin1Encode(utf)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, all) {
		t.Fatalf("latin1 bytes did not round-trip:\n got %x\nwant %x", back, all)
	}
}

func TestTextCodecByCharset(t *testing.T) {
	for cs, wantBinary := range map[string]bool{"utf8mb4": false, "binary": true, "latin1": false, "cp932": true, "collation 999": true} {
		if b, _ := textCodec(cs); b != wantBinary {
			t.Errorf("%s: binary = %v, want %v", cs, b, wantBinary)
		}
	}
}

func TestEnumAndSetRenderMemberNames(t *testing.T) {
	enum := members("status", []string{"new", "active"}, false)
	set := members("tags", []string{"a", "b", "c"}, true)
	for _, c := range []struct {
		dec  func(any) (*string, error)
		in   int64
		want string
	}{{enum, 2, "active"}, {enum, 0, ""}, {set, 5, "a,c"}, {set, 0, ""}} {
		got, err := c.dec(c.in)
		if err != nil || str(got) != c.want {
			t.Errorf("%d: got %q, %v; want %q", c.in, str(got), err, c.want)
		}
	}
	if _, err := enum(int64(3)); err == nil {
		t.Error("an enum index beyond the members must be an error")
	}
}

func TestBitsAreBigEndianBytes(t *testing.T) {
	got, err := bits(2)(int64(0x0102))
	if err != nil || str(got) != base64.StdEncoding.EncodeToString([]byte{1, 2}) {
		t.Fatalf("bit(16) 0x0102 = %q, %v", str(got), err)
	}
}

// latin1Encode is the way back, as the standby does it on insert.
func latin1Encode(b []byte) ([]byte, error) {
	back := make(map[rune]byte)
	for i, r := range latin1 {
		back[r] = byte(i)
	}
	var out []byte
	for _, r := range string(b) {
		c, ok := back[r]
		if !ok {
			return nil, fmt.Errorf("rune %U is not latin1", r)
		}
		out = append(out, c)
	}
	return out, nil
}

func TestStringLengthFromBinlogMetadata(t *testing.T) {
	for _, c := range []struct {
		meta uint16
		want int
	}{
		{0xfe04, 4},    // BINARY(4): real type STRING, length 4
		{0xfeff, 255},  // 255 bytes
		{0xee00, 256},  // CHAR(64) utf8mb4: 256 bytes, two high bits folded into the type byte
		{0xcee8, 1000}, // CHAR(250) utf8mb4
	} {
		if got := stringLength(c.meta); got != c.want {
			t.Errorf("stringLength(%#x) = %d, want %d", c.meta, got, c.want)
		}
	}
}

func TestMySQLJSONIsShownAsMySQLShowsIt(t *testing.T) {
	for in, want := range map[string]string{
		`{"k":1}`:                         `{"k": 1}`,
		`{"a":[1,2.0,{"b":null}],"c":""}`: `{"a": [1, 2.0, {"b": null}], "c": ""}`,
		`{"s":"x, y: \"z,:1e5\\"}`:        `{"s": "x, y: \"z,:1e5\\"}`, // nothing inside strings
		`[]`:                              `[]`,
		`"a,b"`:                           `"a,b"`,
		// doubles as go-mysql writes them, and as MySQL 9.7 printed them
		`[1.5e-05,1.2345675e+06,100000.0,1e-16]`:                `[0.000015, 1234567.5, 100000.0, 1e-16]`,
		`[1000000000000000.0,-2e+20,5e-324]`:                    `[1e15, -2e20, 5e-324]`,
		`[18446744073709551615,-9223372036854775808,1.50,-0.0]`: `[18446744073709551615, -9223372036854775808, 1.50, -0.0]`,
	} {
		got, err := mysqlJSON([]byte(in))
		if err != nil || *got != want {
			t.Errorf("mysqlJSON(%s) = %v, %v; want %s", in, *got, err, want)
		}
	}
	if _, err := mysqlJSON(&replication.JsonDiff{}); !errors.Is(err, errPartialJSON) {
		t.Errorf("a partial JSON update must be refused, got %v", err)
	}
}

// The doubles MySQL 9.7 printed for SELECT CAST(CAST(x AS DOUBLE) AS JSON).
func TestMySQLDoubleIsMySQLs(t *testing.T) {
	for f, want := range map[float64]string{
		1e300: "1e300", 1e15: "1e15", 1e14: "100000000000000.0", 1.5e15: "1.5e15", 123456789012345: "123456789012345.0",
		1234567890123456: "1.234567890123456e15", 12345678901234567890: "1.2345678901234567e19", 0.1: "0.1", 1e-5: "0.00001",
		1e-15: "0.000000000000001", 1.5e-15: "0.0000000000000015", 1e-16: "1e-16", 1.25e-16: "1.25e-16", 1.23e-18: "1.23e-18",
		2.5: "2.5", 1: "1.0", 100: "100.0", 1.7976931348623157e308: "1.7976931348623157e308", 5e-324: "5e-324",
		3.141592653589793: "3.141592653589793", -1.5e-7: "-0.00000015", -2e20: "-2e20", math.Copysign(0, -1): "-0.0",
	} {
		if got := mysqlDouble(f); got != want {
			t.Errorf("mysqlDouble(%v) = %s, want %s", f, got, want)
		}
	}
}

// BenchmarkSysbenchImage renders the values of one sysbench row image
// (id, k, and c and pad in latin1) as record text: once per image of every
// row change the producer carries (go test -bench . ./producer).
func BenchmarkSysbenchImage(b *testing.B) {
	_, conv := textCodec("latin1")
	text, num := scalar(false, conv), scalar(false, nil)
	c := strings.Repeat("83868641912-28773972837-", 5)
	values := []any{int32(4711), int32(5012), c, c[:60]}
	decoders := []func(any) (*string, error){num, num, text, text}
	for b.Loop() {
		for i, v := range values {
			if _, err := decoders[i](v); err != nil {
				b.Fatal(err)
			}
		}
	}
}
