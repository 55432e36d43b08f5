//! What a dataset declares about a whole export, made true of the
//! generated data: layouts written as a named version, the control record
//! stating the year and export version, and totals that reconcile with
//! the records they sum.

use std::collections::BTreeMap;

use rayon::prelude::*;

use super::plan::convert;
use super::rng::{Rng, seed_of};
use super::value::Datum;
use super::{BLOCK_ROOTS, GenError, GenOptions, Plan, RowBuf, make_row};
use crate::decode::{Decimal, FieldType};
use crate::schema::{ControlSpec, Layout, Reconcile, SchemaSet, Version};

/// A totals record: its key and the (field, value) pairs it states.
pub(crate) type GroupRow = (Vec<Datum>, Vec<(usize, Datum)>);

/// What a table's records state beyond their generated values.
#[derive(Clone, Debug, Default)]
pub(crate) struct TableExtra {
    /// (field, value) every record states.
    pub fixed: Vec<(usize, Datum)>,
    /// A totals table: one record per group, its key and the (field,
    /// value) pairs it states (counts, sums, and `fixed`).
    pub groups: Option<Vec<GroupRow>>,
}

/// `set` with every layout that has a version named `name` as that
/// version reads records.
///
/// # Errors
/// No layout has such a version.
pub(crate) fn versioned(
    set: &SchemaSet,
    name: &str,
) -> Result<SchemaSet, GenError> {
    let mut out = set.clone();
    let mut any = false;
    for l in &mut out.layouts {
        if let Some(v) = l.versions.iter().find(|v| v.name == name).cloned() {
            *l = l.with_version(&v);
            any = true;
        }
    }
    if !any {
        let mut known: Vec<&str> = set
            .layouts
            .iter()
            .flat_map(|l| l.versions.iter().map(|v| v.name.as_str()))
            .collect();
        known.sort_unstable();
        known.dedup();
        return Err(GenError::new(format!(
            "no layout has a version named {name:?} (versions: {})",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        )));
    }
    Ok(out)
}

/// The export version the control record states: the first export
/// version of the versions `--layout-version` picked (blank when one of
/// them has none, so a load picks by record length), else the control
/// layout's own first one, else blank.
fn export_version(
    set: &SchemaSet,
    control: &Layout,
    opts: &GenOptions,
) -> Option<String> {
    match &opts.version {
        Some(name) => {
            let picked: Vec<&Version> = set
                .layouts
                .iter()
                .filter_map(|l| l.versions.iter().find(|v| &v.name == name))
                .collect();
            if picked.iter().any(|v| v.export_versions.is_empty()) {
                return None;
            }
            picked.first()?.export_versions.first().cloned()
        }
        None => control.versions.first()?.export_versions.first().cloned(),
    }
}

/// A blank field: its first null marker, or empty text.
fn blank(layout: &Layout, i: usize) -> Datum {
    if layout.fields[i].decoder.nulls.is_empty() {
        Datum::Text(String::new())
    } else {
        Datum::Null
    }
}

/// Prepares `plan` for the dataset's control record and reconciled totals
/// (`set` is the schema as loaded, before any version was applied) and
/// returns what each table's records must state.
///
/// # Errors
/// A count or sum that no shrinking of the summed values makes fit its
/// totals field, or a record that cannot be made.
pub(crate) fn prepare(
    set: &SchemaSet,
    plan: &mut Plan,
    opts: &GenOptions,
) -> Result<Vec<TableExtra>, GenError> {
    let mut extras = vec![TableExtra::default(); plan.tables.len()];
    let Some(ds) = &set.dataset else { return Ok(extras) };
    let index = |plan: &Plan, name: &str| {
        plan.tables.iter().position(|t| t.layout.name == name)
    };
    if let Some(c) = &ds.control
        && let Some(t) = index(plan, &c.layout)
    {
        extras[t].fixed = control(set, plan, c, t, opts);
    }
    for r in &ds.reconcile {
        let (Some(ti), Some(oi)) =
            (index(plan, &r.totals), index(plan, &r.of))
        else {
            continue;
        };
        if ti == oi {
            continue;
        }
        // Every record of the summed table counts (no duplicate quirk,
        // whose extra record a load may drop), and every group has its one
        // good totals record.
        plan.tables[oi].dup_quirk = false;
        plan.tables[ti].dup_quirk = false;
        plan.tables[ti].faults.clear();
        let totals = Totals::new(plan, r, ti, oi)?;
        let groups = totals.fit(plan, &extras[oi].fixed)?;
        extras[ti].groups = Some(totals.rows(plan, groups, &extras[ti].fixed));
    }
    Ok(extras)
}

