//! Which tables to make, how many rows, and how their keys hang together.
//!
//! Tables form trees through the dataset's references: a child whose key
//! starts with its parent's key gets 0..n rows per parent row, with the
//! parent's key values; a reference from a non-key column to a top-level
//! table (a lookup) picks one of that table's keys. Every row is derived
//! from the seed, its table and a row id, so any table can be walked again
//! (to make a child's rows) without keeping anything in memory.

use super::GenError;
use super::rng::{Rng, name_hash, seed_of};
use super::value::{Datum, FieldGen};
use crate::decode::{Decimal, Encoding, FieldType, Overflow, Trim, days};
use crate::reject::Reason;
use crate::schema::{
    Dataset, DuplicatePolicy, Format, Layout, Longer, Reference, SchemaSet,
    Shorter,
};

/// Kinds of bad record the generator can inject; each maps to the reject
/// code `fwload validate` must report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// Text longer than `varchar(n)`.
    TooLong(usize),
    /// A letter inside a number.
    BadNumber(usize),
    /// February 30.
    ImpossibleDate(usize),
    /// A fixed-width record of the wrong length, or a delimited record with
    /// an extra field.
    RecordLength,
    /// A byte that is invalid in the declared encoding.
    BadEncoding(usize),
    /// An empty key field.
    MissingKey,
    /// The key of the previous record again.
    DuplicateKey,
}

impl FaultKind {
    /// The reject code validate reports for this fault.
    pub fn code(self, layout: &Layout) -> &'static str {
        match self {
            FaultKind::TooLong(_) => Reason::TooLong { len: 0, max: 0 }.code(),
            FaultKind::BadNumber(_) => Reason::InvalidDigit(b'O').code(),
            FaultKind::ImpossibleDate(_) => Reason::ImpossibleDate.code(),
            FaultKind::RecordLength if layout.is_fixed() => {
                Reason::RecordTooShort { len: 0, expected: 0 }.code()
            }
            FaultKind::RecordLength => {
                Reason::FieldCount { found: 0, expected: 0 }.code()
            }
            FaultKind::BadEncoding(_) => Reason::NulByte.code(),
            FaultKind::MissingKey => Reason::Required.code(),
            FaultKind::DuplicateKey => {
                Reason::DuplicateKey { first_line: 0 }.code()
            }
        }
    }

    /// The field the reject names, if any.
    pub fn field(self, layout: &Layout) -> Option<usize> {
        match self {
            FaultKind::TooLong(i)
            | FaultKind::BadNumber(i)
            | FaultKind::ImpossibleDate(i)
            | FaultKind::BadEncoding(i) => Some(i),
            FaultKind::MissingKey | FaultKind::DuplicateKey => {
                layout.key.first().copied()
            }
            FaultKind::RecordLength => None,
        }
    }
}

/// A child's link to its parent: child field ← parent key position.
#[derive(Clone, Debug)]
pub struct ParentLink {
    /// Index of the parent table in the plan.
    pub table: usize,
    /// (child field index, position in the parent's key).
    pub map: Vec<(usize, usize)>,
}

/// Columns that must hold values of one row of a top-level table.
#[derive(Clone, Debug)]
pub struct Lookup {
    /// The referenced top-level table (plan index).
    pub table: usize,
    /// (field here, field there); the field there need not be a key.
    pub map: Vec<(usize, usize)>,
}

impl Lookup {
    /// Whether `field` is filled by this lookup.
    pub fn covers(&self, field: usize) -> bool {
        self.map.iter().any(|m| m.0 == field)
    }
}

