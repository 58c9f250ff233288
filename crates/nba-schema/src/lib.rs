//! The Avro contract of nba's topics.
//!
//! Every topic value is an Avro datum of one of the schemas in `schemas/*.avsc`
//! (compiled into this crate), framed the Confluent way: magic byte `0`, then the
//! schema id as a 4-byte big-endian integer, then the datum. With no schema
//! registry configured, nba uses these fixed ids:
//!
//! | id | schema | topics |
//! |---|---|---|
//! | 1 | `nba.Interaction` | `nba.interactions.raw`, `nba.interactions` |
//! | 2 | `nba.DecisionRequest` | `nba.decision-requests` |
//! | 3 | `nba.NextBestAction` | `nba.next-best-actions` |
//! | 4 | `nba.Reward` | `nba.rewards` |
//! | 5 | `nba.ModelDelta` | `nba.model-deltas` |
//! | 6 | `nba.CustomerState` | `nba.customer-state` (the feature-aggregator's changelog) |
//! | 7 | `nba.CustomerErasure` | `nba.decision-requests` (besides requests: see [`schema_id`]) |
//! | 8 | `nba.CatalogVersion` | `nba.catalog` (catalog versions, compacted) |
//!
//! With a schema registry (`--schema-registry-url`; the Kafka shell registers
//! the schemas and calls [`use_registry`]), the frames carry the registry's
//! ids instead, and a record framed with any other registered id is read
//! through its writer schema, resolved into nba's.
//!
//! Decoding also accepts a raw datum with no framing, so that any Avro producer
//! can feed nba.
//!
//! A schema only ever gains fields with defaults, under the same id. Data an
//! earlier nba wrote (topics, recordings) still decodes: what the current
//! schema cannot read is tried against the earlier versions in
//! `schemas/history/` and resolved into the current one, as a registry would;
//! where Avro's resolution rules have no rule for a change (an enum that
//! became a string: channels are declared by the deployment now), the datum
//! is read with its own schema and mapped onto the current fields by name.

mod recording;
mod registry;

pub use recording::{RECORDING_SCHEMA, RecordedRecord, RecordingWriter, read_recording};
pub use registry::{FetchSchema, use_registry};