/// Makes table `t`, the control record's, one good record that describes
/// the export, and returns the (field, value) pairs it states.
fn control(
    set: &SchemaSet,
    plan: &mut Plan,
    c: &ControlSpec,
    t: usize,
    opts: &GenOptions,
) -> Vec<(usize, Datum)> {
    let own = &set.layouts
        [set.layouts.iter().position(|l| l.name == c.layout).unwrap_or(t)];
    let export = export_version(set, own, opts);
    let tp = &mut plan.tables[t];
    // One good record describes the export.
    tp.faults.clear();
    tp.dup_quirk = false;
    if tp.parent.is_none() {
        tp.rows = 1;
    }
    let layout = &tp.layout;
    let mut fixed = Vec::new();
    if let Some(i) = c.year.as_deref().and_then(|f| layout.field_index(f)) {
        fixed.push((
            i,
            convert(
                &Datum::Int(opts.year as i64),
                layout.fields[i].decoder.ty,
            ),
        ));
    }
    if let Some(i) =
        c.export_version.as_deref().and_then(|f| layout.field_index(f))
    {
        fixed.push((i, export.map_or_else(|| blank(layout, i), Datum::Text)));
    }
    if let Some(i) =
        c.no_values.as_ref().and_then(|(f, _)| layout.field_index(f))
    {
        // Anything but the "no values" flag: the export has values.
        fixed.push((i, blank(layout, i)));
    }
    fixed
}

/// A reconciled totals table as field indexes: table `ti` states, per
/// group of table `oi`'s records, their count and sums.
struct Totals {
    ti: usize,
    oi: usize,
    /// The totals table's group columns.
    tcols: Vec<usize>,
    /// The summed table's group columns, in the same order.
    ocols: Vec<usize>,
    /// The totals table's count field.
    count: Option<usize>,
    sums: Vec<Sum>,
}

impl Totals {
    /// `r`'s columns in tables `ti` (totals) and `oi` (summed).
    fn new(
        plan: &Plan,
        r: &Reconcile,
        ti: usize,
        oi: usize,
    ) -> Result<Totals, GenError> {
        let tl = &plan.tables[ti].layout;
        let ol = &plan.tables[oi].layout;
        let field = |l: &Layout, n: &str| {
            l.field_index(n).ok_or_else(|| {
                GenError::new(format!("layout {}: no field {n}", l.name))
            })
        };
        let tcols = r
            .columns
            .iter()
            .map(|c| field(tl, c))
            .collect::<Result<Vec<_>, _>>()?;
        let ocols = r
            .of_columns
            .iter()
            .map(|c| field(ol, c))
            .collect::<Result<Vec<_>, _>>()?;
        let count = r.count.as_deref().map(|c| field(tl, c)).transpose()?;
        let sums: Vec<Sum> = r
            .sums
            .iter()
            .map(|(t, o)| {
                let tf = field(tl, t)?;
                Ok(Sum {
                    totals: tf,
                    of: field(ol, o)?,
                    scale: scale_of(tl.fields[tf].decoder.ty),
                })
            })
            .collect::<Result<_, GenError>>()?;
        Ok(Totals { ti, oi, tcols, ocols, count, sums })
    }