/// One table to generate.
#[derive(Clone, Debug)]
pub struct TablePlan {
    /// The layout.
    pub layout: Layout,
    /// Value generators, one per field.
    pub gens: Vec<FieldGen>,
    /// The parent, for a child table.
    pub parent: Option<ParentLink>,
    /// Lookups into top-level tables.
    pub lookups: Vec<Lookup>,
    /// Key fields not inherited from the parent, in key order.
    pub own_key: Vec<usize>,
    /// Mean rows per parent row (children).
    pub per_parent: f64,
    /// Most rows per parent row (1 when the key is all inherited).
    pub max_children: u32,
    /// Rows, for a top-level table.
    pub rows: u64,
    /// The top-level table this one descends from (itself for a root).
    pub root: usize,
    /// Faults that apply to this layout.
    pub faults: Vec<FaultKind>,
    /// Emit the occasional extra record with the previous key (the
    /// first/last duplicate quirk).
    pub dup_quirk: bool,
    /// Stable hash of the table name.
    pub hash: u64,
    /// Characters the first key column may use: the narrowest text column
    /// that other tables fill from it (a parent key or a looked-up code
    /// must fit every column that copies it).
    pub key_chars: Option<usize>,
    /// Fields whose generated values are divided by 10^n (summed columns
    /// whose totals would not fit otherwise).
    pub shrink: Vec<(usize, u32)>,
}

/// A generated row's identity: its id and key values.
#[derive(Clone, Debug)]
pub struct RowId {
    /// Row id, unique within the table.
    pub uid: u64,
    /// Key values in key order.
    pub key: Vec<Datum>,
}

/// All tables, in load order.
#[derive(Debug)]
pub struct Plan {
    /// Tables in load order.
    pub tables: Vec<TablePlan>,
    /// The seed.
    pub seed: u64,
    /// Share of rows made bad.
    pub fault_rate: f64,
}

const KEY_SALT: u64 = 0x006B_6579;
const FAULT_SALT: u64 = 0xFA17;
const COUNT_SALT: u64 = 0xC0_0C;

fn applicable_faults(l: &Layout) -> Vec<FaultKind> {
    let mut v = Vec::new();
    let key = |i: usize| l.key.contains(&i);
    let width = |i: usize| l.fields[i].span.as_ref().map(|s| s.end - s.start);
    // A field the layout's version does not have is never written.
    let absent = |i: usize| l.is_fixed() && l.fields[i].span.is_none();
    if let Some(i) = l.fields.iter().enumerate().position(|(i, f)| {
        matches!(f.decoder.ty, FieldType::Varchar(n) | FieldType::Char(n) if f.decoder.overflow == Overflow::Reject
            && width(i).is_none_or(|w| w > n as usize) && f.decoder.allowed.is_none() && f.decoder.pattern.is_none())
            && !key(i)
            && !absent(i)
    }) {
        v.push(FaultKind::TooLong(i));
    }
    if let Some(i) = l.fields.iter().enumerate().position(|(i, f)| {
        matches!(
            f.decoder.ty,
            FieldType::Smallint
                | FieldType::Int
                | FieldType::Bigint
                | FieldType::Numeric(_)
        ) && !key(i)
            && !absent(i)
            && width(i).is_none_or(|w| w >= 2)
            && f.decoder.allowed.is_none()
    }) {
        v.push(FaultKind::BadNumber(i));
    }
    if let Some(i) = l.fields.iter().enumerate().position(|(i, f)| {
        f.decoder.ty == FieldType::Date
            && f.decoder.format.as_ref().is_some_and(|d| d.has_day())
            && !key(i)
            && !absent(i)
    }) {
        v.push(FaultKind::ImpossibleDate(i));
    }
    match &l.format {
        Format::Fixed(f)
            if f.shorter == Shorter::Reject || f.longer == Longer::Reject =>
        {
            v.push(FaultKind::RecordLength)
        }
        Format::Delimited(_) => v.push(FaultKind::RecordLength),
        _ => {}
    }
    if let Some(i) = l.fields.iter().enumerate().position(|(i, f)| {
        f.decoder.ty.is_text()
            && !key(i)
            && !absent(i)
            && width(i).is_none_or(|w| w >= 3)
            && f.decoder.trim != Trim::None
    }) {
        v.push(FaultKind::BadEncoding(i));
    }
    if !l.key.is_empty() {
        v.push(FaultKind::MissingKey);
        if l.duplicates == DuplicatePolicy::Reject {
            v.push(FaultKind::DuplicateKey);
        }
    }
    v
}

