package kafka

import (
	"errors"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/lockstep-dr/lockstep/internal/service"
)

// permanent are the broker's answers that repeat on every retry, with what
// to do about them. The rest (leadership moves, coordinators loading,
// timeouts, a broker that went away) pass by themselves; so does fencing,
// after which a writer restarts as the hot spare.
var permanent = map[int16]string{
	kerr.TopicAuthorizationFailed.Code:           "grant the Kafka user read and write on the topic (README, Security)",
	kerr.GroupAuthorizationFailed.Code:           "grant the Kafka user the consumer group (README, Security)",
	kerr.ClusterAuthorizationFailed.Code:         "grant the Kafka user the cluster operations README, Security lists",
	kerr.TransactionalIDAuthorizationFailed.Code: "grant the Kafka user the transactional id (README, Security)",
	kerr.SaslAuthenticationFailed.Code:           "check kafka.sasl.user and the password",
	kerr.UnsupportedSaslMechanism.Code:           "set kafka.sasl.mechanism to one the brokers enable",
	kerr.InvalidTopicException.Code:              "check the topic names in the kafka section",
	kerr.RecordListTooLarge.Code:                 "raise the topic's max.message.bytes or lower kafka.max_message_bytes",
	kerr.InvalidTransactionTimeout.Code:          "set kafka.transaction_timeout below the brokers' transaction.max.timeout.ms",
	kerr.UnsupportedVersion.Code:                 "the brokers are older than lockstep needs (Kafka 2.5 or later)",
	kerr.PolicyViolation.Code:                    "the brokers' policy refuses lockstep's topic settings: create the topics by hand (README, Operating)",
}

// Classify sorts an error from Kafka into retry (returned as is) and stop
// (service.Permanent), in one place for every service.
func Classify(err error) error {
	if err == nil || service.IsPermanent(err) {
		return err
	}
	var ke *kerr.Error
	if !errors.As(err, &ke) {
		return err // network, timeouts, a client closing: retried
	}
	hint, ok := permanent[ke.Code]
	if !ok {
		return err
	}
	return service.PermanentTodo(err, hint)
}
