package sqltext

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strings"
)

// Name is a schema object's name; DB is empty when the statement left it
// to the session's default database. For a DATABASE, Name is the database.
type Name struct{ DB, Name string }

// Qualified is "db.name" with the default database filled in.
func (n Name) Qualified(schema string) string {
	if n.DB == "" {
		return schema + "." + n.Name
	}
	return n.DB + "." + n.Name
}

// DDL is what a schema statement does, as far as replication needs it.
type DDL struct {
	// Verb is CREATE, ALTER, DROP, RENAME, TRUNCATE, or one of ANALYZE,
	// OPTIMIZE, REPAIR, CHECK (tables); GRANT, REVOKE and SET (PASSWORD,
	// DEFAULT ROLE) have Kind USER; FLUSH and the other statements on the
	// server have Kind SERVER.
	Verb string
	// Kind is DATABASE, TABLE, VIEW, TRIGGER, PROCEDURE, FUNCTION, EVENT,
	// SEQUENCE, INDEX, PACKAGE, USER, ROLE or SERVER.
	Kind string
	// Objects are the objects it creates, changes or drops, in order; for
	// RENAME, each old name followed by its new one.
	Objects []Name
	// On is the table of an INDEX or a TRIGGER, and the source of CREATE
	// TABLE ... LIKE.
	On *Name
	// OrReplace: CREATE OR REPLACE, which drops what was there.
	OrReplace bool
	// Accounts are the accounts a statement on accounts names ("user@host",
	// a role as "role"), for Kind USER and ROLE.
	Accounts []string
}

// Server reports whether the statement is about the server (accounts,
// privileges, plugins, ...) rather than objects of a database; Accounts
// names the accounts of those on accounts.
func (d DDL) Server() bool {
	switch d.Kind {
	case "USER", "ROLE", "SERVER":
		return true
	}
	return false
}

// Databases lists the databases the statement touches, the session's
// default filled in, each once.
func (d DDL) Databases(schema string) []string {
	var out []string
	add := func(db string) {
		for _, o := range out {
			if o == db {
				return
			}
		}
		out = append(out, db)
	}
	names := d.Objects
	if d.On != nil {
		names = append(names[:len(names):len(names)], *d.On)
	}
	for _, n := range names {
		switch {
		case d.Kind == "DATABASE" && n.Name == "":
			add(schema) // ALTER DATABASE without a name
		case d.Kind == "DATABASE":
			add(n.Name)
		case n.DB == "":
			add(schema)
		default:
			add(n.DB)
		}
	}
	return out
}

// ParseDDL reads the head of a schema statement (what it does to which
// objects) in MariaDB's and MySQL's grammar: CREATE [OR REPLACE] with
// DEFINER, ALGORITHM, SQL SECURITY and the other options before the kind,
// IF [NOT] EXISTS, backquoted and unquoted names, lists (DROP TABLE a, b;
// RENAME TABLE a TO b, c TO d), comments and executable comments. The body
// (a view's SELECT, a routine's code) is not read. A statement it cannot
// place is an error: the caller must not guess.
//
// The maintained Go parsers (TiDB's, Vitess's) refuse MariaDB's CREATE
// TRIGGER, EVENT, FUNCTION with DEFINER, ALTER ONLINE TABLE and CREATE OR
// REPLACE TABLE, which the binlog holds; so the head is read here, on the
// server's own lexical rules.
func ParseDDL(q string) (DDL, error) {
	p := &parser{toks: Tokens(q)}
	d, err := p.statement()
	if err != nil {
		return DDL{}, fmt.Errorf("%w in %q", err, Abbreviate(q, 120))
	}
	return d, nil
}

// Abbreviate cuts s to n bytes, marked, for messages and logs.
func Abbreviate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

type parser struct {
	toks []Token
	i    int
}

func (p *parser) peek(words ...string) bool {
	for k, w := range words {
		if p.i+k >= len(p.toks) || !p.toks[p.i+k].Is(w) {
			return false
		}
	}
	return true
}

// accept consumes the words if they come next.
func (p *parser) accept(words ...string) bool {
	if p.peek(words...) {
		p.i += len(words)
		return true
	}
	return false
}

func (p *parser) next() (Token, bool) {
	if p.i >= len(p.toks) {
		return Token{}, false
	}
	p.i++
	return p.toks[p.i-1], true
}

func (p *parser) symbol(s string) bool {
	if p.i < len(p.toks) && p.toks[p.i].Kind == Symbol && p.toks[p.i].Text == s {
		p.i++
		return true
	}
	return false
}

// ident reads one identifier.
func (p *parser) ident() (string, error) {
	t, ok := p.next()
	if !ok {
		return "", fmt.Errorf("a name is missing")
	}
	if t.Kind != Word && t.Kind != Quoted {
		return "", fmt.Errorf("%q where a name belongs", t.Text)
	}
	return t.Text, nil
}

