//! Shipped schemas: they load, their columns and offsets are the published
//! ones, member globs are unambiguous, and realistic records validate.

use std::path::{Path, PathBuf};

use fwload::schema::{Layout, SchemaSet};

use crate::util::{
    Dir, decoded_rows, fwload, pacs_document, pacs_record, stderr, stdout,
};

fn dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas").join(name)
}

fn load(name: &str) -> SchemaSet {
    SchemaSet::load(&[dir(name)])
        .unwrap_or_else(|e| panic!("schemas/{name} does not load:\n{e}"))
}

fn layout<'a>(set: &'a SchemaSet, name: &str) -> &'a Layout {
    set.layout(name).unwrap_or_else(|| panic!("no layout {name}"))
}

/// Decodes `raw` with the field `name` of `layout`, as PostgreSQL text.
fn decode(layout: &Layout, name: &str, raw: &[u8]) -> String {
    let i = layout.field_index(name).expect("field");
    let mut scratch = Vec::new();
    match layout.fields[i].decoder.decode(raw, &mut scratch) {
        Ok(v) => v.to_string(),
        Err(r) => panic!("{}.{name}: {raw:?} rejected: {r:?}", layout.name),
    }
}

/// Runs `fwload validate` and returns the JSON report's totals.
fn validate(schema: &str, input: &Path, tmp: &Dir) -> serde_json::Value {
    let report = tmp.join("report.json");
    let schema = dir(schema);
    let out = fwload(&[
        "validate",
        "--quiet",
        "--schema",
        schema.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "validate failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    let text = std::fs::read_to_string(&report).expect("report");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    json["totals"].clone()
}

// ---------------------------------------------------------------- HCAD

/// Published header names, in column order.
const HCAD_COLUMNS: &[(&str, &[&str])] = &[
    (
        "real_acct",
        &[
            "acct",
            "yr",
            "mailto",
            "mail_addr_1",
            "mail_addr_2",
            "mail_city",
            "mail_state",
            "mail_zip",
            "mail_country",
            "undeliverable",
            "str_pfx",
            "str_num",
            "str_num_sfx",
            "str",
            "str_sfx",
            "str_sfx_dir",
            "str_unit",
            "site_addr_1",
            "site_addr_2",
            "site_addr_3",
            "state_class",
            "school_dist",
            "map_facet",
            "key_map",
            "Neighborhood_Code",
            "Neighborhood_Grp",
            "Market_Area_1",
            "Market_Area_1_Dscr",
            "Market_Area_2",
            "Market_Area_2_Dscr",
            "econ_area",
            "econ_bld_class",
            "center_code",
            "yr_impr",
            "yr_annexed",
            "splt_dt",
            "dsc_cd",
            "nxt_bld",
            "bld_ar",
            "land_ar",
            "acreage",
            "Cap_acct",
            "shared_cad",
            "land_val",
            "bld_val",
            "x_features_val",
            "ag_val",
            "assessed_val",
            "tot_appr_val",
            "tot_mkt_val",
            "prior_land_val",
            "prior_bld_val",
            "prior_x_features_val",
            "prior_ag_val",
            "prior_tot_appr_val",
            "prior_tot_mkt_val",
            "new_construction_val",
            "tot_rcn_val",
            "value_status",
            "noticed",
            "notice_dt",
            "protested",
            "certified_date",
            "rev_dt",
            "rev_by",
            "new_own_dt",
            "lgl_1",
            "lgl_2",
            "lgl_3",
            "lgl_4",
            "jurs",
        ],
    ),
    ("owners", &["acct", "ln_num", "name", "aka", "pct_own"]),
    ("deeds", &["acct", "dos", "clerk_yr", "clerk_id", "deed_id"]),
    (
        "permits",
        &[
            "acct",
            "id",
            "agency_id",
            "status",
            "dscr",
            "dor_cd",
            "permit_type",
            "permit_tp_descr",
            "property_tp",
            "issue_date",
            "yr",
            "site_num",
            "site_pfx",
            "site_str",
            "site_tp",
            "site_sfx",
            "site_apt",
        ],
    ),
    ("parcel_tieback", &["acct", "tp", "dscr", "related_acct", "pct"]),
    ("real_neighborhood_code", &["cd", "grp_cd", "dscr"]),
    (
        "building_res",
        &[
            "acct",
            "property_use_cd",
            "bld_num",
            "impr_tp",
            "impr_mdl_cd",
            "structure",
            "structure_dscr",
            "dpr_val",
            "cama_replacement_cost",
            "accrued_depr_pct",
            "qa_cd",
            "dscr",
            "date_erected",
            "eff",
            "yr_remodel",
            "yr_roll",
            "appr_by",
            "appr_dt",
            "notes",
            "im_sq_ft",
            "act_ar",
            "heat_ar",
            "gross_ar",
            "eff_ar",
            "base_ar",
            "perimeter",
            "pct",
            "bld_adj",
            "rcnld",
            "size_index",
            "lump_sum_adj",
        ],
    ),
    ("fixtures", &["acct", "bld_num", "type", "type_dscr", "units"]),
    (
        "extra_features",
        &[
            "acct",
            "cd",
            "dscr",
            "grade",
            "cond_cd",
            "bld_num",
            "length",
            "width",
            "units",
            "unit_price",
            "adj_unit_price",
            "pct_comp",
            "act_yr",
            "eff_yr",
            "roll_yr",
            "DT",
            "pct_cond",
            "dpr_val",
            "note",
            "asd_val",
        ],
    ),
];

#[test]
fn hcad_loads_with_dataset() {
    let set = load("hcad");
    let ds = set.dataset.as_ref().expect("dataset.toml");
    assert_eq!(ds.name, "hcad");
    // The main files are among the layouts (every codebook file is
    // checked in hcad_codebook.rs).
    for (name, _) in HCAD_COLUMNS {
        assert!(set.layouts.iter().any(|l| l.name == *name), "{name}");
    }
    for a in &ds.archives {
        let url = a.url.as_deref().expect("HCAD archives have URLs");
        assert_eq!(
            url,
            format!("https://download.hcad.org/data/CAMA/{{year}}/{}", a.name)
        );
    }
    // Parents load before the layouts referencing them.
    let pos = |n: &str| set.layouts.iter().position(|l| l.name == n).unwrap();
    for r in &ds.references {
        assert!(pos(&r.to) < pos(&r.from), "{} before {}", r.to, r.from);
    }
}

#[test]
fn hcad_headers_are_the_published_columns() {
    let set = load("hcad");
    assert_eq!(HCAD_COLUMNS[0].1.len(), 71);
    for (name, columns) in HCAD_COLUMNS {
        let l = layout(&set, name);
        let headers: Vec<&str> =
            l.fields.iter().map(|f| f.header.as_str()).collect();
        assert_eq!(&headers, columns, "{name}: header names");
        let names: Vec<String> =
            l.fields.iter().map(|f| f.name.clone()).collect();
        let lower: Vec<String> =
            columns.iter().map(|c| c.to_ascii_lowercase()).collect();
        assert_eq!(names, lower, "{name}: field names");
    }
}

/// A real_acct.txt with a header and three records carrying the real
/// quirks: a right-padded account, an unbalanced `"` (a CSV reader would
/// swallow the records after it), double spaces in names, 0000 years and
/// 00/00/0000 dates, decimals in value columns.
fn real_acct_txt() -> String {
    let header = HCAD_COLUMNS[0].1.join("\t");
    let record = |overrides: &[(&str, &str)]| {
        let mut v: Vec<&str> = vec![""; 71];
        for (k, val) in overrides {
            let i = HCAD_COLUMNS[0].1.iter().position(|c| c == k).unwrap();
            v[i] = val;
        }
        v.join("\t")
    };
    let common = [
        ("yr", "2025"),
        ("mail_city", "HOUSTON"),
        ("mail_state", "TX"),
        ("state_class", "A1"),
        ("land_val", "45000"),
        ("bld_val", "180500"),
        ("tot_appr_val", "225500"),
        ("tot_mkt_val", "225500"),
        ("notice_dt", "04/01/2025"),
        ("new_own_dt", "00/00/0000"),
        ("jurs", "001 040 041 048"),
    ];
    let mut r1 = common.to_vec();
    r1.extend([
        ("acct", "1161530010003            "),
        ("mailto", "MILLER NORMAN B  & LESLIE B"),
        ("mail_addr_1", "200 OAK \"AVE"),
        ("yr_impr", "0000"),
        ("acreage", "1.2400"),
    ]);
    let mut r2 = common.to_vec();
    r2.extend([
        ("acct", "0660640130020"),
        ("mailto", "ELMORE SCOTT"),
        ("mail_addr_1", "730 HERRICK CT"),
        ("yr_impr", "1998"),
        ("splt_dt", "3/5/2019"),
        ("acreage", "0.238000"),
        ("bld_ar", "2410"),
        ("land_ar", "10367"),
    ]);
    let mut r3 = common.to_vec();
    r3.extend([
        ("acct", "0020000020001"),
        ("mailto", "RIVER  OAKS TRUST"),
        ("mail_addr_1", "PO BOX 7890"),
        ("yr_impr", "0000"),
        ("yr_annexed", "0000"),
        ("tot_appr_val", "0"),
        ("lgl_1", "LT 1  BLK 2"),
    ]);
    format!(
        "{header}\r\n{}\r\n{}\r\n{}\r\n",
        record(&r1),
        record(&r2),
        record(&r3)
    )
}

#[test]
fn hcad_real_acct_quirks_validate() {
    let tmp = Dir::new();
    let path = tmp.write("Real/real_acct.txt", real_acct_txt());
    let totals = validate("hcad", &path, &tmp);
    assert_eq!(totals["read"], 3, "{totals}");
    assert_eq!(totals["valid"], 3, "{totals}");
    assert_eq!(totals["rejected"], 0, "{totals}");
}

#[test]
fn hcad_real_acct_values_decode() {
    let set = load("hcad");
    let l = layout(&set, "real_acct");
    assert_eq!(
        decode(l, "acct", b"1161530010003            "),
        "1161530010003"
    );
    assert_eq!(decode(l, "acct", b"0660640130020"), "0660640130020");
    assert_eq!(
        decode(l, "mailto", b"MILLER NORMAN B  & LESLIE B"),
        "MILLER NORMAN B & LESLIE B"
    );
    assert_eq!(decode(l, "mail_addr_1", b"200 OAK \"AVE"), "200 OAK \"AVE");
    assert_eq!(decode(l, "yr_impr", b"0000"), "NULL");
    assert_eq!(decode(l, "yr_impr", b"1998"), "1998");
    assert_eq!(decode(l, "new_own_dt", b"00/00/0000"), "NULL");
    assert_eq!(decode(l, "notice_dt", b"04/01/2025"), "2025-04-01");
    assert_eq!(decode(l, "tot_appr_val", b"0"), "0.00");
    let owners = layout(&set, "owners");
    assert_eq!(decode(owners, "pct_own", b"0.620000"), "0.620000");
    let bld = layout(&set, "building_res");
    assert_eq!(decode(bld, "size_index", b"1.2400"), "1.240000");
}

// ---------------------------------------------------------------- PACS

/// A document field name as a column name: runs of anything but letters
/// and digits become one `_`, lower case (`Run Date / Time` is
/// `run_date_time`).
fn snake(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_lowercase());
        } else if !s.is_empty() && !s.ends_with('_') {
            s.push('_');
        }
    }
    s.trim_end_matches('_').to_owned()
}