use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::writer::datum::GenericDatumWriter;
use nba_core::{
    CatalogVersion, CustomerErasure, CustomerSnapshot, DecisionRequest, Interaction, ModelDelta,
    NextBestAction, Reward,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The value schemas, with their ids when no registry is configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemaKind {
    /// `schemas/interaction.avsc`.
    Interaction,
    /// `schemas/decision_request.avsc`.
    DecisionRequest,
    /// `schemas/next_best_action.avsc`.
    NextBestAction,
    /// `schemas/reward.avsc`.
    Reward,
    /// `schemas/model_delta.avsc`.
    ModelDelta,
    /// `schemas/customer_state.avsc`.
    CustomerState,
    /// `schemas/customer_erasure.avsc`.
    CustomerErasure,
    /// `schemas/catalog_version.avsc`.
    CatalogVersion,
}

impl SchemaKind {
    /// Every kind.
    pub const ALL: [SchemaKind; 8] = [
        SchemaKind::Interaction,
        SchemaKind::DecisionRequest,
        SchemaKind::NextBestAction,
        SchemaKind::Reward,
        SchemaKind::ModelDelta,
        SchemaKind::CustomerState,
        SchemaKind::CustomerErasure,
        SchemaKind::CatalogVersion,
    ];

    /// The schema id written in the Confluent frame: the registry's, when
    /// one is in use ([`use_registry`]), else [`SchemaKind::fixed_id`].
    pub fn id(self) -> u32 {
        registry::registry_id(self).unwrap_or_else(|| self.fixed_id())
    }

    /// The id nba uses without a schema registry.
    pub fn fixed_id(self) -> u32 {
        match self {
            SchemaKind::Interaction => 1,
            SchemaKind::DecisionRequest => 2,
            SchemaKind::NextBestAction => 3,
            SchemaKind::Reward => 4,
            SchemaKind::ModelDelta => 5,
            SchemaKind::CustomerState => 6,
            SchemaKind::CustomerErasure => 7,
            SchemaKind::CatalogVersion => 8,
        }
    }

    /// The full name of the record schema.
    pub fn full_name(self) -> &'static str {
        match self {
            SchemaKind::Interaction => "nba.Interaction",
            SchemaKind::DecisionRequest => "nba.DecisionRequest",
            SchemaKind::NextBestAction => "nba.NextBestAction",
            SchemaKind::Reward => "nba.Reward",
            SchemaKind::ModelDelta => "nba.ModelDelta",
            SchemaKind::CustomerState => "nba.CustomerState",
            SchemaKind::CustomerErasure => "nba.CustomerErasure",
            SchemaKind::CatalogVersion => "nba.CatalogVersion",
        }
    }

    /// The `.avsc` text, as compiled in from `schemas/`.
    pub fn source(self) -> &'static str {
        match self {
            SchemaKind::Interaction => include_str!("../../../schemas/interaction.avsc"),
            SchemaKind::DecisionRequest => {
                include_str!("../../../schemas/decision_request.avsc")
            }
            SchemaKind::NextBestAction => {
                include_str!("../../../schemas/next_best_action.avsc")
            }
            SchemaKind::Reward => include_str!("../../../schemas/reward.avsc"),
            SchemaKind::ModelDelta => include_str!("../../../schemas/model_delta.avsc"),
            SchemaKind::CustomerState => include_str!("../../../schemas/customer_state.avsc"),
            SchemaKind::CustomerErasure => {
                include_str!("../../../schemas/customer_erasure.avsc")
            }
            SchemaKind::CatalogVersion => include_str!("../../../schemas/catalog_version.avsc"),
        }
    }

    /// The file name under `schemas/`.
    pub fn file_name(self) -> &'static str {
        match self {
            SchemaKind::Interaction => "interaction.avsc",
            SchemaKind::DecisionRequest => "decision_request.avsc",
            SchemaKind::NextBestAction => "next_best_action.avsc",
            SchemaKind::Reward => "reward.avsc",
            SchemaKind::ModelDelta => "model_delta.avsc",
            SchemaKind::CustomerState => "customer_state.avsc",
            SchemaKind::CustomerErasure => "customer_erasure.avsc",
            SchemaKind::CatalogVersion => "catalog_version.avsc",
        }
    }

    /// Earlier versions under the same id (`schemas/history/`), newest first.
    pub fn history(self) -> &'static [&'static str] {
        match self {
            SchemaKind::Interaction => &[
                include_str!("../../../schemas/history/interaction.3.avsc"),
                include_str!("../../../schemas/history/interaction.2.avsc"),
                include_str!("../../../schemas/history/interaction.1.avsc"),
            ],
            SchemaKind::NextBestAction => &[
                include_str!("../../../schemas/history/next_best_action.4.avsc"),
                include_str!("../../../schemas/history/next_best_action.3.avsc"),
                include_str!("../../../schemas/history/next_best_action.2.avsc"),
                include_str!("../../../schemas/history/next_best_action.1.avsc"),
            ],
            SchemaKind::ModelDelta => &[
                include_str!("../../../schemas/history/model_delta.3.avsc"),
                include_str!("../../../schemas/history/model_delta.2.avsc"),
                include_str!("../../../schemas/history/model_delta.1.avsc"),
            ],
            SchemaKind::CustomerState => &[
                include_str!("../../../schemas/history/customer_state.2.avsc"),
                include_str!("../../../schemas/history/customer_state.1.avsc"),
            ],
            SchemaKind::DecisionRequest => &[include_str!(
                "../../../schemas/history/decision_request.1.avsc"
            )],
            SchemaKind::Reward | SchemaKind::CustomerErasure | SchemaKind::CatalogVersion => &[],
        }
    }

    /// The parsed schema.
    pub fn schema(self) -> &'static Schema {
        compiled()[self as usize].schema
    }

    /// The datum reader and writer, built once: apache-avro's schema-aware
    /// serde path, straight between bytes and structs with no `Value` tree and
    /// no per-record schema resolution.
    fn codec(self) -> &'static Codec {
        &compiled()[self as usize].codec
    }
}

