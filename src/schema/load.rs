//! TOML schema and dataset files to checked [`Layout`]s and a [`Dataset`].
//!
//! Loading never stops at the first file with a problem: every error in
//! every file is collected with its file, line and field, so `fwload
//! schema check` shows them all at once. Each file is parsed by
//! [`parse`](super::parse); this module finds and reads the files, hashes
//! them, checks names across layouts and puts the layouts in load order.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::parse::{parse_dataset, parse_layout};
use super::{Dataset, Layout, SchemaError, SchemaErrors};

/// Name of the dataset file in a schema directory.
pub(super) const DATASET_FILE: &str = "dataset.toml";

/// Layouts and the optional dataset loaded from schema files.
#[derive(Clone, Debug)]
pub struct SchemaSet {
    /// Layouts in load order.
    pub layouts: Vec<Layout>,
    /// The dataset, when a `dataset.toml` was loaded.
    pub dataset: Option<Dataset>,
    /// sha256 (hex) over every loaded file's name and contents, in name
    /// order: identifies the exact schema a run used.
    pub hash: String,
}

/// A problem of a whole file or directory (no line).
fn file_error(path: &Path, message: impl Into<String>) -> SchemaError {
    SchemaError {
        path: path.to_owned(),
        line: None,
        field: None,
        message: message.into(),
    }
}

impl SchemaSet {
    /// The dataset's references between layouts (none without a dataset).
    pub fn references(&self) -> &[super::Reference] {
        self.dataset.as_ref().map_or(&[], |d| &d.references)
    }

    /// The dataset's period, when its targets are kept by one.
    pub fn period(&self) -> Option<&super::Period> {
        self.dataset.as_ref().and_then(|d| d.period.as_ref())
    }

    /// The version columns of the dataset's history targets.
    pub fn history_columns(&self) -> super::HistoryColumns {
        self.dataset.as_ref().map(|d| d.history.clone()).unwrap_or_default()
    }

    /// The name of the dataset's period column, if any.
    pub fn period_column(&self) -> Option<&str> {
        self.period().map(|p| p.column.as_str())
    }

    /// Loads schemas from `paths`: each a directory (every `*.toml` in it,
    /// `dataset.toml` as the dataset) or a single layout file.
    ///
    /// # Errors
    /// Every problem found, each naming its file, line and field.
    pub fn load(paths: &[PathBuf]) -> Result<SchemaSet, SchemaErrors> {
        let mut errors = Vec::new();
        let files = schema_files(paths, &mut errors);
        let texts = read_files(&files, &mut errors);
        let hash = hash_files(&texts);
        let mut layouts = Vec::new();
        let mut dataset_file = None;
        for (path, text) in &texts {
            if path.file_name().is_some_and(|n| n == DATASET_FILE) {
                dataset_file = Some((path, text));
            } else if let Some(l) = parse_layout(path, text, &mut errors) {
                layouts.push(l);
            }
        }
        if layouts.is_empty() && errors.is_empty() {
            let first = paths.first().cloned().unwrap_or_default();
            errors.push(file_error(&first, "no layouts found"));
        }
        check_unique(&layouts, &mut errors);
        let dataset = dataset_file
            .and_then(|(p, t)| parse_dataset(p, t, &layouts, &mut errors));
        if !errors.is_empty() {
            return Err(SchemaErrors(errors));
        }
        let order = load_order(&layouts, dataset.as_ref());
        let mut by_name: HashMap<String, Layout> =
            layouts.into_iter().map(|l| (l.name.clone(), l)).collect();
        let layouts = order.iter().filter_map(|n| by_name.remove(n)).collect();
        Ok(SchemaSet { layouts, dataset, hash })
    }

    /// Loads one layout from TOML text (`path` is used in messages).
    ///
    /// # Errors
    /// Every problem found.
    pub fn layout_from_str(
        path: &Path,
        text: &str,
    ) -> Result<Layout, SchemaErrors> {
        let mut errors = Vec::new();
        match parse_layout(path, text, &mut errors) {
            Some(l) if errors.is_empty() => Ok(l),
            _ => Err(SchemaErrors(errors)),
        }
    }

    /// The layout named `name`.
    pub fn layout(&self, name: &str) -> Option<&Layout> {
        self.layouts.iter().find(|l| l.name == name)
    }

    /// The layouts whose globs match `member`.
    pub fn matching(&self, member: &str) -> Vec<&Layout> {
        self.layouts.iter().filter(|l| l.matches(member)).collect()
    }