impl Plan {
    /// Plans `set` for `rows` rows of the main table.
    ///
    /// # Errors
    /// A layout the generator cannot fill (a key too narrow for the rows).
    pub fn new(
        set: &SchemaSet,
        rows: u64,
        seed: u64,
        year: i32,
        fault_rate: f64,
    ) -> Result<Plan, GenError> {
        let ds = set.dataset.as_ref();
        let mut tables: Vec<TablePlan> = (0..set.layouts.len())
            .map(|li| table_plan(set, li, rows, year))
            .collect();
        // Lookups only into top-level tables (their keys are random access).
        for t in 0..tables.len() {
            let roots: Vec<bool> =
                tables.iter().map(|x| x.parent.is_none()).collect();
            tables[t].lookups.retain(|lk| roots[lk.table] && lk.table != t);
        }
        share_lookups(&mut tables);
        set_roots(&mut tables);
        narrow_keys(&mut tables);
        // The main table has exactly `rows`; other top-level tables keep
        // their declared share of it.
        let main = ds
            .and_then(|d| d.generate.main.as_deref())
            .and_then(|name| set.layouts.iter().position(|l| l.name == name))
            .unwrap_or_else(|| {
                tables.iter().position(|t| t.parent.is_none()).unwrap_or(0)
            });
        tables[main].rows = rows;
        size_tables(&mut tables, main);

        let plan = Plan { tables, seed, fault_rate };
        for t in &plan.tables {
            if t.parent.is_none() {
                plan.check_root_capacity(t)?;
            }
        }
        Ok(plan)
    }

    fn check_root_capacity(&self, t: &TablePlan) -> Result<(), GenError> {
        let Some(&k) = t.layout.key.first() else { return Ok(()) };
        let cap = key_capacity(t, k);
        if t.rows > cap {
            return Err(GenError::new(format!(
                "layout {}: key field {} can hold only {cap} distinct values, {} rows asked",
                t.layout.name, t.layout.fields[k].name, t.rows
            )));
        }
        Ok(())
    }

    /// Whether row `uid` of table `t` is made bad, and how.
    pub fn fault(&self, t: usize, uid: u64) -> Option<FaultKind> {
        let tp = &self.tables[t];
        if self.fault_rate <= 0.0 || tp.faults.is_empty() {
            return None;
        }
        let mut r = Rng::new(seed_of(&[self.seed, tp.hash, uid, FAULT_SALT]));
        if !r.chance(self.fault_rate) {
            return None;
        }
        Some(*r.pick(&tp.faults))
    }

    /// The value of field `field` of row `r` of top-level table `t`, as
    /// a lookup into it copies it.
    pub fn lookup_value(&self, lk: &Lookup, r: u64, field: usize) -> Datum {
        let tp = &self.tables[lk.table];
        match tp.layout.key.iter().position(|&k| k == field) {
            Some(pos) => self.root_key(lk.table, r).swap_remove(pos),
            None => super::row_value(self, lk.table, r, field),
        }
    }

    /// Rows of child table `t` under the parent row `parent_uid`.
    fn children(&self, t: usize, parent_uid: u64) -> u32 {
        let tp = &self.tables[t];
        let n = tp.max_children;
        let p = (tp.per_parent / n as f64).min(1.0);
        let mut r =
            Rng::new(seed_of(&[self.seed, tp.hash, parent_uid, COUNT_SALT]));
        (0..n).filter(|_| r.chance(p)).count() as u32
    }

    /// The key of row `i` of top-level table `t`.
    pub fn root_key(&self, t: usize, i: u64) -> Vec<Datum> {
        let tp = &self.tables[t];
        let mut r = Rng::new(seed_of(&[self.seed, tp.hash, i, KEY_SALT]));
        tp.layout
            .key
            .iter()
            .enumerate()
            .map(|(pos, &k)| {
                if pos == 0 {
                    unique_value(tp, k, i)
                } else {
                    tp.gens[k].non_null(&mut r)
                }
            })
            .collect()
    }