/// One schema, parsed, with its datum reader and writer, and readers of its
/// earlier versions.
struct Compiled {
    schema: &'static Schema,
    codec: Codec,
    /// Per earlier version, a reader that resolves into the current schema
    /// (Avro's rules fill in the defaults of added fields), where the schemas
    /// are compatible, and one that reads with the version's own schema, for
    /// changes the rules cannot resolve (an enum that became a string); its
    /// value is mapped onto the current fields by name (added fields have
    /// serde defaults).
    earlier: Vec<GenericDatumReader<'static>>,
}

struct Codec {
    reader: GenericDatumReader<'static>,
    writer: GenericDatumWriter<'static>,
}

fn compiled() -> &'static [Compiled] {
    static COMPILED: OnceLock<Vec<Compiled>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        SchemaKind::ALL
            .iter()
            .map(|k| {
                // The files are compiled in and parsed by this crate's tests, so
                // a failure here is a build defect, not an input error.
                let schema: &'static Schema =
                    Box::leak(Box::new(Schema::parse_str(k.source()).unwrap_or_else(
                        |e| panic!("schemas/{} does not parse: {e}", k.file_name()),
                    )));
                let built = GenericDatumReader::builder(schema)
                    .human_readable(false)
                    .build()
                    .and_then(|reader| {
                        GenericDatumWriter::builder(schema)
                            .human_readable(false)
                            .build()
                            .map(|writer| Codec { reader, writer })
                    });
                let earlier = k
                    .history()
                    .iter()
                    .flat_map(|source| {
                        let old: &'static Schema =
                            Box::leak(Box::new(Schema::parse_str(source).unwrap_or_else(|e| {
                                panic!("an earlier {} does not parse: {e}", k.file_name())
                            })));
                        let resolves =
                            apache_avro::schema_compatibility::SchemaCompatibility::can_read(
                                old, schema,
                            )
                            .is_ok();
                        let reader = |resolved: bool| {
                            let builder = GenericDatumReader::builder(old).human_readable(false);
                            if resolved {
                                builder.reader_schema(schema).build()
                            } else {
                                builder.build()
                            }
                        };
                        let built: Result<Vec<_>, _> = [true, false]
                            .into_iter()
                            .filter(|r| !r || resolves)
                            .map(reader)
                            .collect();
                        built.unwrap_or_else(|e| {
                            panic!("an earlier {} does not build: {e}", k.file_name())
                        })
                    })
                    .collect();
                match built {
                    Ok(codec) => Compiled {
                        schema,
                        codec,
                        earlier,
                    },
                    Err(e) => panic!("schemas/{} does not resolve: {e}", k.file_name()),
                }
            })
            .collect()
    })
}

/// A record type that is the value of one schema.
pub trait AvroRecord: Serialize + DeserializeOwned {
    /// Its schema.
    const KIND: SchemaKind;
}

impl AvroRecord for Interaction {
    const KIND: SchemaKind = SchemaKind::Interaction;
}
impl AvroRecord for DecisionRequest {
    const KIND: SchemaKind = SchemaKind::DecisionRequest;
}
impl AvroRecord for NextBestAction {
    const KIND: SchemaKind = SchemaKind::NextBestAction;
}
impl AvroRecord for Reward {
    const KIND: SchemaKind = SchemaKind::Reward;
}
impl AvroRecord for ModelDelta {
    const KIND: SchemaKind = SchemaKind::ModelDelta;
}
impl AvroRecord for CustomerSnapshot {
    const KIND: SchemaKind = SchemaKind::CustomerState;
}
impl AvroRecord for CustomerErasure {
    const KIND: SchemaKind = SchemaKind::CustomerErasure;
}
impl AvroRecord for CatalogVersion {
    const KIND: SchemaKind = SchemaKind::CatalogVersion;
}

