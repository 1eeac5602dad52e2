//! The catalog: launchable images described once by an admin (in zh-CN and en), whose command
//! templates become typed forms. Pure rules here: the template (`template.rs`), the numeric
//! compatibility check (`compat.rs`), UFDL's filter specification (`filter.rs`).

pub mod compat;
pub mod entry;
pub mod filter;
pub mod import;
pub mod store;
pub mod template;

use serde::{Deserialize, Serialize};

use self::compat::{Compat, GpuFacts, Machine, Needs};
use self::entry::{Entry, Fixes};
use self::filter::{Field, FilterSpec};
use self::store::EntryRecord;
use crate::gpu::GpuSnapshot;
use crate::{CoreError, Result};

/// The fields a filter may name (a whitelist; anything else is refused).
pub const FIELDS: &[&str] = &[
    "name",
    "version",
    "image",
    "registry",
    "display_name",
    "display_name_zh",
    "group",
    "price",
    "cuda_version",
    "framework",
    "framework_version",
    "domain",
    "tasks",
    "min_gpu_generation",
    "cpu",
    "licence",
    "creator",
    "creation_time",
    "update_time",
    "revision",
];

fn opt(s: &Option<String>) -> Field {
    s.as_ref()
        .filter(|x| !x.is_empty())
        .map(|x| Field::Str(x.clone()))
        .unwrap_or(Field::Null)
}

/// A field of an entry, by its filter name.
pub fn field(r: &EntryRecord, name: &str) -> Field {
    let e = &r.entry;
    match name {
        "name" => Field::Str(e.name.clone()),
        "version" => Field::Str(e.version.clone()),
        "image" => Field::Str(e.image.clone()),
        "registry" => opt(&e.registry),
        "display_name" => opt(&e.display_name.get("en").map(str::to_string)),
        "display_name_zh" => opt(&e.display_name.get("zh-CN").map(str::to_string)),
        "group" => Field::Str(e.group.clone()),
        "price" => Field::Num(e.price),
        "cuda_version" => opt(&e.cuda_version),
        "framework" => opt(&e.framework),
        "framework_version" => opt(&e.framework_version),
        "domain" => opt(&e.domain),
        "tasks" => Field::List(e.tasks.clone()),
        "min_gpu_generation" => opt(&e.min_gpu_generation),
        "cpu" => Field::Bool(e.cpu_only),
        "licence" => opt(&e.licence),
        "creator" => Field::Str(r.created_by.clone()),
        "creation_time" => Field::Num(r.created_at as f64),
        "update_time" => Field::Num(r.updated_at as f64),
        "revision" => Field::Num(f64::from(r.revision)),
        _ => Field::Null,
    }
}

/// The entries a filter selects, in its order (by name when it gives none); deleted ones only
/// with `include_inactive`.
pub fn select(all: Vec<EntryRecord>, spec: &FilterSpec) -> Result<Vec<EntryRecord>> {
    spec.validate(FIELDS)?;
    let mut v: Vec<EntryRecord> = all
        .into_iter()
        .filter(|r| spec.include_inactive || r.deleted_at.is_none())
        .filter(|r| spec.matches(&|f| field(r, f)))
        .collect();
    spec.sort(&mut v, &|r, f| field(r, f));
    Ok(v)
}

/// What the entry asks of the machine.
pub fn needs(e: &Entry) -> Needs {
    Needs {
        cpu_only: e.cpu_only,
        cuda: e.cuda_version.clone(),
        min_generation: e.min_gpu_generation.clone(),
        archs: e.gpu_archs.clone(),
        min_memory_bytes: e
            .min_gpu_memory
            .as_deref()
            .and_then(|m| crate::volume::parse_size(m).ok()),
    }
}

/// The machine as the GPU sampler sees it.
pub fn machine(s: &GpuSnapshot) -> Machine {
    Machine {
        driver: s.driver_version.clone(),
        cuda: s.cuda_driver_version.clone(),
        gpus: s
            .gpus
            .iter()
            .map(|g| GpuFacts {
                index: g.index,
                name: g.name.clone().unwrap_or_else(|| format!("GPU {}", g.index)),
                compute: g.compute_capability.clone(),
                memory_bytes: g.memory_total_bytes,
                held: !g.held_by.is_empty(),
            })
            .collect(),
    }
}

/// An entry with its compatibility here.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct CatalogItem {
    pub record: EntryRecord,
    pub compat: Compat,
}

/// Which format an import reads.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS,
)]
#[serde(rename_all = "lowercase")]
pub enum ImportFormat {
    /// Told from the file's shape (`import::detect`).
    Auto,
    Gpudeck,
    Argon,
    Ufdl,
}

/// What an import saved, per entry.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema, ts_rs::TS)]
#[serde(rename_all = "camelCase")]
pub struct Imported {
    pub name: String,
    pub revision: u32,
    pub fixes: Fixes,
    /// The command as split, for confirmation.
    pub command: Vec<String>,
}

/// Reads entries from `text` in `format`, made whole and validated (nothing saved yet). An
/// import with any invalid entry saves none.
pub fn parse_import(format: ImportFormat, text: &str) -> Result<Vec<(Entry, Fixes)>> {
    let entries = match format {
        ImportFormat::Auto => {
            let told = import::detect(text).ok_or_else(|| CoreError::InvalidInput {
                what: "import".into(),
                reason: "its format cannot be told from its contents (GPU Deck's file says \"format: gpudeck-catalog\", Argon's payload has an image with a repository, UFDL's image JSON a name and a url): add --format gpudeck, --format argon or --format ufdl".into(),
            })?;
            return parse_import(told, text);
        }
        ImportFormat::Gpudeck => entry::read_file(text)?.entries,
        ImportFormat::Argon => vec![import::from_argon(text)?],
        ImportFormat::Ufdl => import::from_ufdl(text)?,
    };
    if entries.is_empty() {
        return Err(CoreError::InvalidInput {
            what: "import".into(),
            reason: "it holds no entry".into(),
        });
    }
    entries
        .into_iter()
        .map(|mut e| {
            let fixes = e.complete()?;
            e.validate().map_err(|err| CoreError::InvalidInput {
                what: format!("catalog entry \"{}\"", e.name),
                reason: err.to_string(),
            })?;
            Ok((e, fixes))
        })
        .collect()
}