    /// The summed table's groups as its records (stating `fixed`) are
    /// written, its summed values made smaller until every group's count
    /// and sums fit the totals fields.
    fn fit(
        &self,
        plan: &mut Plan,
        fixed: &[(usize, Datum)],
    ) -> Result<BTreeMap<Vec<GroupKey>, Acc>, GenError> {
        let tl = &plan.tables[self.ti].layout.clone();
        let ol = &plan.tables[self.oi].layout.clone();
        loop {
            let groups =
                accumulate(plan, self.oi, fixed, &self.ocols, &self.sums)?;
            let tp = &plan.tables[self.ti];
            if let Some(c) = self.count {
                let most = groups.values().map(|a| a.n).max().unwrap_or(0);
                if !fits(tp, c, most as i128) {
                    return Err(GenError::new(format!(
                        "layout {}: {} records in one group do not fit field {}",
                        tl.name, most, tl.fields[c].name
                    )));
                }
            }
            let mut grow = Vec::new();
            for (k, s) in self.sums.iter().enumerate() {
                let most = groups
                    .values()
                    .map(|a| a.sums[k].abs())
                    .max()
                    .unwrap_or(0);
                if !fits(tp, s.totals, most) {
                    grow.push(s);
                }
            }
            if grow.is_empty() {
                return Ok(groups);
            }
            // Smaller summed values until the sums fit.
            let op = &mut plan.tables[self.oi];
            for s in grow {
                let e = match op.shrink.iter_mut().find(|x| x.0 == s.of) {
                    Some(x) => x,
                    None => {
                        op.shrink.push((s.of, 0));
                        op.shrink.last_mut().expect("just pushed")
                    }
                };
                if e.1 >= 30 {
                    return Err(GenError::new(format!(
                        "layout {}: sums of {} do not fit field {}",
                        tl.name,
                        ol.fields[s.of].name,
                        tl.fields[s.totals].name
                    )));
                }
                e.1 += 1;
            }
        }
    }

    /// The totals records of `groups`: each one's key and the (field,
    /// value) pairs it states, `fixed` first.
    fn rows(
        &self,
        plan: &Plan,
        groups: BTreeMap<Vec<GroupKey>, Acc>,
        fixed: &[(usize, Datum)],
    ) -> Vec<GroupRow> {
        let tp = &plan.tables[self.ti];
        let tl = &tp.layout;
        let mut rows = Vec::with_capacity(groups.len());
        for (g, (_, acc)) in groups.into_iter().enumerate() {
            let mut rng =
                Rng::new(seed_of(&[plan.seed, tp.hash, g as u64, 0x6B]));
            let mut states = fixed.to_vec();
            let mut key = Vec::with_capacity(tl.key.len());
            for &kf in &tl.key {
                let ty = tl.fields[kf].decoder.ty;
                match self.tcols.iter().position(|&c| c == kf) {
                    Some(c) => key.push(convert(&acc.group[c], ty)),
                    None => key.push(tp.gens[kf].non_null(&mut rng)),
                }
            }
            for (c, &f) in self.tcols.iter().enumerate() {
                if !tl.key.contains(&f) {
                    states.push((
                        f,
                        convert(&acc.group[c], tl.fields[f].decoder.ty),
                    ));
                }
            }
            if let Some(c) = self.count {
                states.push((
                    c,
                    number(tl.fields[c].decoder.ty, acc.n as i128, 0),
                ));
            }
            for (k, s) in self.sums.iter().enumerate() {
                states.push((
                    s.totals,
                    number(
                        tl.fields[s.totals].decoder.ty,
                        acc.sums[k],
                        s.scale,
                    ),
                ));
            }
            rows.push((key, states));
        }
        rows
    }
}

/// One summed column: the totals field, the field summed, and the totals
/// field's scale (sums are kept in its units).
struct Sum {
    totals: usize,
    of: usize,
    scale: u16,
}

/// One group of the summed table.
struct Acc {
    group: Vec<Datum>,
    n: u64,
    sums: Vec<i128>,
}

/// A group column's value, ordered.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum GroupKey {
    Null,
    Int(i64),
    Text(String),
    Other(String),
}

fn group_key(d: &Datum) -> GroupKey {
    match d {
        Datum::Null => GroupKey::Null,
        Datum::Int(i) => GroupKey::Int(*i),
        Datum::Text(s) => GroupKey::Text(s.trim().to_owned()),
        other => GroupKey::Other(format!("{other:?}")),
    }
}