/// Why bytes could not be turned into a record, or a record into bytes.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// No value at all (a tombstone or an empty record).
    #[error("the record has no value")]
    Empty,
    /// A Confluent frame with the id of another schema.
    #[error(
        "schema id {found} is not the id of {expected} ({expected_id}); without a schema registry nba only reads the ids listed in ARCHITECTURE.md"
    )]
    WrongSchemaId {
        /// The id in the frame.
        found: u32,
        /// The schema the topic carries.
        expected: &'static str,
        /// Its id.
        expected_id: u32,
    },
    /// The bytes are not a datum of the schema.
    #[error("not a valid {schema} Avro datum: {source}")]
    Avro {
        /// The schema tried.
        schema: &'static str,
        /// What apache-avro said.
        #[source]
        source: Box<apache_avro::Error>,
    },
    /// A framed record of another schema id that the registry's writer
    /// schema for that id does not let nba read.
    #[error("schema id {id} cannot be read as {expected}: {why}")]
    WriterSchema {
        /// The id in the frame.
        id: u32,
        /// The schema nba reads the topic with.
        expected: &'static str,
        /// Why: not in the registry, not resolvable, not a datum of it.
        why: String,
    },
    /// A datum followed by bytes that belong to none.
    #[error("{0} bytes follow the {1} datum")]
    TrailingBytes(usize, &'static str),
}

fn avro_error(kind: SchemaKind, e: apache_avro::Error) -> CodecError {
    CodecError::Avro {
        schema: kind.full_name(),
        source: Box::new(e),
    }
}

/// Encodes `record` as a Confluent-framed datum of its schema.
pub fn encode<T: AvroRecord>(record: &T) -> Result<Vec<u8>, CodecError> {
    let kind = T::KIND;
    let mut out = Vec::with_capacity(64);
    out.push(0);
    out.extend_from_slice(&kind.id().to_be_bytes());
    kind.codec()
        .writer
        .write_ser(&mut out, record)
        .map_err(|e| avro_error(kind, e))?;
    Ok(out)
}

/// The schema id in a Confluent frame, if `bytes` are framed: how a reader of a
/// topic that carries two schemas (decision requests and erasures) tells
/// them apart. A raw datum has none.
pub fn schema_id(bytes: &[u8]) -> Option<u32> {
    match bytes {
        [0, a, b, c, d, ..] => Some(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => None,
    }
}

/// Decodes a Confluent-framed or raw datum of `T`'s schema.
pub fn decode<T: AvroRecord>(bytes: &[u8]) -> Result<T, CodecError> {
    let kind = T::KIND;
    let mut datum = match bytes {
        [] => return Err(CodecError::Empty),
        [0, a, b, c, d, rest @ ..] => {
            let found = u32::from_be_bytes([*a, *b, *c, *d]);
            if found != kind.id() {
                if let Some(read) = registry::read_with_writer_schema(found, kind, rest) {
                    return read;
                }
                return Err(CodecError::WrongSchemaId {
                    found,
                    expected: kind.full_name(),
                    expected_id: kind.id(),
                });
            }
            rest
        }
        raw => raw,
    };
    let whole = datum;
    let current = kind
        .codec()
        .reader
        .read_deser(&mut datum)
        .map_err(|e| avro_error(kind, e))
        .and_then(|record| {
            if datum.is_empty() {
                Ok(record)
            } else {
                Err(CodecError::TrailingBytes(datum.len(), kind.full_name()))
            }
        });
    current.or_else(|e| decode_earlier(kind, whole).ok_or(e))
}

/// Decodes a datum written under an earlier version of `kind`'s schema, if
/// one of them reads it whole.
fn decode_earlier<T: DeserializeOwned>(kind: SchemaKind, whole: &[u8]) -> Option<T> {
    compiled()[kind as usize].earlier.iter().find_map(|reader| {
        let mut datum = whole;
        let value = reader.read_value(&mut datum).ok()?;
        if !datum.is_empty() {
            return None;
        }
        apache_avro::from_value(&value).ok()
    })
}
