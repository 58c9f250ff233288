//! Schema ids from a schema registry, for the whole process.
//!
//! Without a registry nba frames its records with the fixed ids of
//! [`SchemaKind::fixed_id`]. With one, the Kafka shell registers nba's schemas
//! and hands their ids here ([`use_registry`]), with a way to fetch the writer
//! schema of any other id. Records are then framed with the registry's ids,
//! and a framed record of another id (a registry-aware producer's own
//! version of the schema, with fields nba does not know) is read with its
//! writer schema resolved into nba's by Avro's rules. Writer schemas are
//! fetched once per id and kept: a registry never changes what an id means.
//! The fetching is the caller's (this crate does no I/O).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use serde::de::DeserializeOwned;

use crate::{CodecError, SchemaKind};

/// Returns the schema (Avro JSON) the registry holds under an id, or why not.
pub type FetchSchema = Box<dyn Fn(u32) -> Result<String, String> + Send + Sync>;

/// A reader of one writer schema's data into nba's, or why there is none.
type WriterReader = Result<&'static GenericDatumReader<'static>, String>;

struct Registry {
    /// nba's own schemas' ids, by kind.
    ids: HashMap<SchemaKind, u32>,
    fetch: FetchSchema,
    /// Per (writer id, nba's kind): a reader of that writer's data into
    /// nba's schema, or why there is none.
    readers: Mutex<HashMap<(u32, SchemaKind), WriterReader>>,
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// Frames nba's records with `ids` (every kind's id in the registry) from now
/// on, and reads records framed with any other id through the writer schema
/// `fetch` returns for it. Once per process: a second call with the same ids
/// is a no-op, with others it is refused.
pub fn use_registry(ids: &[(SchemaKind, u32)], fetch: FetchSchema) -> Result<(), String> {
    let ids: HashMap<SchemaKind, u32> = ids.iter().copied().collect();
    if let Some(missing) = SchemaKind::ALL.iter().find(|k| !ids.contains_key(k)) {
        return Err(format!("no registry id for {}", missing.full_name()));
    }
    let mut installed = false;
    let current = REGISTRY.get_or_init(|| {
        installed = true;
        Registry {
            ids: ids.clone(),
            fetch,
            readers: Mutex::new(HashMap::new()),
        }
    });
    if !installed && current.ids != ids {
        return Err("this process already uses other registry ids".to_owned());
    }
    Ok(())
}

/// The registry id of `kind`, if a registry is in use.
pub(crate) fn registry_id(kind: SchemaKind) -> Option<u32> {
    REGISTRY.get().and_then(|r| r.ids.get(&kind).copied())
}

/// Reads a datum framed with `id`, which is not nba's id of `kind`, through
/// the registry's writer schema for `id`; `None` without a registry.
pub(crate) fn read_with_writer_schema<T: DeserializeOwned>(
    id: u32,
    kind: SchemaKind,
    mut datum: &[u8],
) -> Option<Result<T, CodecError>> {
    let registry = REGISTRY.get()?;
    let reader = {
        let mut readers = registry.readers.lock().unwrap_or_else(|e| e.into_inner());
        readers
            .entry((id, kind))
            .or_insert_with(|| resolving_reader(registry, id, kind))
            .clone()
    };
    let unreadable = |why: String| CodecError::WriterSchema {
        id,
        expected: kind.full_name(),
        why,
    };
    Some(match reader {
        Err(why) => Err(unreadable(why)),
        Ok(reader) => reader
            .read_value(&mut datum)
            .map_err(|e| unreadable(e.to_string()))
            .and_then(|value| {
                if datum.is_empty() {
                    apache_avro::from_value(&value).map_err(|e| unreadable(e.to_string()))
                } else {
                    Err(CodecError::TrailingBytes(datum.len(), kind.full_name()))
                }
            }),
    })
}

/// A reader of `id`'s writer schema resolved into `kind`'s, built once.
fn resolving_reader(registry: &Registry, id: u32, kind: SchemaKind) -> WriterReader {
    let text = (registry.fetch)(id)?;
    let writer = Schema::parse_str(&text).map_err(|e| format!("its schema does not parse: {e}"))?;
    apache_avro::schema_compatibility::SchemaCompatibility::can_read(&writer, kind.schema())
        .map_err(|e| format!("nba cannot read it by Avro's resolution rules: {e}"))?;
    // Leaked once per id and kind: the registry's ids are few and immutable.
    let writer: &'static Schema = Box::leak(Box::new(writer));
    let reader = GenericDatumReader::builder(writer)
        .reader_schema(kind.schema())
        .human_readable(false)
        .build()
        .map_err(|e| e.to_string())?;
    Ok(Box::leak(Box::new(reader)))
}