// name reads [db.]name.
func (p *parser) name() (Name, error) {
	a, err := p.ident()
	if err != nil {
		return Name{}, err
	}
	if !p.symbol(".") {
		return Name{Name: a}, nil
	}
	b, err := p.ident()
	return Name{DB: a, Name: b}, err
}

// names reads name[, name ...].
func (p *parser) names() ([]Name, error) {
	var out []Name
	for {
		n, err := p.name()
		if err != nil {
			return nil, err
		}
		out = append(out, n)
		if !p.symbol(",") {
			return out, nil
		}
	}
}

// user reads an account: 'u'@'h', u@h, `u`@`h`, u (host %), CURRENT_USER[()];
// a role reads as its name. It returns "user@host", or "" for CURRENT_USER.
func (p *parser) user() (string, error) {
	if p.accept("CURRENT_USER") {
		if p.symbol("(") && !p.symbol(")") {
			return "", fmt.Errorf("CURRENT_USER( without )")
		}
		return "", nil
	}
	t, ok := p.next()
	if !ok || (t.Kind != Word && t.Kind != Quoted && t.Kind != String) {
		return "", fmt.Errorf("an account is missing")
	}
	// 'u'@'h' lexes as a string, then a variable "@" and a string; u@h as
	// a word and a variable "@h"
	if p.i < len(p.toks) && p.toks[p.i].Kind == Variable {
		v := p.toks[p.i].Text
		p.i++
		if v == "@" && p.i < len(p.toks) && (p.toks[p.i].Kind == String || p.toks[p.i].Kind == Quoted || p.toks[p.i].Kind == Word) {
			p.i++
			return t.Text + "@" + p.toks[p.i-1].Text, nil
		}
		return t.Text + v, nil
	}
	return t.Text, nil
}

// accounts reads a list of accounts, each maybe followed by its own
// clauses (IDENTIFIED ...), up to the end or to a clause of the whole
// statement (REQUIRE, WITH, ...).
func (p *parser) accounts() ([]string, error) {
	var out []string
	for {
		a, err := p.user()
		if err != nil {
			return nil, err
		}
		out = append(out, a)
		for p.i < len(p.toks) && !p.symbol(",") {
			if p.peek("REQUIRE") || p.peek("WITH") || p.peek("PASSWORD", "EXPIRE") || p.peek("ACCOUNT") || p.peek("DEFAULT", "ROLE") {
				return out, nil
			}
			p.i++
		}
		if p.i >= len(p.toks) || p.toks[p.i-1].Text != "," {
			return out, nil
		}
	}
}

// after skips to the first top-level word w (outside parentheses); false
// if there is none.
func (p *parser) after(w string) bool {
	depth := 0
	for ; p.i < len(p.toks); p.i++ {
		t := p.toks[p.i]
		switch {
		case t.Kind == Symbol && t.Text == "(":
			depth++
		case t.Kind == Symbol && t.Text == ")":
			depth--
		case depth == 0 && t.Is(w):
			p.i++
			return true
		}
	}
	return false
}

// ifExists skips IF EXISTS or IF NOT EXISTS.
func (p *parser) ifExists() {
	if !p.accept("IF", "EXISTS") {
		p.accept("IF", "NOT", "EXISTS")
	}
}