/// Fields whose data carries a literal decimal point although the
/// document types them numeric(N): real rows read `0006193.000000`.
const PACS_LITERAL_POINT: &[(&str, &str)] = &[
    ("appraisal_improvement_info", "imprv_val"),
    ("appraisal_improvement_detail", "imprv_det_area"),
    ("appraisal_improvement_detail", "imprv_det_val"),
];

/// Fields whose document type contradicts its width: UDI_7_8.TXT's
/// Owner_Name is typed int(12) over 70 bytes, and holds a name.
const PACS_TEXT_DESPITE_TYPE: &[(&str, &str)] = &[("udi_7_8", "owner_name")];

/// One document field as a layout must declare it.
struct DocField {
    name: String,
    /// Byte range, 0-based, end exclusive.
    span: std::ops::Range<usize>,
    /// The document's type, as printed (typos and all).
    ty: String,
    /// Implied places: stated, or the D of numeric(N,D).
    implied: Option<u16>,
}

/// The document's fields of `file` without its fillers, named as columns;
/// a repeated name gets `_2`, `_3`, … in document order.
fn doc_fields(file: &serde_json::Value) -> Vec<DocField> {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    let mut out = Vec::new();
    for f in file["fields"].as_array().unwrap() {
        let mut name = snake(f["name"].as_str().unwrap());
        if name == "filler" {
            continue;
        }
        let n = seen.entry(name.clone()).or_default();
        *n += 1;
        if *n > 1 {
            name = format!("{name}_{n}");
        }
        let ty = f["type"].as_str().unwrap().to_owned();
        let scale = ty
            .split_once(',')
            .and_then(|(_, d)| d.trim_end_matches(')').parse().ok());
        let implied =
            f["implied_decimals"].as_u64().map(|d| d as u16).or(scale);
        // Positions, not the printed length: the two disagree once
        // (APPRAISAL_ENTITY_INFO.TXT freeze_ceiling_override, 2645-2645,
        // "length 15").
        let start = f["start"].as_u64().unwrap() as usize;
        let end = f["end"].as_u64().unwrap() as usize;
        out.push(DocField { name, span: start - 1..end, ty, implied });
    }
    out
}

