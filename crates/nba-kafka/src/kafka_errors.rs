//! What a Kafka client's error is about: a record it cannot read, or a
//! broker it cannot reach for now (which waiting cures).

use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Whether a consumer error is about a record the client could not read
/// (not about reaching the broker, which the client retries on its own).
pub(crate) fn is_about_a_record(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::{
        BadCompression, BadMessage, InvalidMessage, InvalidRecord, MessageSizeTooLarge,
        NotImplemented, UnsupportedCompressionType,
    };
    matches!(
        e,
        KafkaError::MessageConsumption(
            BadCompression
                | BadMessage
                | InvalidMessage
                | InvalidRecord
                | MessageSizeTooLarge
                | NotImplemented
                | UnsupportedCompressionType
        )
    )
}

/// Whether an error says the brokers cannot be reached, did not answer in
/// time, or failed a connection's authentication: the client reconnects and
/// authenticates again on its own, so the caller waits and retries.
///
/// An authentication failure clears when it was a broker failing a
/// re-authentication (KIP-368: librdkafka re-authenticates every connection
/// at 90% of the session lifetime the broker grants, and tansu 0.6.0 grants
/// 60 s and then refuses every re-authentication) or credentials being
/// rotated; a wrong password recurs until the caller's patience runs out, and
/// the client's last error names it.
pub(crate) fn is_transient(e: &KafkaError) -> bool {
    use RDKafkaErrorCode::{
        AllBrokersDown, Authentication, BrokerNotAvailable, BrokerTransportFailure,
        LeaderNotAvailable, NetworkException, NotLeaderForPartition, OperationTimedOut,
        RequestTimedOut, Resolve,
    };
    matches!(
        e.rdkafka_error_code(),
        Some(
            AllBrokersDown
                | Authentication
                | BrokerNotAvailable
                | BrokerTransportFailure
                | LeaderNotAvailable
                | NetworkException
                | NotLeaderForPartition
                | OperationTimedOut
                | RequestTimedOut
                | Resolve
        )
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_about_a_record_make_it_look() {
        assert!(is_about_a_record(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::BadCompression
        )));
        assert!(!is_about_a_record(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::AllBrokersDown
        )));
        assert!(!is_about_a_record(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
    }

    #[test]
    fn an_unreachable_broker_is_transient_and_a_bad_batch_is_not() {
        assert!(is_transient(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::AllBrokersDown
        )));
        assert!(is_transient(&KafkaError::MetadataFetch(
            RDKafkaErrorCode::BrokerTransportFailure
        )));
        assert!(is_transient(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::Authentication
        )));
        assert!(!is_transient(&KafkaError::MessageConsumption(
            RDKafkaErrorCode::BadCompression
        )));
    }
}