func (p *parser) statement() (DDL, error) {
	t, ok := p.next()
	if !ok || t.Kind != Word {
		return DDL{}, fmt.Errorf("no statement")
	}
	verb := strings.ToUpper(t.Text)
	switch verb {
	case "CREATE":
		return p.create()
	case "ALTER":
		return p.alter()
	case "DROP":
		return p.drop()
	case "RENAME":
		if p.accept("USER") {
			d := DDL{Verb: verb, Kind: "USER"}
			for {
				from, err := p.user()
				if err != nil {
					return DDL{}, err
				}
				if !p.accept("TO") {
					return DDL{}, fmt.Errorf("RENAME USER without TO")
				}
				to, err := p.user()
				if err != nil {
					return DDL{}, err
				}
				d.Accounts = append(d.Accounts, from, to)
				if !p.symbol(",") {
					return d, nil
				}
			}
		}
		if !p.accept("TABLE") && !p.accept("TABLES") {
			return DDL{}, fmt.Errorf("RENAME of something other than tables")
		}
		d := DDL{Verb: verb, Kind: "TABLE"}
		p.accept("IF", "EXISTS")
		for {
			from, err := p.name()
			if err != nil {
				return DDL{}, err
			}
			p.accept("WAIT")
			if !p.accept("TO") {
				return DDL{}, fmt.Errorf("RENAME TABLE %s without TO", from.Name)
			}
			to, err := p.name()
			if err != nil {
				return DDL{}, err
			}
			d.Objects = append(d.Objects, from, to)
			if !p.symbol(",") {
				return d, nil
			}
		}
	case "TRUNCATE":
		p.accept("TABLE")
		n, err := p.name()
		return DDL{Verb: verb, Kind: "TABLE", Objects: []Name{n}}, err
	case "ANALYZE", "OPTIMIZE", "REPAIR", "CHECK":
		p.accept("NO_WRITE_TO_BINLOG")
		p.accept("LOCAL")
		if !p.accept("TABLE") && !p.accept("TABLES") {
			return DDL{}, fmt.Errorf("%s of something other than tables", verb)
		}
		ns, err := p.names()
		return DDL{Verb: verb, Kind: "TABLE", Objects: ns}, err
	case "GRANT", "REVOKE":
		// GRANT privileges ON what TO accounts; GRANT roles TO accounts;
		// REVOKE ... FROM accounts
		to := map[string]string{"GRANT": "TO", "REVOKE": "FROM"}[verb]
		if !p.after(to) {
			return DDL{}, fmt.Errorf("%s without %s", verb, to)
		}
		accts, err := p.accounts()
		return DDL{Verb: verb, Kind: "USER", Accounts: accts}, err
	case "SET":
		// SET PASSWORD [FOR account] = ...; SET DEFAULT ROLE r FOR account
		// (MariaDB), SET DEFAULT ROLE r TO accounts (MySQL)
		role := false
		if !p.accept("PASSWORD") {
			if role = p.accept("DEFAULT", "ROLE"); !role {
				return DDL{}, fmt.Errorf("SET of something other than a password or a default role")
			}
		}
		d := DDL{Verb: verb, Kind: "USER"}
		if role {
			start := p.i
			if p.after("TO") {
				accts, err := p.accounts()
				d.Accounts = accts
				return d, err
			}
			p.i = start
		}
		if p.after("FOR") {
			a, err := p.user()
			if err != nil {
				return DDL{}, err
			}
			d.Accounts = []string{a}
		}
		return d, nil
	case "FLUSH", "INSTALL", "UNINSTALL", "RESET", "PURGE":
		return DDL{Verb: verb, Kind: "SERVER"}, nil
	}
	return DDL{}, fmt.Errorf("%s is not a schema statement lockstep knows", verb)
}

// options skips what may stand between CREATE/ALTER and the kind of
// object, and says whether OR REPLACE was among it.
func (p *parser) options() (orReplace bool, err error) {
	for {
		switch {
		case p.accept("OR", "REPLACE"):
			orReplace = true
		case p.accept("ONLINE"), p.accept("OFFLINE"), p.accept("IGNORE"),
			p.accept("TEMPORARY"), p.accept("AGGREGATE"), p.accept("UNIQUE"), p.accept("FULLTEXT"), p.accept("SPATIAL"),
			p.accept("SQL", "SECURITY", "DEFINER"), p.accept("SQL", "SECURITY", "INVOKER"):
		case p.accept("DEFINER"):
			if !p.symbol("=") {
				return false, fmt.Errorf("DEFINER without =")
			}
			if _, err := p.user(); err != nil {
				return false, err
			}
		case p.accept("ALGORITHM"):
			if !p.symbol("=") {
				return false, fmt.Errorf("ALGORITHM without =")
			}
			if _, err := p.ident(); err != nil {
				return false, err
			}
		default:
			return orReplace, nil
		}
	}
}

// kinds are the objects of a database, and the words that name them.
var kinds = map[string]string{
	"DATABASE": "DATABASE", "SCHEMA": "DATABASE", "TABLE": "TABLE", "TABLES": "TABLE", "VIEW": "VIEW", "TRIGGER": "TRIGGER",
	"PROCEDURE": "PROCEDURE", "FUNCTION": "FUNCTION", "EVENT": "EVENT", "SEQUENCE": "SEQUENCE", "INDEX": "INDEX",
	"KEY": "INDEX", "PACKAGE": "PACKAGE", "USER": "USER", "ROLE": "ROLE", "SERVER": "SERVER",
	"TABLESPACE": "SERVER", "LOGFILE": "SERVER", "RESOURCE": "SERVER",
}

func (p *parser) kind(verb string) (string, error) {
	t, ok := p.next()
	if !ok {
		return "", fmt.Errorf("%s of nothing", verb)
	}
	k, known := kinds[strings.ToUpper(t.Text)]
	if t.Kind != Word || !known {
		return "", fmt.Errorf("%s %s: an object kind lockstep does not know", verb, t.Text)
	}
	if k == "PACKAGE" {
		p.accept("BODY")
	}
	return k, nil
}