/// Whether the document's type is text: char(N) or varchar(N), as
/// printed (`varcahr(10)` and ``varchar(10)` `` among them).
fn is_char(ty: &str) -> bool {
    ty.starts_with("char(")
        || ty.starts_with("varchar(")
        || ty == "varcahr(10)"
}

/// Whether layout field `f` has the type the document's field `d` asks
/// for: text for char; an integer type holding every value of its digits
/// for numeric(N) and int(N); numeric with the implied places where the
/// document states them.
fn pacs_type_problem(
    layout: &str,
    f: &fwload::schema::Field,
    d: &DocField,
) -> Option<String> {
    use fwload::decode::{FieldType, Fraction};
    let ty = f.decoder.ty;
    let implied = match f.decoder.fraction {
        Fraction::Implied(k) if ty != FieldType::Numeric(None) => Some(k),
        _ => None,
    };
    let pair = (layout, d.name.as_str());
    let ok = if PACS_LITERAL_POINT.contains(&pair) {
        matches!(ty, FieldType::Numeric(_))
            && f.decoder.fraction == Fraction::Literal
    } else if let Some(k) = d.implied {
        matches!(ty, FieldType::Numeric(Some((_, s))) if s == k)
            && implied == Some(k)
    } else if is_char(&d.ty) || PACS_TEXT_DESPITE_TYPE.contains(&pair) {
        ty.is_text()
    } else {
        // Whole numbers: an integer type, or numeric of scale 0 past
        // bigint (APPRAISAL_INFO.TXT land_acres is numeric(20)).
        let digits = d.span.len() as u32;
        let most = 10i128.pow(digits) - 1;
        match ty {
            FieldType::Smallint => most <= i16::MAX as i128,
            FieldType::Int => most <= i32::MAX as i128,
            FieldType::Bigint => most <= i64::MAX as i128,
            FieldType::Numeric(Some((p, 0))) => {
                p as u32 >= digits && f.decoder.fraction == Fraction::Literal
            }
            _ => false,
        }
    };
    (!ok).then(|| {
        format!("{layout}.{}: type {} for {}", d.name, ty.sql(), d.ty)
    })
}