    /// Walks the rows of table `t` descending from top-level rows
    /// `roots` (of its tree's root), in output order.
    pub fn walk(
        &self,
        t: usize,
        roots: std::ops::Range<u64>,
        f: &mut dyn FnMut(&RowId),
    ) {
        let tp = &self.tables[t];
        match &tp.parent {
            None => {
                for i in roots {
                    f(&RowId { uid: i, key: self.root_key(t, i) });
                }
            }
            Some(link) => {
                let link = link.clone();
                self.walk(link.table, roots, &mut |prow| {
                    // A bad parent row gets no children, so its key problem
                    // does not spread into other tables.
                    if self.fault(link.table, prow.uid).is_some() {
                        return;
                    }
                    let k = self.children(t, prow.uid);
                    for j in 0..k {
                        let uid = seed_of(&[prow.uid, j as u64, tp.hash]);
                        let mut r = Rng::new(seed_of(&[
                            self.seed, tp.hash, uid, KEY_SALT,
                        ]));
                        let key = tp
                            .layout
                            .key
                            .iter()
                            .map(|&kf| {
                                if let Some(&(_, ppos)) =
                                    link.map.iter().find(|m| m.0 == kf)
                                {
                                    convert(
                                        &prow.key[ppos],
                                        tp.layout.fields[kf].decoder.ty,
                                    )
                                } else if let Some(lk) =
                                    tp.lookups.iter().find(|lk| lk.covers(kf))
                                {
                                    // An own key that names a row of a
                                    // lookup table: distinct rows of it.
                                    let n = self.tables[lk.table].rows.max(1);
                                    let r = (prow.uid % n + j as u64) % n;
                                    self.lookup_value(lk, r, lk.map[0].1)
                                } else if tp.own_key.first() == Some(&kf) {
                                    sibling_value(tp, kf, j, prow.uid)
                                } else {
                                    tp.gens[kf].non_null(&mut r)
                                }
                            })
                            .collect();
                        f(&RowId { uid, key });
                    }
                });
            }
        }
    }
}

/// The plan of layout `li` of `set` on its own: value generators, parent
/// and lookups, its share of `rows` and its children per parent row.
fn table_plan(set: &SchemaSet, li: usize, rows: u64, year: i32) -> TablePlan {
    let ds = set.dataset.as_ref();
    let l = &set.layouts[li];
    let mut gens: Vec<FieldGen> =
        (0..l.fields.len()).map(|i| FieldGen::new(l, i, year)).collect();
    for flt in &l.filters {
        if !flt.keep.is_empty() {
            gens[flt.field].restrict(&flt.keep, &flt.drop);
        }
    }
    let (parent, lookups) = match ds {
        Some(ds) => links(set, ds, li),
        None => (None, Vec::new()),
    };
    let inherited: Vec<usize> = parent
        .as_ref()
        .map(|p| p.map.iter().map(|m| m.0).collect())
        .unwrap_or_default();
    let own_key: Vec<usize> =
        l.key.iter().copied().filter(|k| !inherited.contains(k)).collect();
    let hint = |v: &[(String, f64)]| {
        v.iter().find(|(n, _)| *n == l.name).map(|(_, x)| *x)
    };
    let per_parent =
        ds.and_then(|d| hint(&d.generate.per_parent)).unwrap_or(1.0);
    let share = ds.and_then(|d| hint(&d.generate.rows)).unwrap_or(1.0);
    let max_children = if own_key.is_empty() && !l.key.is_empty() {
        1
    } else {
        (2.0 * per_parent).ceil().max(1.0) as u32
    };
    TablePlan {
        layout: l.clone(),
        gens,
        parent,
        lookups,
        own_key,
        per_parent: if l.key.is_empty() || max_children > 1 {
            per_parent
        } else {
            per_parent.min(1.0)
        },
        max_children,
        // A share too small to round to one row still gets one
        // (an export's one header record), unless it is zero.
        rows: match ((rows as f64) * share).round() as u64 {
            0 if share > 0.0 && rows > 0 => 1,
            n => n,
        },
        root: li,
        faults: applicable_faults(l),
        dup_quirk: l.duplicates != DuplicatePolicy::Reject
            && !l.key.is_empty(),
        hash: name_hash(&l.name),
        key_chars: None,
        shrink: Vec::new(),
    }
}

/// A reference of the dataset as field indexes.
struct RefFields {
    /// The referenced layout.
    table: usize,
    /// The referencing fields.
    cols: Vec<usize>,
    /// The referenced fields, in the same order.
    to: Vec<usize>,
}

