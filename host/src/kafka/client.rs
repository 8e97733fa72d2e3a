//! What the Kafka source and sink share about the client: the librdkafka configuration
//! Laminar starts from, the client context that records what librdkafka reports (its last
//! error, failed deliveries) instead of logging it, the topic's partitions with a timeout,
//! and one-line errors that name brokers and topic.
//!
//! Text from the client or the broker is escaped ([`crate::text::shown`]) before it
//! reaches a message.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::client::Client;
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::ProducerContext;
use rdkafka::{ClientConfig, ClientContext, Message};

use crate::error::Error;
use crate::text::shown;

/// Longest text from the client shown in a message, in characters.
const CLIENT_TEXT_CHARS: usize = 300;

/// The brokers and topic a client works with: what every error names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The bootstrap servers.
    pub brokers: String,
    /// The topic.
    pub topic: String,
}

impl Target {
    /// An error about this topic with `message` (already one line and escaped).
    pub(crate) fn error(&self, message: impl Into<String>) -> Error {
        Error::Kafka {
            brokers: shown(&self.brokers, CLIENT_TEXT_CHARS),
            topic: shown(&self.topic, CLIENT_TEXT_CHARS),
            message: message.into(),
        }
    }

    /// An error while `doing` something, from the client's error, with what the client
    /// last reported (e.g. why a broker cannot be reached) where that helps.
    pub(crate) fn client_error(
        &self,
        doing: &str,
        err: &KafkaError,
        context: &LaminarContext,
        timeout: Duration,
    ) -> Error {
        let reason = describe(err, timeout);
        let last = context
            .last_error()
            .filter(|_| is_unreachable(err))
            .map(|e| format!(" (last client error: {e})"))
            .unwrap_or_default();
        self.error(format!("{doing}: {reason}{last}"))
    }
}

/// Whether `err` says the brokers could not be reached in time.
fn is_unreachable(err: &KafkaError) -> bool {
    matches!(
        err.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::Resolve
                | RDKafkaErrorCode::MessageTimedOut
        )
    )
}

/// `err` in words, one line, escaped; `timeout` is the limit the call had.
pub(crate) fn describe(err: &KafkaError, timeout: Duration) -> String {
    use RDKafkaErrorCode as C;
    if let KafkaError::Transaction(e) = err {
        return describe_code(e.code(), &e.string(), timeout);
    }
    match err.rdkafka_error_code() {
        Some(code) => describe_code(code, &err.to_string(), timeout),
        None => shown(&crate::error::one_line(&err.to_string()), CLIENT_TEXT_CHARS)
            .replace(&format!("{:?}", C::NoError), "no error"),
    }
}

/// `code` in words (`text`: the client's words for it, used where Laminar has none).
pub(crate) fn describe_code(code: RDKafkaErrorCode, text: &str, timeout: Duration) -> String {
    use RDKafkaErrorCode as C;
    let secs = timeout.as_secs_f64();
    match code {
        C::BrokerTransportFailure
        | C::AllBrokersDown
        | C::OperationTimedOut
        | C::RequestTimedOut
        | C::Resolve
        | C::MessageTimedOut => {
            format!("no broker answered within {secs} s (is the broker running and the address right?)")
        }
        C::UnknownTopicOrPartition | C::UnknownTopic => {
            "the topic does not exist (create it first; Laminar never creates topics)".into()
        }
        C::TopicAuthorizationFailed
        | C::GroupAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::SaslAuthenticationFailed
        | C::Authentication => format!(
            "not authorised ({}); check the credentials and ACLs in properties.*",
            shown(&format!("{code:?}"), CLIENT_TEXT_CHARS)
        ),
        C::ProducerFenced | C::InvalidProducerEpoch | C::Fenced | C::TransactionCoordinatorFenced => {
            "the producer was fenced: another producer with the same transactional id started (is the same query running twice?); this run's open transaction is aborted".into()
        }
        _ => shown(&crate::error::one_line(text), CLIENT_TEXT_CHARS),
    }
}

/// The client context of every Laminar Kafka client: it keeps the last error librdkafka
/// reported and the failed deliveries, and prints nothing.
#[derive(Debug, Default)]
pub struct LaminarContext {
    last_error: Mutex<Option<String>>,
    deliveries: Mutex<DeliveryFailures>,
}

/// Deliveries that failed since they were last taken.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct DeliveryFailures {
    /// How many.
    pub(crate) count: u64,
    /// The first one, in words.
    pub(crate) first: Option<String>,
    /// Whether one was fatal for the producer (fenced, out of sequence).
    pub(crate) fatal: bool,
}

