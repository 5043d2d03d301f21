package config

import (
	"fmt"
	"net/url"
	"os"
	"strings"
)

// readSecrets reads the *_password_file keys, and warns about files that
// hold secrets and that other users may read.
func (c *Config) readSecrets(file string) error {
	secrets := []struct {
		key        string
		file, dest *string
	}{
		{"kafka.sasl.password_file", &c.Kafka.SASL.PasswordFile, &c.Kafka.SASL.Password},
		{"primary.password_file", &c.Primary.PasswordFile, &c.Primary.Password},
		{"standby.password_file", &c.Standby.PasswordFile, &c.Standby.Password},
		{"redis.password_file", &c.Redis.PasswordFile, &c.Redis.Password},
	}
	inFile := false // a password written in the config file itself
	for _, s := range secrets {
		if *s.file == "" {
			inFile = inFile || *s.dest != ""
			continue
		}
		b, err := os.ReadFile(*s.file)
		if err != nil {
			return fmt.Errorf("config %s: read secret: %w", s.key, err)
		}
		*s.dest = strings.TrimRight(string(b), "\r\n")
		c.warnReadable(s.key+" = "+*s.file, *s.file)
	}
	if inFile && file != "" {
		c.warnReadable("config file "+file+", which holds passwords,", file)
	}
	return nil
}

// warnUnverified warns about every link whose server certificate is not
// verified.
func (c *Config) warnUnverified() {
	for key, t := range map[string]TLS{"kafka.tls": c.Kafka.TLS, "primary.tls": c.Primary.TLS, "standby.tls": c.Standby.TLS, "redis.tls": c.Redis.TLS} {
		if t.Enabled && t.SkipVerify {
			c.warnings = append(c.warnings, key+".skip_verify is on: the server's certificate is NOT verified, so anyone on the network path can read and change what lockstep sends; set "+key+".ca_file instead")
		}
	}
}

// warnReadable warns when a file holding secrets is open to other users.
func (c *Config) warnReadable(what, path string) {
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		c.warnings = append(c.warnings, fmt.Sprintf("%s is readable by other users (mode %04o): chmod 600 it", what, fi.Mode().Perm()))
	}
}

// Redacted is the config as it may be logged: secrets replaced.
func (c Config) Redacted() Config {
	hide := func(s *string) {
		if *s != "" {
			*s = "[redacted]"
		}
	}
	hide(&c.Kafka.SASL.Password)
	hide(&c.Primary.Password)
	hide(&c.Standby.Password)
	hide(&c.Redis.Password)
	if u, err := url.Parse(c.Cache.Hook.URL); err == nil && u.User != nil {
		u.User = url.User("[redacted]")
		c.Cache.Hook.URL = u.String()
	}
	c.warnings = nil
	return c
}