/// Everything in `layout` that disagrees with the document's `file`.
fn pacs_document_problems(
    layout: &Layout,
    file: &serde_json::Value,
) -> Vec<String> {
    let name = &layout.name;
    let mut problems = Vec::new();
    let want_len = file["record_length"].as_u64().unwrap() as usize;
    match &layout.format {
        fwload::schema::Format::Fixed(f) if f.record_length == want_len => {}
        fwload::schema::Format::Fixed(f) => problems.push(format!(
            "{name}: record length {}, the document's is {want_len}",
            f.record_length
        )),
        other => problems.push(format!("{name}: not fixed-width: {other:?}")),
    }
    let doc = doc_fields(file);
    for f in &layout.fields {
        let span = f.span.clone().expect("span");
        let Some(d) = doc.iter().find(|d| d.name == f.name) else {
            problems.push(format!(
                "{name}.{}: not a field of the document (bytes {span:?})",
                f.name
            ));
            continue;
        };
        if span != d.span {
            problems.push(format!(
                "{name}.{}: bytes {span:?}, the document's are {:?}",
                f.name, d.span
            ));
        }
        problems.extend(pacs_type_problem(name, f, d));
    }
    for d in &doc {
        if layout.field_index(&d.name).is_none() {
            problems
                .push(format!("{name}: document field {} missing", d.name));
        }
    }
    problems
}

#[test]
fn pacs_loads_with_dataset() {
    let set = load("pacs");
    let ds = set.dataset.as_ref().expect("dataset.toml");
    assert_eq!(ds.name, "pacs");
    assert_eq!(set.layouts.len(), 19);
    let pos = |n: &str| set.layouts.iter().position(|l| l.name == n).unwrap();
    for r in &ds.references {
        assert!(pos(&r.to) < pos(&r.from), "{} before {}", r.to, r.from);
    }
}

