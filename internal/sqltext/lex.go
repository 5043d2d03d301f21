// Package sqltext reads MySQL/MariaDB statement text as the server's lexer
// does, as far as lockstep needs: the words and symbols outside strings and
// comments, with their places, so that a statement can be recognised and
// edited without being fooled by a keyword inside a string or a comment.
// Executable comments (/*!50003 ... */, /*M!100100 ... */) are code: their
// content is read, their markers are not.
package sqltext

import (
	"strings"
	"unicode/utf8"
)

// Kind is what a token is.
type Kind int

const (
	Word     Kind = iota // keyword or unquoted identifier (also numbers)
	Quoted               // `identifier`
	String               // 'text' or "text"
	Symbol               // any other character, alone
	Variable             // @name or @@name
)

// Token is one token of a statement: q[Start:End] is its text.
type Token struct {
	Kind       Kind
	Start, End int
	Text       string
}

// Is reports whether the token is the word w (case-insensitive).
func (t Token) Is(w string) bool { return t.Kind == Word && strings.EqualFold(t.Text, w) }

// Tokens splits a statement into tokens.
func Tokens(q string) []Token {
	var out []Token
	for i := 0; i < len(q); {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '#' || (c == '-' && strings.HasPrefix(q[i:], "--") && (i+2 == len(q) || q[i+2] <= ' ')):
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == '/' && strings.HasPrefix(q[i:], "/*"):
			if n := executableOpener(q[i:]); n > 0 {
				i += n // the content is code
				continue
			}
			end := strings.Index(q[i+2:], "*/")
			if end < 0 {
				i = len(q)
			} else {
				i += 2 + end + 2
			}
		case c == '*' && strings.HasPrefix(q[i:], "*/"):
			i += 2 // the end of an executable comment
		case c == '\'' || c == '"' || c == '`':
			end := closing(q, i)
			kind := String
			if c == '`' {
				kind = Quoted
			}
			out = append(out, Token{Kind: kind, Start: i, End: end, Text: unquote(q[i:end])})
			i = end
		case c == '@':
			j := i + 1
			if j < len(q) && q[j] == '@' {
				j++
			}
			for j < len(q) && (wordByte(q[j]) || q[j] == '.') {
				j++
			}
			out = append(out, Token{Kind: Variable, Start: i, End: j, Text: q[i:j]})
			i = j
		case wordByte(c):
			j := i
			for j < len(q) && wordByte(q[j]) {
				j++
			}
			out = append(out, Token{Kind: Word, Start: i, End: j, Text: q[i:j]})
			i = j
		default:
			_, n := utf8.DecodeRuneInString(q[i:])
			out = append(out, Token{Kind: Symbol, Start: i, End: i + n, Text: q[i : i+n]})
			i += n
		}
	}
	return out
}

// wordByte: identifiers may hold letters, digits, _ and $, and any
// non-ASCII character.
func wordByte(c byte) bool {
	return c == '_' || c == '$' || c >= 0x80 || (c >= '0' && c <= '9') || (c|0x20 >= 'a' && c|0x20 <= 'z')
}

// executableOpener is the length of "/*!NNNNN" or "/*M!NNNNN" at the start
// of s, 0 if s starts another comment.
func executableOpener(s string) int {
	i := 2
	if strings.HasPrefix(s[i:], "M!") {
		i += 2
	} else if strings.HasPrefix(s[i:], "!") {
		i++
	} else {
		return 0
	}
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

// closing is the end of the quoted token starting at q[i]: a doubled quote
// stays inside, and in strings a backslash escapes the next character.
func closing(q string, i int) int {
	quote := q[i]
	for j := i + 1; j < len(q); j++ {
		switch q[j] {
		case '\\':
			if quote != '`' {
				j++
			}
		case quote:
			if j+1 < len(q) && q[j+1] == quote {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(q)
}

// unquote is an identifier's or a string's text without its quotes (escape
// sequences other than doubled quotes are left as written).
func unquote(s string) string {
	if len(s) < 2 {
		return s
	}
	q := s[:1]
	inner := s[1:]
	if strings.HasSuffix(inner, q) {
		inner = inner[:len(inner)-1]
	}
	return strings.ReplaceAll(inner, q+q, q)
}