/// Layout `li`'s parent and lookups from the dataset's references.
///
/// The parent: the reference with the most columns whose columns are all
/// key columns here and whose targets are the whole key there.
fn links(
    set: &SchemaSet,
    ds: &Dataset,
    li: usize,
) -> (Option<ParentLink>, Vec<Lookup>) {
    let l = &set.layouts[li];
    // Candidates: references whose columns are key columns
    // here and whose targets are a whole key there.
    let mut cands: Vec<(ParentLink, bool)> = Vec::new();
    let mut others: Vec<RefFields> = Vec::new();
    for r in ds.references.iter().filter(|r| r.from == l.name) {
        let Some(rf) = ref_fields(set, l, r) else { continue };
        let p = &set.layouts[rf.table];
        let pos: Vec<Option<usize>> = rf
            .to
            .iter()
            .map(|fi| p.key.iter().position(|k| k == fi))
            .collect();
        let in_key = rf.cols.iter().all(|c| l.key.contains(c));
        let whole_key =
            pos.iter().all(Option::is_some) && pos.len() == p.key.len();
        if in_key && whole_key && rf.table < li {
            let pos = pos.into_iter().flatten();
            let prefix = l.key.iter().zip(&rf.cols).all(|(a, b)| a == b);
            let map = rf.cols.iter().copied().zip(pos).collect();
            cands.push((ParentLink { table: rf.table, map }, prefix));
        }
        others.push(rf);
    }
    // The parent: most columns, then the one leading the key.
    cands.sort_by_key(|(link, prefix)| {
        (std::cmp::Reverse(link.map.len()), !*prefix)
    });
    let parent = cands.into_iter().next().map(|c| c.0);
    let lookups = lookups(l, parent.as_ref(), others);
    (parent, lookups)
}

/// Reference `r` from layout `l` as field indexes; none when it names a
/// layout or field that does not exist, or no columns.
fn ref_fields(
    set: &SchemaSet,
    l: &Layout,
    r: &Reference,
) -> Option<RefFields> {
    let pi = set.layouts.iter().position(|x| x.name == r.to)?;
    let p = &set.layouts[pi];
    let cols: Vec<usize> =
        r.columns.iter().filter_map(|c| l.field_index(c)).collect();
    let to: Vec<usize> =
        r.to_columns.iter().filter_map(|c| p.field_index(c)).collect();
    if cols.is_empty()
        || cols.len() != r.columns.len()
        || to.len() != cols.len()
    {
        return None;
    }
    Some(RefFields { table: pi, cols, to })
}

/// The lookups of layout `l`: every reference but its `parent` fills its
/// columns from a row of the referenced table, when those columns are
/// not key columns, the last key column, or a child's own key column.
fn lookups(
    l: &Layout,
    parent: Option<&ParentLink>,
    refs: Vec<RefFields>,
) -> Vec<Lookup> {
    let mut lookups = Vec::new();
    for RefFields { table: pi, cols, to } in refs {
        let is_parent = parent.is_some_and(|p| {
            p.table == pi && p.map.iter().map(|m| m.0).eq(cols.iter().copied())
        });
        if is_parent {
            continue;
        }
        let no_key = cols.iter().all(|c| !l.key.contains(c));
        let own_last = cols.len() == 1 && Some(&cols[0]) == l.key.last();
        // A child's own key column (not one its parent fills),
        // wherever it stands in the key: the walk draws
        // distinct rows of the lookup table for siblings.
        let own_of_child = cols.len() == 1
            && parent.is_some_and(|p| p.map.iter().all(|m| m.0 != cols[0]));
        if no_key || own_last || own_of_child {
            lookups.push(Lookup {
                table: pi,
                map: cols.into_iter().zip(to).collect(),
            });
        }
    }
    lookups
}

/// Sets each table's `root`: the top-level table it descends from.
fn set_roots(tables: &mut [TablePlan]) {
    for t in 0..tables.len() {
        let mut r = t;
        while let Some(p) = &tables[r].parent {
            r = p.table;
        }
        tables[t].root = r;
    }
}

