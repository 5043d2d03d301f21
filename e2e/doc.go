// Package e2e runs the three services as the binaries users run, against the
// real MariaDB and Redis that scripts/test.sh starts and an in-process Kafka
// broker spoken to over TCP. Nothing is mocked.
//
// Every test has its own database, topics, consumer groups and Redis key
// prefix on the shared servers, so tests could run side by side; most run
// one at a time all the same, because their assertions on time (a spare
// takes over within 10 s, lag stays under a bound) want the two cores of a
// CI machine to themselves. The few that spend most of their run waiting
// on timeouts (a WAN link cut for two minutes, a half-open link found,
// Prometheus evaluating an alert's "for") call t.Parallel: they run
// together after the others.
package e2e
