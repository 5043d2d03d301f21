package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lockstep-dr/lockstep/internal/config"
)

// Certs is a CA made for one test and the certificates it signed, as PEM
// files in a folder: ca.pem, server.pem and server-key.pem (for 127.0.0.1
// only, not localhost), client.pem and client-key.pem, and other-ca.pem, a CA
// that signed nothing here.
type Certs struct{ Dir string }

// Path is the file of one of the PEM files.
func (c Certs) Path(name string) string { return filepath.Join(c.Dir, name) }

// NewCerts makes the CA and certificates.
func NewCerts(t testing.TB) Certs {
	t.Helper()
	c := Certs{Dir: t.TempDir()}
	caKey, ca := c.issue(t, "ca", &x509.Certificate{Subject: pkix.Name{CommonName: "lockstep test CA"}, IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}, nil, nil)
	c.issue(t, "server", &x509.Certificate{Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, caKey)
	c.issue(t, "client", &x509.Certificate{Subject: pkix.Name{CommonName: "lockstep"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca, caKey)
	c.issue(t, "other-ca", &x509.Certificate{Subject: pkix.Name{CommonName: "some other CA"}, IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}, nil, nil)
	return c
}

// issue writes name.pem and name-key.pem, signed by parent (self-signed
// when nil).
func (c Certs) issue(t testing.TB, name string, tpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*ecdsa.PrivateKey, *x509.Certificate) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tpl.SerialNumber = serial
	tpl.NotBefore, tpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	if parent == nil {
		parent, parentKey = tpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	for file, block := range map[string]*pem.Block{name + ".pem": {Type: "CERTIFICATE", Bytes: der}, name + "-key.pem": {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(c.Path(file), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert
}

// Secure are the credentials of an Env whose every link is TLS.
type Secure struct {
	Certs Certs
	// KafkaPlainUser authenticates with SASL PLAIN (the services use SCRAM).
	KafkaPlainUser, KafkaPlainPassword string
}

// Passwords every link of NewTLS uses: the tests look for them in what the
// services print.
const (
	DBPassword    = "db-pw-7f3a9c"
	RedisPassword = "redis-pw-2b8e41"
	KafkaPassword = "kafka-pw-c0d5e6"
)

// NewTLS is New with servers of its own that take TLS only: a primary and
// a standby MariaDB (user lockstep, REQUIRE X509: TLS with a client
// certificate), Redis (ACL user lockstep;
// the default user is off) and the broker with TLS and SASL (SCRAM-SHA-512
// user lockstep, PLAIN user plain). The config verifies every server's
// certificate against the test's CA and presents the client certificate.
func NewTLS(t testing.TB) (*Env, Secure) {
	t.Helper()
	Servers(t) // the requirement and the record that an integration test ran
	s := Secure{Certs: NewCerts(t), KafkaPlainUser: "plain", KafkaPlainPassword: "plain-pw-91ac"}
	dev := t.TempDir()
	ports := FreePorts(t, 3)
	env := append(os.Environ(), "LOCKSTEP_DEV_DIR="+dev, "LOCKSTEP_TLS_DIR="+s.Certs.Dir,
		"LOCKSTEP_PRIMARY_PORT="+strconv.Itoa(ports[0]), "LOCKSTEP_STANDBY_PORT="+strconv.Itoa(ports[1]), "LOCKSTEP_REDIS_PORT="+strconv.Itoa(ports[2]))
	users := fmt.Sprintf(`CREATE USER 'lockstep'@'127.0.0.1' IDENTIFIED BY '%s' REQUIRE X509; GRANT ALL ON *.* TO 'lockstep'@'127.0.0.1'`, DBPassword)
	lib(t, env, fmt.Sprintf(`start_primary && start_standby && start_redis &&
		for s in primary standby; do mariadb --no-defaults -uroot --socket="$DEV/$s/server.sock" -e "%s"; done &&
		redis-cli -p %d --tls --cacert "$LOCKSTEP_TLS_DIR/ca.pem" ACL SETUSER lockstep on '>%s' '~*' '&*' +@all >/dev/null &&
		redis-cli -p %d --tls --cacert "$LOCKSTEP_TLS_DIR/ca.pem" ACL SETUSER default off >/dev/null`, users, ports[2], RedisPassword, ports[2]))
	t.Cleanup(func() {
		lib(t, env, `stop "$DEV/primary/server.pid"; stop "$DEV/standby/server.pid"; stop "$DEV/redis/redis.pid"`)
	})

	serverCert, err := tls.LoadX509KeyPair(s.Certs.Path("server.pem"), s.Certs.Path("server-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	kafkaOpts := []kfake.Opt{kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "lockstep", KafkaPassword),
		kfake.Superuser("PLAIN", s.KafkaPlainUser, s.KafkaPlainPassword)}
	verified := config.TLS{Enabled: true, CAFile: s.Certs.Path("ca.pem"), CertFile: s.Certs.Path("client.pem"), KeyFile: s.Certs.Path("client-key.pem")}
	e := build(t, "127.0.0.1:"+strconv.Itoa(ports[0]), "127.0.0.1:"+strconv.Itoa(ports[1]), "127.0.0.1:"+strconv.Itoa(ports[2]), kafkaOpts, func(c *config.Config) {
		c.Kafka.TLS, c.Primary.TLS, c.Standby.TLS, c.Redis.TLS = verified, verified, verified, verified
		c.Kafka.SASL = config.SASL{Mechanism: "SCRAM-SHA-512", User: "lockstep", Password: KafkaPassword}
		c.Primary.User, c.Primary.Password = "lockstep", DBPassword
		c.Standby.User, c.Standby.Password = "lockstep", DBPassword
		c.Redis.User, c.Redis.Password = "lockstep", RedisPassword
	})
	return e, s
}

// lib runs a script with scripts/lib.sh sourced.
func lib(t testing.TB, env []string, script string) {
	t.Helper()
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("find the module root: %v", err)
	}
	cmd := exec.Command("bash", "-c", "set -e; source scripts/lib.sh; "+script)
	cmd.Dir, cmd.Env = string(root[:len(root)-1]), env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/lib.sh: %s: %v\n%s", script, err, out)
	}
}

// FreePorts are n TCP ports on 127.0.0.1 that nothing listened on a moment
// ago, for a server the test starts.
func FreePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}