/// Rows of the top-level tables besides `main`: enough for the tables
/// that draw distinct rows of them, at least one, and no more than their
/// key can tell apart.
fn size_tables(tables: &mut [TablePlan], main: usize) {
    // A table whose own key names rows of a lookup table needs as
    // many of those as it has children per parent, all distinct.
    for t in 0..tables.len() {
        let need = tables[t].max_children as u64;
        let targets: Vec<usize> = tables[t]
            .lookups
            .iter()
            .filter(|lk| {
                lk.map.iter().any(|m| tables[t].layout.key.contains(&m.0))
            })
            .map(|lk| lk.table)
            .collect();
        for lt in targets {
            tables[lt].rows = tables[lt].rows.max(need).max(1);
        }
    }
    // Other top-level tables (code tables) have at least one row, and
    // no more than their key can tell apart.
    for (t, tp) in tables.iter_mut().enumerate() {
        if t != main && tp.parent.is_none() {
            let cap = tp
                .layout
                .key
                .first()
                .map_or(u64::MAX, |&k| key_capacity(tp, k));
            tp.rows = tp.rows.clamp(1, cap.max(1));
        }
    }
}

/// Makes a field that several lookups fill take values all their
/// targets hold: the first lookup's target column, when it is not that
/// table's key, is itself filled from the others' (one shared pool).
fn share_lookups(tables: &mut [TablePlan]) {
    let mut extra: Vec<(usize, Lookup)> = Vec::new();
    for tp in tables.iter() {
        for (a, first) in tp.lookups.iter().enumerate() {
            let [(field, there)] = first.map[..] else { continue };
            let target = &tables[first.table];
            if target.layout.key.contains(&there) {
                continue;
            }
            for other in &tp.lookups[a + 1..] {
                let [(f2, there2)] = other.map[..] else { continue };
                if f2 == field && other.table != first.table {
                    extra.push((
                        first.table,
                        Lookup {
                            table: other.table,
                            map: vec![(there, there2)],
                        },
                    ));
                }
            }
        }
    }
    for (t, lk) in extra {
        if !tables[t].lookups.iter().any(|l| l.covers(lk.map[0].0)) {
            tables[t].lookups.insert(0, lk);
        }
    }
}

/// Sets each table's `key_chars` from the text columns filled from its
/// first key column, through parent links and lookups.
fn narrow_keys(tables: &mut [TablePlan]) {
    let mut fills: Vec<(usize, usize)> = Vec::new();
    for tp in tables.iter() {
        let text = |f: usize| tp.layout.fields[f].decoder.ty.is_text();
        if let Some(p) = &tp.parent {
            for &(field, pos) in &p.map {
                if pos == 0 && text(field) {
                    fills.push((p.table, tp.gens[field].max_chars()));
                }
            }
        }
        for lk in &tp.lookups {
            for &(field, there) in &lk.map {
                let first =
                    tables[lk.table].layout.key.first() == Some(&there);
                if first && text(field) {
                    fills.push((lk.table, tp.gens[field].max_chars()));
                }
            }
        }
    }
    for (to, chars) in fills {
        let k = &mut tables[to].key_chars;
        *k = Some(k.map_or(chars, |c| c.min(chars)));
    }
}

/// Converts a parent's key value to the child field's type.
pub(crate) fn convert(v: &Datum, ty: FieldType) -> Datum {
    match (v, ty.is_text()) {
        (Datum::Int(i), true) => Datum::Text(i.to_string()),
        (Datum::Text(s), false)
            if matches!(
                ty,
                FieldType::Smallint | FieldType::Int | FieldType::Bigint
            ) =>
        {
            Datum::Int(s.trim().parse().unwrap_or(0))
        }
        _ => v.clone(),
    }
}

fn text_width(tp: &TablePlan, k: usize) -> usize {
    let own = tp.gens[k].max_chars();
    match tp.key_chars {
        Some(c) if tp.layout.key.first() == Some(&k) => own.min(c),
        _ => own,
    }
}

/// How many distinct values `unique_value` can make for field `k`.
fn key_capacity(tp: &TablePlan, k: usize) -> u64 {
    let f = &tp.layout.fields[k];
    match f.decoder.ty {
        FieldType::Smallint => i16::MAX as u64,
        FieldType::Int => i32::MAX as u64 / 2,
        FieldType::Bigint | FieldType::Numeric(_) | FieldType::Float8 => {
            u64::MAX / 4
        }
        FieldType::Date | FieldType::Timestamp => 2_900_000,
        FieldType::Boolean => 2,
        FieldType::Time => 86_400,
        _ => {
            let digits = text_width(tp, k).min(13) as u32;
            10u64.pow(digits)
        }
    }
}

