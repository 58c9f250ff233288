//! The client features a production cluster asks for, shown by creating real
//! librdkafka clients through `KafkaArgs` (not by printing a configuration):
//! TLS with every SASL mechanism nba is built with, and zstd batches produced
//! and consumed through librdkafka's mock cluster; GSSAPI with the `gssapi`
//! feature, and a message saying how to get it without. (`scripts/e2e-security.sh`
//! connects such clients to tansu through TLS with SCRAM.)

use std::time::{Duration, Instant};

use clap::Parser;
use nba_kafka::KafkaArgs;
use rdkafka::Message;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    kafka: KafkaArgs,
}

fn args(brokers: &str, settings: &[&str]) -> KafkaArgs {
    let mut argv = vec!["test", "--brokers", brokers];
    for s in settings {
        argv.extend(["-X", s]);
    }
    Cli::parse_from(argv).kafka
}

#[test]
fn tls_clients_are_created_with_every_sasl_mechanism() {
    let mechanisms: [&[&str]; 4] = [
        &["sasl.mechanism=PLAIN", "sasl.username=u", "sasl.password=p"],
        &[
            "sasl.mechanism=SCRAM-SHA-256",
            "sasl.username=u",
            "sasl.password=p",
        ],
        &[
            "sasl.mechanism=SCRAM-SHA-512",
            "sasl.username=u",
            "sasl.password=p",
        ],
        &[
            "sasl.mechanism=OAUTHBEARER",
            "enable.sasl.oauthbearer.unsecure.jwt=true",
        ],
    ];
    for mechanism in mechanisms {
        let mut settings = vec!["security.protocol=sasl_ssl"];
        settings.extend_from_slice(mechanism);
        let config = args("127.0.0.1:1", &settings)
            .client_config(&[])
            .expect("config");
        let producer: Result<BaseProducer, _> = config.create();
        assert!(
            producer.is_ok(),
            "{mechanism:?}: {}",
            producer.err().map(|e| e.to_string()).unwrap_or_default()
        );
        let consumer: Result<BaseConsumer, _> = config.clone().set("group.id", "g").create();
        assert!(consumer.is_ok(), "{mechanism:?}");
    }
    // Plain TLS, with the CA store probed as nba does when no CA is named.
    let config = args("127.0.0.1:1", &["security.protocol=ssl"])
        .client_config(&[])
        .expect("config");
    assert_eq!(config.get("ssl.ca.location"), Some("probe"));
    let tls: Result<BaseProducer, _> = config.create();
    assert!(tls.is_ok(), "{:?}", tls.err());
}

/// GSSAPI settings as a Kerberos cluster asks for them; `kinit` is not run
/// (no KDC here), the client is created with the mechanism.
const GSSAPI: &[&str] = &[
    "security.protocol=sasl_ssl",
    "sasl.mechanism=GSSAPI",
    "sasl.kerberos.service.name=kafka",
    "sasl.kerberos.principal=nba@EXAMPLE.COM",
    "sasl.kerberos.kinit.cmd=true",
];

#[cfg(feature = "gssapi")]
#[test]
fn gssapi_clients_are_created_when_built_with_it() {
    let config = args("127.0.0.1:1", GSSAPI)
        .client_config(&[])
        .expect("config");
    let producer: Result<BaseProducer, _> = config.create();
    assert!(producer.is_ok(), "{:?}", producer.err());
    let consumer: Result<BaseConsumer, _> = config.clone().set("group.id", "g").create();
    assert!(consumer.is_ok(), "{:?}", consumer.err());
}

#[cfg(not(feature = "gssapi"))]
#[test]
fn gssapi_without_the_feature_says_how_to_build_it() {
    let e = args("127.0.0.1:1", GSSAPI)
        .client_config(&[])
        .expect_err("refused");
    assert!(
        e.to_string().contains(
            "install libsasl2-dev (Debian) and build with `cargo build --release --features gssapi`"
        ),
        "{e}"
    );
}

#[test]
fn zstd_batches_are_produced_and_consumed() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("zstd", 1, 1).expect("topic");
    let kafka = args(
        &cluster.bootstrap_servers(),
        &["compression.type=zstd", "linger.ms=50"],
    );
    let producer: BaseProducer = kafka
        .client_config(&[])
        .expect("config")
        .create()
        .expect("producer");
    let values: Vec<String> = (0..500)
        .map(|i| format!("interaction {i} ").repeat(8))
        .collect();
    for v in &values {
        producer
            .send(BaseRecord::<str, str>::to("zstd").key("k").payload(v))
            .expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");

    let consumer: BaseConsumer = args(&cluster.bootstrap_servers(), &[])
        .client_config(&[("group.id", "zstd-test"), ("auto.offset.reset", "earliest")])
        .expect("config")
        .create()
        .expect("consumer");
    consumer.subscribe(&["zstd"]).expect("subscribe");
    let mut read = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read.len() < values.len() && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            let m = m.expect("a zstd batch is read");
            read.push(String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned());
        }
    }
    assert_eq!(read, values);
}