    /// The layout a member belongs to, if exactly one matches.
    ///
    /// # Errors
    /// A message when two layouts match the same member.
    pub fn layout_for(&self, member: &str) -> Result<Option<&Layout>, String> {
        match self.matching(member).as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            many => Err(format!(
                "member {} matches several layouts ({}); make their member globs distinct",
                crate::decode::excerpt_text(member),
                many.iter()
                    .map(|l| l.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The schema files `paths` name: each directory's `*.toml` files in name
/// order, and each other path as it is.
fn schema_files(
    paths: &[PathBuf],
    errors: &mut Vec<SchemaError>,
) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for p in paths {
        if !p.is_dir() {
            files.push(p.clone());
            continue;
        }
        let rd = match std::fs::read_dir(p) {
            Ok(rd) => rd,
            Err(e) => {
                errors.push(file_error(
                    p,
                    format!("cannot read directory: {e}"),
                ));
                continue;
            }
        };
        let mut v: Vec<PathBuf> = rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|f| f.extension().is_some_and(|x| x == "toml"))
            .collect();
        v.sort();
        if v.is_empty() {
            errors
                .push(file_error(p, "directory holds no *.toml schema files"));
        }
        files.extend(v);
    }
    files
}

/// Each readable file with its text.
fn read_files(
    files: &[PathBuf],
    errors: &mut Vec<SchemaError>,
) -> Vec<(PathBuf, String)> {
    let mut texts = Vec::new();
    for f in files {
        match std::fs::read_to_string(f) {
            Ok(t) => texts.push((f.clone(), t)),
            Err(e) => errors.push(file_error(f, format!("cannot read: {e}"))),
        }
    }
    texts
}

/// sha256 (hex) over every file's name and text, in name order.
fn hash_files(texts: &[(PathBuf, String)]) -> String {
    let mut hasher = Sha256::new();
    let mut sorted: Vec<&(PathBuf, String)> = texts.iter().collect();
    sorted.sort_by(|a, b| a.0.file_name().cmp(&b.0.file_name()));
    for (p, t) in sorted {
        hasher.update(
            p.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default(),
        );
        hasher.update([0]);
        hasher.update(t.as_bytes());
        hasher.update([0]);
    }
    crate::digest::sha256_hex(hasher)
}

/// Reports layouts sharing a name or a target table.
fn check_unique(layouts: &[Layout], errors: &mut Vec<SchemaError>) {
    let mut seen: HashMap<&str, &Path> = HashMap::new();
    let mut tables: HashMap<&str, &Path> = HashMap::new();
    for l in layouts {
        if let Some(prev) = seen.insert(&l.name, &l.path) {
            errors.push(file_error(
                &l.path,
                format!(
                    "layout name '{}' is also used by {}",
                    l.name,
                    prev.display()
                ),
            ));
        }
        if let Some(prev) = tables.insert(&l.table, &l.path) {
            errors.push(file_error(
                &l.path,
                format!(
                    "table '{}' is also the target of {}",
                    l.table,
                    prev.display()
                ),
            ));
        }
    }
}

/// Layout names in load order: the dataset's order when given, then the
/// rest with every referenced layout before the layouts referencing it
/// (a reference of a layout to itself orders nothing).
fn load_order(layouts: &[Layout], dataset: Option<&Dataset>) -> Vec<String> {
    let mut order: Vec<String> =
        dataset.map(|d| d.load_order.clone()).unwrap_or_default();
    let mut rest: BTreeMap<String, Vec<String>> = layouts
        .iter()
        .filter(|l| !order.contains(&l.name))
        .map(|l| {
            let deps = dataset
                .map(|d| {
                    d.references
                        .iter()
                        .filter(|r| r.from == l.name && r.to != l.name)
                        .map(|r| r.to.clone())
                        .collect()
                })
                .unwrap_or_default();
            (l.name.clone(), deps)
        })
        .collect();
    while !rest.is_empty() {
        let ready: Vec<String> = rest
            .iter()
            .filter(|(_, deps)| {
                deps.iter().all(|d| order.contains(d) || !rest.contains_key(d))
            })
            .map(|(n, _)| n.clone())
            .collect();
        // A reference cycle (which loading the dataset refused): keep
        // name order for what is left.
        let next = if ready.is_empty() {
            rest.keys().cloned().collect()
        } else {
            ready
        };
        for n in next {
            rest.remove(&n);
            order.push(n);
        }
    }
    order
}