/// A distinct value for row `i` of field `k` (a top-level key).
fn unique_value(tp: &TablePlan, k: usize, i: u64) -> Datum {
    let f = &tp.layout.fields[k];
    match f.decoder.ty {
        FieldType::Smallint => Datum::Int(i as i64 + 1),
        FieldType::Int | FieldType::Bigint => Datum::Int(i as i64 + 10_001),
        FieldType::Numeric(Some((_, s))) => Datum::Numeric(Decimal {
            mantissa: (i as i128 + 1) * 10i128.pow(s as u32),
            scale: s,
        }),
        FieldType::Numeric(None) => {
            Datum::Numeric(Decimal { mantissa: i as i128 + 1, scale: 0 })
        }
        FieldType::Float8 => Datum::Float(i as f64 + 1.0),
        FieldType::Boolean => Datum::Bool(i % 2 == 1),
        FieldType::Date => {
            Datum::Date(days(1990, 1, 1).unwrap_or(0) + i as i32)
        }
        FieldType::Timestamp => Datum::Timestamp(
            (days(1990, 1, 1).unwrap_or(0) as i64 + i as i64)
                * crate::decode::USECS_PER_DAY,
        ),
        FieldType::Time => Datum::Time(i as i64 * 1_000_000),
        _ => {
            // Account-number-like: a bijective scramble of i in 10^digits,
            // zero-padded (`0660640130020`).
            let digits = text_width(tp, k).min(13) as u32;
            let m = 10u64.pow(digits);
            let v = ((i as u128 * 2_654_435_761u128 + 1_234_567) % m as u128)
                as u64;
            Datum::Text(format!("{v:0w$}", w = digits as usize))
        }
    }
}

/// The `j`-th distinct value among the children of one parent.
fn sibling_value(tp: &TablePlan, k: usize, j: u32, parent_uid: u64) -> Datum {
    let f = &tp.layout.fields[k];
    match f.decoder.ty {
        FieldType::Smallint | FieldType::Int | FieldType::Bigint => {
            Datum::Int(j as i64 + 1)
        }
        FieldType::Numeric(Some((_, s))) => Datum::Numeric(Decimal {
            mantissa: (j as i128 + 1) * 10i128.pow(s as u32),
            scale: s,
        }),
        FieldType::Numeric(None) => {
            Datum::Numeric(Decimal { mantissa: j as i128 + 1, scale: 0 })
        }
        FieldType::Float8 => Datum::Float(j as f64 + 1.0),
        FieldType::Boolean => Datum::Bool(j == 1),
        FieldType::Date => Datum::Date(
            days(1995, 1, 1).unwrap_or(0)
                + (parent_uid % 7000) as i32
                + 7 * j as i32,
        ),
        FieldType::Timestamp => {
            let d = days(1995, 1, 1).unwrap_or(0) as i64
                + (parent_uid % 7000) as i64
                + 7 * j as i64;
            Datum::Timestamp(d * crate::decode::USECS_PER_DAY)
        }
        FieldType::Time => Datum::Time(j as i64 * 60_000_000),
        _ => {
            // Short codes, distinct per sibling: A, B, …, Z, AA, AB, …
            let w = text_width(tp, k).max(1);
            let base = 26;
            let mut n = j as u64;
            let mut s = Vec::new();
            loop {
                s.push(b'A' + (n % base) as u8);
                n /= base;
                if n == 0 {
                    break;
                }
                n -= 1;
            }
            s.reverse();
            let mut code = String::from_utf8(s).unwrap_or_default();
            if code.len() > w {
                // Too narrow for letters: use digits instead.
                code = format!("{}", j % 10u32.pow(w.min(9) as u32));
            }
            Datum::Text(code)
        }
    }
}

/// The byte that is invalid in `enc`.
pub(super) fn bad_byte(enc: Encoding) -> u8 {
    match enc {
        Encoding::Utf8 => 0xFF,
        Encoding::Latin1 | Encoding::Windows1252 => 0x81,
    }
}
