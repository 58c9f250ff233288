//! A Confluent-compatible schema registry (`--schema-registry-url`): nba
//! registers its schemas, frames its records with the registry's ids and reads
//! records framed by registry-aware producers through their writer schemas
//! (see `nba_schema::use_registry`).
//!
//! Subjects follow the topic-name strategy: each schema under `<topic>-value`
//! of the topic nba writes it to. Customer erasures share the decision-request
//! topic, so theirs is the record name, `nba.CustomerErasure` (record-name
//! strategy). A subject that already holds an incompatible schema refuses the
//! registration, and nba says so and stops.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use clap::Args;
use nba_pipeline::{Topic, TopicNames};
use nba_schema::{SchemaKind, use_registry};
use ureq::Agent;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

use crate::KafkaArgs;

/// How long one call to the registry may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The registry's content type.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Where the schema registry is and how to reach it.
#[derive(Debug, Clone, Default, Args)]
pub struct SchemaRegistryArgs {
    /// A Confluent-compatible schema registry (http:// or https://). nba then
    /// registers its schemas under `<topic>-value`, frames its records with
    /// the registry's ids, and reads input framed with any registered id,
    /// resolved into nba's schema (a producer's added optional field is read).
    /// Without it, nba uses fixed ids 1 to 8 (ARCHITECTURE.md).
    #[arg(long, env = "NBA_SCHEMA_REGISTRY_URL", value_name = "URL")]
    pub schema_registry_url: Option<String>,

    /// The registry's basic authentication, USER:PASSWORD.
    #[arg(long, env = "NBA_SCHEMA_REGISTRY_AUTH", value_name = "USER:PASSWORD")]
    pub schema_registry_auth: Option<String>,

    /// A PEM file of the CA that signed an https registry's certificate
    /// [default: the system's CA store].
    #[arg(long, env = "NBA_SCHEMA_REGISTRY_CA", value_name = "FILE")]
    pub schema_registry_ca: Option<PathBuf>,
}

/// The subject `kind` is registered under.
fn subject(kind: SchemaKind, names: &TopicNames) -> String {
    let topic = match kind {
        SchemaKind::Interaction => Topic::Interactions,
        SchemaKind::DecisionRequest => Topic::DecisionRequests,
        SchemaKind::NextBestAction => Topic::NextBestActions,
        SchemaKind::Reward => Topic::Rewards,
        SchemaKind::ModelDelta => Topic::ModelDeltas,
        SchemaKind::CustomerState => Topic::CustomerState,
        SchemaKind::CatalogVersion => Topic::Catalog,
        SchemaKind::CustomerErasure => return kind.full_name().to_owned(),
    };
    format!("{}-value", names.name(topic))
}

/// A registry's REST API.
#[derive(Clone)]
struct RegistryClient {
    agent: Agent,
    url: String,
    authorization: Option<String>,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RegistryClient {
    fn new(url: &str, args: &SchemaRegistryArgs) -> anyhow::Result<Self> {
        let roots = match &args.schema_registry_ca {
            None => RootCerts::PlatformVerifier,
            Some(path) => {
                let pem = std::fs::read(path).with_context(|| {
                    format!("cannot read --schema-registry-ca {}", path.display())
                })?;
                let ca = Certificate::from_pem(&pem).with_context(|| {
                    format!(
                        "--schema-registry-ca {} is not a PEM certificate",
                        path.display()
                    )
                })?;
                RootCerts::new_with_certs(&[ca])
            }
        };
        let tls = TlsConfig::builder()
            .provider(TlsProvider::NativeTls)
            .root_certs(roots)
            .build();
        let agent: Agent = Agent::config_builder()
            .tls_config(tls)
            .timeout_global(Some(CALL_TIMEOUT))
            .http_status_as_error(false)
            .build()
            .into();
        let authorization = match &args.schema_registry_auth {
            None => None,
            Some(auth) if auth.contains(':') => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(auth)
            )),
            Some(_) => bail!("--schema-registry-auth: expected USER:PASSWORD"),
        };
        Ok(Self {
            agent,
            url: url.trim_end_matches('/').to_owned(),
            authorization,
        })
    }

    /// The JSON answer of a call, or the registry's error message.
    fn call(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, String> {
        let url = format!("{}{path}", self.url);
        let response = match body {
            Some(body) => {
                let mut request = self.agent.post(&url).header("Content-Type", CONTENT_TYPE);
                if let Some(a) = &self.authorization {
                    request = request.header("Authorization", a);
                }
                request.send_json(body)
            }
            None => {
                let mut request = self.agent.get(&url).header("Accept", CONTENT_TYPE);
                if let Some(a) = &self.authorization {
                    request = request.header("Authorization", a);
                }
                request.call()
            }
        };
        let mut response = response.map_err(|e| format!("{url}: {e}"))?;
        let status = response.status();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| format!("{url}: {e}"))?;
        let json: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        if !status.is_success() {
            let message = json["message"].as_str().unwrap_or(text.as_str());
            return Err(format!("{url}: HTTP {status}: {message}"));
        }
        Ok(json)
    }

    /// Registers `kind` under `subject` (or finds it there); its id.
    fn register(&self, subject: &str, kind: SchemaKind) -> anyhow::Result<u32> {
        let body = serde_json::json!({ "schema": kind.source() });
        let answer = self
            .call(&format!("/subjects/{subject}/versions"), Some(&body))
            .map_err(anyhow::Error::msg)
            .with_context(|| {
                format!(
                    "cannot register {} under subject {subject}",
                    kind.full_name()
                )
            })?;
        answer["id"]
            .as_u64()
            .and_then(|id| u32::try_from(id).ok())
            .with_context(|| format!("the registry answered {answer} for subject {subject}"))
    }

    /// The schema (Avro JSON) registered under `id`.
    fn schema(&self, id: u32) -> Result<String, String> {
        let answer = self.call(&format!("/schemas/ids/{id}"), None)?;
        answer["schema"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("the registry answered {answer} for schema id {id}"))
    }
}

/// [`use_schema_registry`] with a command's Kafka settings.
pub(crate) fn connect(args: &KafkaArgs) -> anyhow::Result<()> {
    use_schema_registry(&args.registry, &args.topics.names())
}

/// If `registry` names a schema registry, registers nba's schemas there
/// (subjects after the topic `names`) and makes this process frame and read
/// records with its ids; once per process. Without one, a no-op.
pub fn use_schema_registry(
    registry: &SchemaRegistryArgs,
    names: &TopicNames,
) -> anyhow::Result<()> {
    static CONNECTED: OnceLock<String> = OnceLock::new();
    let Some(url) = &registry.schema_registry_url else {
        return Ok(());
    };
    if CONNECTED.get() == Some(url) {
        return Ok(());
    }
    let client = RegistryClient::new(url, registry)?;
    let mut ids = Vec::new();
    for kind in SchemaKind::ALL {
        ids.push((kind, client.register(&subject(kind, names), kind)?));
    }
    use_registry(&ids, Box::new(move |id| client.schema(id))).map_err(anyhow::Error::msg)?;
    tracing::info!(
        "schema registry {url}: nba's schemas have ids {}",
        ids.iter()
            .map(|(k, id)| format!("{} {id}", k.full_name()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let _ = CONNECTED.set(url.clone());
    Ok(())
}
