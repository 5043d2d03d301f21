// Package e2e runs the three services as the binaries users run, against the
// real MariaDB and Redis that scripts/test.sh starts and an in-process Kafka
// broker spoken to over TCP. Nothing is mocked.
package e2e