/// Every shipped PACS layout against the layout document: record length,
/// each field's position, width, type and implied places, and every
/// field the document lists (fillers aside).
#[test]
fn pacs_layouts_match_the_layout_document() {
    let set = load("pacs");
    let doc = pacs_document();
    let mut problems = Vec::new();
    let mut checked = Vec::new();
    for file in doc["files"].as_array().unwrap() {
        let member = file["file"]
            .as_str()
            .or(file["short_name"].as_str())
            .expect("a file name");
        let layouts = set.matching(member);
        let [l] = layouts.as_slice() else {
            problems.push(format!("{member}: {} layouts", layouts.len()));
            continue;
        };
        checked.push(l.name.clone());
        problems.extend(pacs_document_problems(l, file));
    }
    for l in &set.layouts {
        if !checked.contains(&l.name) {
            problems.push(format!("{}: no file of the document", l.name));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Field `name` of `layout` decoded from the whole record `rec`.
fn field_of(layout: &Layout, rec: &[u8], name: &str) -> String {
    let i = layout
        .field_index(name)
        .unwrap_or_else(|| panic!("{}: no field {name}", layout.name));
    decode(layout, name, &rec[layout.fields[i].span.clone().unwrap()])
}

fn land_detail(prop_id: &str, seg: &str) -> Vec<u8> {
    pacs_record(
        "APPRAISAL_LAND_DETAIL.TXT",
        &[
            ("prop_id", prop_id),
            ("prop_val_yr", "2025"),
            ("land_seg_id", seg),
            ("land_type_cd", "NATIVEPAST"),
            ("land_type_desc", "NATIVE  PASTURE"),
            ("size_acres", "00000005739000"),
            ("size_square_feet", "00000024999084"),
            ("land_seg_mkt_val", "00000002833677"),
            ("ag_apply", "T"),
            ("ag_value", "00000000105024"),
        ],
    )
}

fn improvement_info(prop_id: &str, imprv_id: &str) -> Vec<u8> {
    pacs_record(
        "APPRAISAL_IMPROVEMENT_INFO.TXT",
        &[
            ("prop_id", prop_id),
            ("prop_val_yr", "2025"),
            ("imprv_id", imprv_id),
            ("imprv_type_cd", "MHOME"),
            ("imprv_type_desc", "MANUFACTURED HOME"),
            ("imprv_state_cd", "M1"),
            ("imprv_val", "0006193.000000"),
        ],
    )
}

/// A property whose owner's mailing address is three lines abroad.
fn appraisal_info(prop_id: &str) -> Vec<u8> {
    pacs_record(
        "APPRAISAL_INFO.TXT",
        &[
            ("prop_id", prop_id),
            ("prop_type_cd", "R"),
            ("prop_val_yr", "02025"),
            ("py_owner_id", "000000054321"),
            ("py_owner_name", "MILLER NORMAN B  & LESLIE B"),
            ("py_addr_line1", "C/O MAPLE LEAF TRUST"),
            ("py_addr_line2", "200 BAY ST"),
            ("py_addr_line3", "SUITE 1400"),
            ("py_addr_city", "TORONTO"),
            ("py_addr_state", "ONTARIO"),
            ("py_addr_country", "CA"),
            ("legal_acreage", "0000000005739000"),
            ("market_value", "00000002833677"),
            ("hs_qualify_yr", "0000"),
        ],
    )
}

#[test]
fn pacs_values_decode() {
    let set = load("pacs");
    let l = layout(&set, "appraisal_land_detail");
    let r = land_detail("000000012345", "000000000001");
    assert_eq!(field_of(l, &r, "prop_id"), "12345");
    assert_eq!(field_of(l, &r, "land_seg_mkt_val"), "2833677");
    assert_eq!(field_of(l, &r, "size_acres"), "573.9000");
    assert_eq!(field_of(l, &r, "size_square_feet"), "24999084");
    assert_eq!(field_of(l, &r, "ag_value"), "105024");
    assert_eq!(field_of(l, &r, "land_type_cd"), "NATIVEPAST");
    assert_eq!(field_of(l, &r, "land_type_desc"), "NATIVE PASTURE");
    let l = layout(&set, "appraisal_improvement_info");
    let r = improvement_info("000000012345", "000000000007");
    assert_eq!(field_of(l, &r, "imprv_type_cd"), "MHOME");
    assert_eq!(field_of(l, &r, "imprv_type_desc"), "MANUFACTURED HOME");
    assert_eq!(field_of(l, &r, "imprv_val"), "6193.000000");
    let l = layout(&set, "appraisal_info");
    let r = appraisal_info("000000012345");
    assert_eq!(field_of(l, &r, "prop_val_yr"), "2025");
    assert_eq!(field_of(l, &r, "py_owner_name"), "MILLER NORMAN B & LESLIE B");
    assert_eq!(field_of(l, &r, "py_addr_line1"), "C/O MAPLE LEAF TRUST");
    assert_eq!(field_of(l, &r, "py_addr_line2"), "200 BAY ST");
    assert_eq!(field_of(l, &r, "py_addr_line3"), "SUITE 1400");
    assert_eq!(field_of(l, &r, "py_addr_city"), "TORONTO");
    assert_eq!(field_of(l, &r, "py_addr_state"), "ONTARIO");
    assert_eq!(field_of(l, &r, "py_addr_zip"), "NULL");
    assert_eq!(field_of(l, &r, "legal_acreage"), "573.9000");
    assert_eq!(field_of(l, &r, "market_value"), "2833677");
    assert_eq!(field_of(l, &r, "hs_qualify_yr"), "NULL");
    assert_eq!(decode(l, "py_addr_zip", b"07840"), "07840");
    let d = layout(&set, "appraisal_improvement_detail");
    assert_eq!(decode(d, "yr_built", b"0000"), "NULL");
    assert_eq!(decode(d, "imprv_det_area", b"00001800.000000"), "1800.000000");
    assert_eq!(
        decode(d, "sketch_cmds", b"R30,U60,L30,D60   "),
        "R30,U60,L30,D60"
    );
    let e = layout(&set, "appraisal_entity_info");
    assert_eq!(decode(e, "hs_amt", b"000000000075000"), "75000");
    assert_eq!(
        decode(e, "freeze_transfer_percentage", b"050000000"),
        "50.000000"
    );
    assert_eq!(
        decode(e, "homestead_group_exemption_factor", b"000010000000000"),
        "1.0000000000"
    );
}

#[test]
fn pacs_records_validate() {
    let tmp = Dir::new();
    let prefix = "2025-07-24_005120_";
    let crlf = |mut r: Vec<u8>| {
        r.extend_from_slice(b"\r\n");
        r
    };
    let mut land = crlf(land_detail("000000012345", "000000000001"));
    land.extend(crlf(land_detail("000000012346", "000000000002")));
    tmp.write(&format!("export/{prefix}APPRAISAL_LAND_DETAIL.TXT"), land);
    let mut info = crlf(appraisal_info("000000012345"));
    info.extend(crlf(appraisal_info("000000012346")));
    tmp.write(&format!("export/{prefix}APPRAISAL_INFO.TXT"), info);
    let imprv = crlf(improvement_info("000000012345", "000000000007"));
    tmp.write(
        &format!("export/{prefix}APPRAISAL_IMPROVEMENT_INFO.TXT"),
        imprv,
    );
    // Two attributes of one segment with the same description and code:
    // their ids keep them apart.
    let attr = |id: &str| {
        crlf(pacs_record(
            "APPRAISAL_IMPROVEMENT_DETAIL_ATTR.TXT",
            &[
                ("prop_id", "000000012345"),
                ("prop_val_yr", "2025"),
                ("imprv_id", "000000000007"),
                ("imprv_det_id", "000000000001"),
                ("imprv_attr_id", id),
                ("imprv_attr_desc", "Plumbing"),
                ("imprv_attr_cd", "2"),
            ],
        ))
    };
    let mut attrs = attr("000000000011");
    attrs.extend(attr("000000000012"));
    let attr_member = format!("{prefix}APPRAISAL_IMPROVEMENT_DETAIL_ATTR.TXT");
    tmp.write(&format!("export/{attr_member}"), attrs);
    // A 2022-length member (2,614-byte records): read with the layout's
    // 2614-byte version, the fields past its end NULL.
    let entity = |len: usize, entity_id: &str| {
        let mut r = pacs_record(
            "APPRAISAL_ENTITY_INFO.TXT",
            &[
                ("prop_id", "000000012345"),
                ("prop_val_yr", "02025"),
                ("entity_id", entity_id),
                ("entity_cd", "CAD"),
                ("entity_name", "BRAZOS  COUNTY"),
                ("assessed_val", "000000000250000"),
                ("taxable_val", "000000000175000"),
                ("hs_amt", "000000000075000"),
                ("market_value", "000000000250000"),
                ("appraised_value", "000000000250000"),
            ],
        );
        r.truncate(len);
        crlf(r)
    };
    let mut ent = entity(2614, "000000000001");
    ent.extend(entity(2614, "000000000002"));
    tmp.write(&format!("export/{prefix}APPRAISAL_ENTITY_INFO.TXT"), ent);
    let totals = validate("pacs", &tmp.join("export"), &tmp);
    assert_eq!(totals["read"], 9, "{totals}");
    assert_eq!(totals["valid"], 9, "{totals}");
    assert_eq!(totals["rejected"], 0, "{totals}");
    // Loaded as the pipeline reads them: every value where the document
    // puts it.
    let set = load("pacs");
    let members: Vec<PathBuf> = std::fs::read_dir(tmp.join("export"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let rows = decoded_rows(&set, &members);
    let value = |layout: &str, key: &str, field: &str| {
        let l = set.layout(layout).unwrap();
        let row = rows[layout].get(key).unwrap_or_else(|| {
            panic!("{layout}: no {key} in {:?}", rows[layout].keys())
        });
        row.split('|').nth(l.field_index(field).unwrap()).unwrap().to_owned()
    };
    let land = "appraisal_land_detail";
    assert_eq!(value(land, "12345|2025|1", "land_seg_mkt_val"), "2833677");
    assert_eq!(value(land, "12345|2025|1", "size_acres"), "573.9000");
    let imp = "appraisal_improvement_info";
    assert_eq!(value(imp, "12345|2025|7", "imprv_type_cd"), "MHOME");
    assert_eq!(
        value(imp, "12345|2025|7", "imprv_type_desc"),
        "MANUFACTURED HOME"
    );
    let info = "appraisal_info";
    assert_eq!(
        value(info, "12345|2025", "py_addr_line1"),
        "C/O MAPLE LEAF TRUST"
    );
    assert_eq!(value(info, "12345|2025", "py_addr_line3"), "SUITE 1400");
    assert_eq!(value(info, "12345|2025", "py_addr_state"), "ONTARIO");
    assert_eq!(rows["appraisal_improvement_detail_attr"].len(), 2);
    let ent = "appraisal_entity_info";
    assert_eq!(value(ent, "12345|2025|1", "hs_amt"), "75000");
    assert_eq!(value(ent, "12345|2025|1", "jeti_amt"), "NULL");
}

// ---------------------------------------------------------------- members

#[test]
fn member_names_match_one_layout() {
    let hcad = load("hcad");
    let pacs = load("pacs");
    let cases: &[(&SchemaSet, &str, Option<&str>)] = &[
        (&hcad, "real_acct.txt", Some("real_acct")),
        (&hcad, "Real/real_acct.txt", Some("real_acct")),
        (&hcad, "REAL_ACCT.TXT", Some("real_acct")),
        (&hcad, "owners.txt", Some("owners")),
        (&hcad, "deeds.txt", Some("deeds")),
        (&hcad, "permits.txt", Some("permits")),
        (&hcad, "parcel_tieback.txt", Some("parcel_tieback")),
        (
            &hcad,
            "Code_description_real/real_neighborhood_code.txt",
            Some("real_neighborhood_code"),
        ),
        (&hcad, "building_res.txt", Some("building_res")),
        (&hcad, "fixtures.txt", Some("fixtures")),
        (&hcad, "extra_features_detail1.txt", Some("extra_features")),
        (&hcad, "extra_features.txt", Some("extra_features_summary")),
        (&hcad, "extra_features_detail2.txt", Some("extra_features_detail2")),
        (&hcad, "building_other.txt", Some("building_other")),
        (&hcad, "t_pp_c.txt", None),
        (&pacs, "APPRAISAL_INFO.TXT", Some("appraisal_info")),
        (
            &pacs,
            "2025-07-24_005120_APPRAISAL_INFO.TXT",
            Some("appraisal_info"),
        ),
        (&pacs, "appraisal_info.txt", Some("appraisal_info")),
        (&pacs, "APPRAISAL_ENTITY_INFO.TXT", Some("appraisal_entity_info")),
        (
            &pacs,
            "2025-07-24_005120_APPRAISAL_ENTITY_INFO.TXT",
            Some("appraisal_entity_info"),
        ),
        (&pacs, "APPRAISAL_ENTITY.TXT", Some("appraisal_entity")),
        (
            &pacs,
            "2025-07-24_005120_APPRAISAL_ENTITY.TXT",
            Some("appraisal_entity"),
        ),
        (
            &pacs,
            "APPRAISAL_IMPROVEMENT_INFO.TXT",
            Some("appraisal_improvement_info"),
        ),
        (
            &pacs,
            "APPRAISAL_IMPROVEMENT_DETAIL.TXT",
            Some("appraisal_improvement_detail"),
        ),
        (
            &pacs,
            "2025-07-24_005120_APPRAISAL_IMPROVEMENT_DETAIL.TXT",
            Some("appraisal_improvement_detail"),
        ),
        (
            &pacs,
            "APPRAISAL_IMPROVEMENT_DETAIL_ATTR.TXT",
            Some("appraisal_improvement_detail_attr"),
        ),
        (
            &pacs,
            "2025-07-24_005120_APPRAISAL_IMPROVEMENT_DETAIL_ATTR.TXT",
            Some("appraisal_improvement_detail_attr"),
        ),
        (
            &pacs,
            "export/2025-07-24_005120_APPRAISAL_LAND_DETAIL.TXT",
            Some("appraisal_land_detail"),
        ),
        (&pacs, "APPRAISAL_HEADER.TXT", Some("appraisal_header")),
        (
            &pacs,
            "2025-07-24_005120_APPRAISAL_AGENT.TXT",
            Some("appraisal_agent"),
        ),
        (&pacs, "APPRAISAL_LAWSUIT.TXT", Some("appraisal_lawsuit")),
        (&pacs, "ARBITRATION_LAWSUIT.TXT", Some("arbitration_lawsuit")),
        (
            &pacs,
            "2025-07-24_005120_ARBITRATION_LAWSUIT.TXT",
            Some("arbitration_lawsuit"),
        ),
        (&pacs, "UDI_7_8.TXT", Some("udi_7_8")),
        (
            &pacs,
            "APPRAISAL_ENTITY_TOTALS.TXT",
            Some("appraisal_entity_totals"),
        ),
        // The document's short member names.
        (&pacs, "PROP.TXT", Some("appraisal_info")),
        (&pacs, "APPR_HDR.TXT", Some("appraisal_header")),
        (&pacs, "PROP_ENT.TXT", Some("appraisal_entity_info")),
        (&pacs, "TOTALS.TXT", Some("appraisal_entity_totals")),
        (&pacs, "Arbitration.TXT", Some("arbitration_lawsuit")),
        (&pacs, "PROPERTY.TXT", None),
        (&pacs, "APPRAISAL_INFO.TXT.bak", None),
    ];
    for (set, member, want) in cases {
        let got: Vec<&str> =
            set.matching(member).iter().map(|l| l.name.as_str()).collect();
        let want: Vec<&str> = want.iter().copied().collect();
        assert_eq!(got, want, "member {member}");
    }
    // Every literal glob names exactly its own layout, and so does its
    // `YYYY-MM-DD_NNNNNN_` prefixed form for PACS (the document's short
    // names are matched bare only).
    for (set, prefixed) in [(&hcad, false), (&pacs, true)] {
        for l in &set.layouts {
            for g in l.members.iter().filter(|g| !g.contains('*')) {
                let mut members = vec![g.clone()];
                if prefixed && l.members.contains(&format!("*_{g}")) {
                    members.push(format!("2025-07-24_005120_{g}"));
                }
                for m in members {
                    let got: Vec<&str> = set
                        .matching(&m)
                        .iter()
                        .map(|l| l.name.as_str())
                        .collect();
                    assert_eq!(got, [l.name.as_str()], "member {m}");
                }
            }
        }
    }
}

// ------------------------------------------------------ dataset checks

/// A schema directory of layouts `names` (each a key `id` and a column
/// `up`) and a dataset whose references are `refs` (from, to; `up` →
/// `id`).
fn referencing(d: &Dir, names: &[&str], refs: &[(&str, &str)]) -> PathBuf {
    for n in names {
        d.write(
            &format!("s/{n}.toml"),
            format!(
                "members = [\"{n}.txt\"]\nformat = \"delimited\"\nkey = [\"id\"]\n\
                 [[field]]\nname = \"id\"\ntype = \"int\"\n\
                 [[field]]\nname = \"up\"\ntype = \"int\"\n"
            ),
        );
    }
    let mut ds = String::from("name = \"cyc\"\n");
    for (from, to) in refs {
        ds.push_str(&format!(
            "\n[[reference]]\nfrom = \"{from}\"\ncolumns = [\"up\"]\nto = \"{to}\"\nto_columns = [\"id\"]\n"
        ));
    }
    d.write("s/dataset.toml", ds);
    d.join("s")
}

#[test]
fn reference_cycle_is_a_schema_error() {
    let d = Dir::new();
    let s = referencing(
        &d,
        &["a", "b", "c"],
        &[("a", "b"), ("b", "c"), ("c", "a")],
    );
    let o = fwload(&["schema", "check", s.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:", s.join("dataset.toml").display())),
        "{err}"
    );
    assert!(err.contains("references form a cycle: a → b → c → a"), "{err}");
    // validate and load read schemas the same way.
    assert!(SchemaSet::load(&[s]).is_err());
}

#[test]
fn self_reference_is_allowed_and_ordered() {
    // A table may reference itself (a parent account in the same table);
    // the layout referencing it still loads after it, whatever the names.
    let d = Dir::new();
    let s = referencing(&d, &["z", "b"], &[("z", "z"), ("b", "z")]);
    let o = fwload(&["schema", "check", s.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let set = SchemaSet::load(&[s]).unwrap();
    let order: Vec<&str> =
        set.layouts.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(order, ["z", "b"]);
}

#[test]
fn unknown_setting_value_names_file_line_and_value() {
    let d = Dir::new();
    let s = referencing(&d, &["a", "b"], &[("a", "b")]);
    let ds = s.join("dataset.toml");
    let text = std::fs::read_to_string(&ds).unwrap();
    // The dataset's line 8, after name, a blank line and 5 lines of the
    // reference.
    d.write("s/dataset.toml", format!("{text}on_orphan = \"ignore\"\n"));
    let o = fwload(&["schema", "check", s.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let want = format!(
        "{}:8: unknown variant `ignore`, expected one of `keep`, `reject`, `fail`",
        ds.display()
    );
    assert!(err.contains(&want), "{err}");
}