fn scale_of(ty: FieldType) -> u16 {
    match ty {
        FieldType::Numeric(Some((_, s))) => s,
        _ => 0,
    }
}

/// `v` (in units of 10^-`scale`) as a value of type `ty`.
fn number(ty: FieldType, v: i128, scale: u16) -> Datum {
    match ty {
        FieldType::Numeric(_) => {
            Datum::Numeric(Decimal { mantissa: v, scale })
        }
        _ => Datum::Int(v as i64),
    }
}

/// `d` in units of 10^-`scale` (NULL and other types count 0).
fn units(d: &Datum, scale: u16) -> i128 {
    let at = |m: i128, s: u16| {
        if s <= scale {
            m * 10i128.pow((scale - s) as u32)
        } else {
            m / 10i128.pow((s - scale) as u32)
        }
    };
    match d {
        Datum::Int(i) => at(*i as i128, 0),
        Datum::Numeric(x) => at(x.mantissa, x.scale),
        _ => 0,
    }
}

/// Whether `v` can be written in field `f` of table `tp`.
fn fits(tp: &super::plan::TablePlan, f: usize, v: i128) -> bool {
    let digits = v.unsigned_abs().to_string().len() as u32 + u32::from(v < 0);
    let range = match tp.layout.fields[f].decoder.ty {
        FieldType::Smallint => i16::MAX as i128,
        FieldType::Int => i32::MAX as i128,
        FieldType::Bigint => i64::MAX as i128,
        _ => i128::MAX,
    };
    digits <= tp.gens[f].max_digits() && v.abs() <= range
}

/// Counts and sums of table `t`'s good records (bad ones are rejects at
/// load time) per group, walking it as it is written.
fn accumulate(
    plan: &Plan,
    t: usize,
    fixed: &[(usize, Datum)],
    cols: &[usize],
    sums: &[Sum],
) -> Result<BTreeMap<Vec<GroupKey>, Acc>, GenError> {
    let tp = &plan.tables[t];
    let roots = plan.tables[tp.root].rows;
    let blocks: Vec<u64> = (0..roots.div_ceil(BLOCK_ROOTS)).collect();
    let parts: Vec<Result<BTreeMap<Vec<GroupKey>, Acc>, GenError>> = blocks
        .par_iter()
        .map(|&b| {
            let mut out: BTreeMap<Vec<GroupKey>, Acc> = BTreeMap::new();
            let mut buf = RowBuf::default();
            let mut bytes = Vec::new();
            let mut err = None;
            let range = b * BLOCK_ROOTS..((b + 1) * BLOCK_ROOTS).min(roots);
            plan.walk(t, range, &mut |id| {
                if err.is_some() || plan.fault(t, id.uid).is_some() {
                    return;
                }
                bytes.clear();
                if let Err(e) = make_row(
                    plan, t, id.uid, &id.key, None, fixed, &mut buf,
                    &mut bytes,
                ) {
                    err = Some(GenError::new(format!(
                        "layout {}: {e}",
                        tp.layout.name
                    )));
                    return;
                }
                let v = &buf.values;
                let k: Vec<GroupKey> =
                    cols.iter().map(|&c| group_key(&v[c])).collect();
                let acc = out.entry(k).or_insert_with(|| Acc {
                    group: cols.iter().map(|&c| v[c].clone()).collect(),
                    n: 0,
                    sums: vec![0; sums.len()],
                });
                acc.n += 1;
                for (k, s) in sums.iter().enumerate() {
                    acc.sums[k] += units(&v[s.of], s.scale);
                }
            });
            match err {
                Some(e) => Err(e),
                None => Ok(out),
            }
        })
        .collect();
    let mut all: BTreeMap<Vec<GroupKey>, Acc> = BTreeMap::new();
    for p in parts {
        for (k, a) in p? {
            match all.get_mut(&k) {
                Some(acc) => {
                    acc.n += a.n;
                    for (x, y) in acc.sums.iter_mut().zip(&a.sums) {
                        *x += y;
                    }
                }
                None => {
                    all.insert(k, a);
                }
            }
        }
    }
    Ok(all)
}