// accountsOf reads the account list of CREATE, ALTER or DROP USER or ROLE.
func (p *parser) accountsOf(d DDL, err error) (DDL, error) {
	if err != nil || (d.Kind != "USER" && d.Kind != "ROLE") {
		return d, err
	}
	p.ifExists()
	d.Accounts, err = p.accounts()
	return d, err
}

func (p *parser) create() (DDL, error) {
	orReplace, err := p.options()
	if err != nil {
		return DDL{}, err
	}
	k, err := p.kind("CREATE")
	d := DDL{Verb: "CREATE", Kind: k, OrReplace: orReplace}
	if err != nil || d.Server() {
		return p.accountsOf(d, err)
	}
	p.ifExists()
	n, err := p.name()
	if err != nil {
		return DDL{}, err
	}
	if k == "DATABASE" {
		n = Name{Name: n.Name}
	}
	d.Objects = []Name{n}
	switch k {
	case "INDEX":
		p.accept("USING", "BTREE")
		p.accept("USING", "HASH")
		if !p.accept("ON") {
			return DDL{}, fmt.Errorf("CREATE INDEX without ON")
		}
		on, err := p.name()
		d.Objects[0].DB, d.On = on.DB, &on // an index is its table's
		return d, err
	case "TRIGGER":
		// {BEFORE | AFTER} {INSERT | UPDATE | DELETE} ON table
		for p.i < len(p.toks) && !p.peek("ON") {
			p.i++
		}
		if !p.accept("ON") {
			return DDL{}, fmt.Errorf("CREATE TRIGGER without ON")
		}
		on, err := p.name()
		if d.Objects[0].DB == "" {
			d.Objects[0].DB = on.DB // a trigger lives in its table's database
		}
		d.On = &on
		return d, err
	case "TABLE":
		if p.accept("LIKE") || (p.symbol("(") && p.accept("LIKE")) {
			like, err := p.name()
			d.On = &like
			return d, err
		}
	}
	return d, nil
}

func (p *parser) alter() (DDL, error) {
	if _, err := p.options(); err != nil {
		return DDL{}, err
	}
	k, err := p.kind("ALTER")
	d := DDL{Verb: "ALTER", Kind: k}
	if err != nil || d.Server() {
		return p.accountsOf(d, err)
	}
	p.ifExists()
	if k == "DATABASE" && (p.i >= len(p.toks) || p.peekOption()) {
		d.Objects = []Name{{}} // the default database
		return d, nil
	}
	n, err := p.name()
	if k == "DATABASE" {
		n = Name{Name: n.Name}
	}
	d.Objects = []Name{n}
	return d, err
}

// peekOption reports whether a database option follows (ALTER DATABASE
// without a name).
func (p *parser) peekOption() bool {
	for _, w := range []string{"DEFAULT", "CHARACTER", "CHARSET", "COLLATE", "COMMENT", "UPGRADE", "READ"} {
		if p.peek(w) {
			return true
		}
	}
	return false
}

func (p *parser) drop() (DDL, error) {
	p.accept("TEMPORARY")
	k, err := p.kind("DROP")
	d := DDL{Verb: "DROP", Kind: k}
	if err != nil || d.Server() {
		return p.accountsOf(d, err)
	}
	p.ifExists()
	switch k {
	case "INDEX":
		p.accept("ONLINE")
		n, err := p.name()
		if err != nil {
			return DDL{}, err
		}
		if !p.accept("ON") {
			return DDL{}, fmt.Errorf("DROP INDEX without ON")
		}
		on, err := p.name()
		n.DB = on.DB // an index is its table's
		d.Objects, d.On = []Name{n}, &on
		return d, err
	case "DATABASE":
		n, err := p.ident()
		d.Objects = []Name{{Name: n}}
		return d, err
	}
	d.Objects, err = p.names()
	return d, err
}

// HashPasswords rewrites each IDENTIFIED BY 'text' of a statement on
// accounts as IDENTIFIED BY PASSWORD '*hash' (mysql_native_password, the
// hash the server stores), so that a password the binlog holds as text
// travels and rests as its hash only. Other forms are left as written.
func HashPasswords(q string) string {
	toks := Tokens(q)
	var b strings.Builder
	last := 0
	for i := 0; i+2 < len(toks); i++ {
		if toks[i].Is("IDENTIFIED") && toks[i+1].Is("BY") && toks[i+2].Kind == String {
			b.WriteString(q[last:toks[i+2].Start])
			sum := sha1.Sum([]byte(toks[i+2].Text))
			sum = sha1.Sum(sum[:])
			b.WriteString("PASSWORD '*" + strings.ToUpper(hex.EncodeToString(sum[:])) + "'")
			last = toks[i+2].End
		}
	}
	return b.String() + q[last:]
}