impl LaminarContext {
    /// The last error the client reported (escaped, one line).
    pub(crate) fn last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|e| e.clone())
    }

    /// The failed deliveries since the last call, which forgets them.
    pub(crate) fn take_failures(&self) -> DeliveryFailures {
        self.deliveries
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }
}

impl ClientContext for LaminarContext {
    fn log(&self, _level: rdkafka::config::RDKafkaLogLevel, _fac: &str, _message: &str) {}

    fn error(&self, error: KafkaError, reason: &str) {
        let text = shown(
            &crate::error::one_line(&format!("{reason} ({})", describe(&error, Duration::ZERO))),
            CLIENT_TEXT_CHARS,
        );
        if let Ok(mut last) = self.last_error.lock() {
            *last = Some(text);
        }
    }
}

impl ConsumerContext for LaminarContext {}

impl ProducerContext for LaminarContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let Err((err, message)) = result else {
            return;
        };
        let fatal = matches!(
            err.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::Fenced
                    | RDKafkaErrorCode::OutOfOrderSequenceNumber
            )
        );
        if let Ok(mut d) = self.deliveries.lock() {
            d.count += 1;
            d.fatal |= fatal;
            if d.first.is_none() {
                d.first = Some(format!(
                    "partition {}: {}",
                    message.partition(),
                    describe(err, Duration::ZERO)
                ));
            }
        }
    }
}

/// Laminar's client settings for `brokers`, then `properties` (the user's, which may
/// change the defaults but not the settings [`super::options`] keeps for itself).
pub(crate) fn config(
    brokers: &str,
    timeout: Duration,
    properties: &[(String, String)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128).to_string();
    config
        .set("bootstrap.servers", brokers)
        // A request that gets no answer fails at the timeout, not after librdkafka's 30 s
        // or 60 s defaults.
        .set("socket.timeout.ms", &ms)
        .set("socket.connection.setup.timeout.ms", &ms)
        // librdkafka logs nothing of its own; the context keeps the last error.
        .set("log_level", "3");
    for (key, value) in properties {
        config.set(key, value);
    }
    config
}

/// A consumer of `config` (`what` names it in the error), with Laminar's context.
pub(crate) fn consumer(
    config: &ClientConfig,
    target: &Target,
    what: &str,
    timeout: Duration,
) -> crate::error::Result<rdkafka::consumer::BaseConsumer<LaminarContext>> {
    config
        .create_with_context(LaminarContext::default())
        .map_err(|e| target.error(format!("cannot create {what}: {}", describe(&e, timeout))))
}

/// The partitions of `target.topic`, ascending, asked of the brokers with `timeout`.
pub(crate) fn partitions<C: ClientContext>(
    client: &Client<C>,
    target: &Target,
    context: &LaminarContext,
    timeout: Duration,
) -> crate::error::Result<Vec<i32>> {
    let metadata = client
        .fetch_metadata(Some(&target.topic), timeout)
        .map_err(|e| {
            target.client_error("cannot read the topic's metadata", &e, context, timeout)
        })?;
    let Some(topic) = metadata.topics().iter().find(|t| t.name() == target.topic) else {
        return Err(target.error(describe_code(
            RDKafkaErrorCode::UnknownTopicOrPartition,
            "",
            timeout,
        )));
    };
    if let Some(err) = topic.error() {
        let code: RDKafkaErrorCode = err.into();
        return Err(target.error(describe_code(code, &format!("{code:?}"), timeout)));
    }
    let mut partitions: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
    if partitions.is_empty() {
        return Err(target.error("the topic has no partitions"));
    }
    partitions.sort_unstable();
    Ok(partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_one_line_and_name_the_cause() {
        let t = Duration::from_secs(10);
        let err = KafkaError::MetadataFetch(RDKafkaErrorCode::BrokerTransportFailure);
        assert!(describe(&err, t).contains("no broker answered within 10 s"));
        let err = KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition);
        assert!(describe(&err, t).contains("does not exist"));
        let err = KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed);
        assert!(describe(&err, t).contains("not authorised"));
        let err = KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced);
        assert!(describe(&err, t).contains("fenced"));
        let target = Target {
            brokers: "b:1".into(),
            topic: "t\nforged".into(),
        };
        let shown = target.error("x").to_string();
        assert_eq!(shown, "kafka topic 't\\nforged' on b:1: x");
    }
}
