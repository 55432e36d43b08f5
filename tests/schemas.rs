//! Shipped schemas: they load, their columns and offsets are the published
//! ones, member globs are unambiguous, and realistic records validate.

use std::path::{Path, PathBuf};

use fwload::schema::{Layout, SchemaSet};

use crate::util::{Dir, fwload, stderr, stdout};

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

/// Verified offsets: layout, record length, (field, start, exclusive end).
#[allow(clippy::type_complexity)]
const PACS_OFFSETS: &[(&str, usize, &[(&str, usize, usize)])] = &[
    (
        "appraisal_land_detail",
        199,
        &[
            ("prop_id", 0, 12),
            ("tax_year", 12, 16),
            ("land_seq", 16, 28),
            ("land_use_code", 28, 32),
            ("land_use_description", 38, 63),
            ("land_value", 140, 154),
            ("acreage", 178, 184),
        ],
    ),
    (
        "appraisal_improvement_info",
        114,
        &[
            ("prop_id", 0, 12),
            ("tax_year", 12, 16),
            ("imp_id", 16, 28),
            ("improvement_type", 28, 31),
            ("improvement_description", 38, 49),
        ],
    ),
    (
        "appraisal_improvement_detail",
        622,
        &[
            ("prop_id", 0, 12),
            ("tax_year", 12, 16),
            ("imp_id", 16, 28),
            ("detail_seq", 28, 40),
            ("detail_description", 50, 75),
            ("year_built", 85, 89),
            ("detail_quantity", 93, 108),
            ("detail_value", 108, 122),
            ("detail_unit", 122, 622),
        ],
    ),
    (
        "appraisal_improvement_detail_attr",
        87,
        &[
            ("prop_id", 0, 12),
            ("tax_year", 12, 16),
            ("imp_id", 16, 28),
            ("detail_seq", 28, 40),
            ("attribute_type", 52, 77),
            ("attribute_value", 77, 87),
        ],
    ),
    ("appraisal_entity", 17, &[("entity_id", 0, 12), ("entity_code", 12, 17)]),
    (
        "appraisal_entity_info",
        2750,
        &[
            ("prop_id", 0, 12),
            ("tax_year", 12, 17),
            ("entity_id", 41, 53),
            ("tax_unit_code", 53, 63),
            ("tax_unit_name", 63, 113),
            ("assessed_value", 148, 163),
            ("taxable_value", 163, 178),
            ("hs_amt", 298, 313),
            ("ov65_amt", 313, 328),
            ("dp_amt", 328, 343),
            ("market_value", 388, 403),
            ("appraised_value", 403, 418),
        ],
    ),
    (
        "appraisal_info",
        9247,
        &[
            ("prop_id", 0, 12),
            ("tax_year", 17, 22),
            ("owner_name", 608, 678),
            ("mailing_address", 753, 873),
            ("mailing_city", 873, 923),
            ("mailing_state", 923, 925),
            ("mailing_zip5", 978, 983),
            ("mailing_zip4", 983, 987),
        ],
    ),
];

#[test]
fn pacs_loads_with_dataset() {
    let set = load("pacs");
    let ds = set.dataset.as_ref().expect("dataset.toml");
    assert_eq!(ds.name, "pacs");
    assert_eq!(set.layouts.len(), PACS_OFFSETS.len());
    let pos = |n: &str| set.layouts.iter().position(|l| l.name == n).unwrap();
    for r in &ds.references {
        assert!(pos(&r.to) < pos(&r.from), "{} before {}", r.to, r.from);
    }
}

#[test]
fn pacs_offsets_are_the_verified_ones() {
    let set = load("pacs");
    for (name, length, fields) in PACS_OFFSETS {
        let l = layout(&set, name);
        let fixed = match &l.format {
            fwload::schema::Format::Fixed(f) => f,
            other => panic!("{name}: not fixed-width: {other:?}"),
        };
        assert_eq!(fixed.record_length, *length, "{name}: record length");
        let got: Vec<(&str, usize, usize)> = l
            .fields
            .iter()
            .map(|f| {
                let s = f.span.clone().expect("span");
                (f.name.as_str(), s.start, s.end)
            })
            .collect();
        assert_eq!(&got, fields, "{name}: fields and byte ranges");
    }
}

/// A fixed-width record of `len` spaces with `values` placed at their
/// start offsets.
fn fixed(len: usize, values: &[(usize, &str)]) -> Vec<u8> {
    let mut r = vec![b' '; len];
    for (start, v) in values {
        r[*start..*start + v.len()].copy_from_slice(v.as_bytes());
    }
    r
}

fn land_detail(prop_id: &str, seq: &str) -> Vec<u8> {
    fixed(
        199,
        &[
            (0, prop_id),
            (12, "2025"),
            (16, seq),
            (28, "A1"),
            (38, "RESIDENTIAL  HOMESITE"),
            (140, "00000002833677"),
            (178, "105024"),
        ],
    )
}

#[test]
fn pacs_values_decode() {
    let set = load("pacs");
    let l = layout(&set, "appraisal_land_detail");
    let r = land_detail("000000012345", "000000000001");
    let field = |name: &str| {
        let i = l.field_index(name).unwrap();
        decode(l, name, &r[l.fields[i].span.clone().unwrap()])
    };
    assert_eq!(field("prop_id"), "12345");
    assert_eq!(field("land_value"), "28336.77");
    assert_eq!(field("acreage"), "10.5024");
    assert_eq!(field("land_use_description"), "RESIDENTIAL HOMESITE");
    let d = layout(&set, "appraisal_improvement_detail");
    assert_eq!(decode(d, "year_built", b"0000"), "NULL");
    assert_eq!(
        decode(d, "detail_quantity", b"00001800.000000"),
        "1800.000000"
    );
    let e = layout(&set, "appraisal_entity_info");
    assert_eq!(decode(e, "hs_amt", b"000000000075000"), "75000");
    let i = layout(&set, "appraisal_info");
    assert_eq!(
        decode(i, "owner_name", b"MILLER NORMAN B  & LESLIE B   "),
        "MILLER NORMAN B & LESLIE B"
    );
    assert_eq!(decode(i, "mailing_zip5", b"07840"), "07840");
}

#[test]
fn pacs_records_validate() {
    let tmp = Dir::new();
    let prefix = "2025-07-24_005120_";
    let mut land = land_detail("000000012345", "000000000001");
    land.extend_from_slice(b"\r\n");
    land.extend(land_detail("000000012346", "000000000002"));
    land.extend_from_slice(b"\r\n");
    tmp.write(&format!("export/{prefix}APPRAISAL_LAND_DETAIL.TXT"), land);
    let mut info = fixed(
        9247,
        &[
            (0, "000000012345"),
            (12, "R"),
            (17, "2025"),
            (608, "MILLER NORMAN B  & LESLIE B"),
            (753, "1200 UNIVERSITY DR E"),
            (873, "COLLEGE STATION"),
            (923, "TX"),
            (978, "77840"),
            (983, "1234"),
        ],
    );
    info.extend_from_slice(b"\r\n");
    tmp.write(&format!("export/{prefix}APPRAISAL_INFO.TXT"), info);
    // A 2022-length record (2,614 bytes) next to a 2025 one: both read.
    let entity = |len: usize, entity_id: &str| {
        let mut r = fixed(
            len,
            &[
                (0, "000000012345"),
                (12, "2025"),
                (41, entity_id),
                (53, "CAD"),
                (63, "BRAZOS  COUNTY"),
                (148, "000000000250000"),
                (163, "000000000175000"),
                (298, "000000000075000"),
                (388, "000000000250000"),
                (403, "000000000250000"),
            ],
        );
        r.extend_from_slice(b"\r\n");
        r
    };
    let mut ent = entity(2614, "000000000001");
    ent.extend(entity(2750, "000000000002"));
    tmp.write(&format!("export/{prefix}APPRAISAL_ENTITY_INFO.TXT"), ent);
    let totals = validate("pacs", &tmp.join("export"), &tmp);
    assert_eq!(totals["read"], 5, "{totals}");
    assert_eq!(totals["valid"], 5, "{totals}");
    assert_eq!(totals["rejected"], 0, "{totals}");
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
        (&pacs, "APPRAISAL_HEADER.TXT", None),
        (&pacs, "2025-07-24_005120_APPRAISAL_AGENT.TXT", None),
        (&pacs, "APPRAISAL_INFO.TXT.bak", None),
    ];
    for (set, member, want) in cases {
        let got: Vec<&str> =
            set.matching(member).iter().map(|l| l.name.as_str()).collect();
        let want: Vec<&str> = want.iter().copied().collect();
        assert_eq!(got, want, "member {member}");
    }
    // Every literal glob names exactly its own layout, and so does its
    // `YYYY-MM-DD_NNNNNN_` prefixed form for PACS.
    for (set, prefixed) in [(&hcad, false), (&pacs, true)] {
        for l in &set.layouts {
            for g in l.members.iter().filter(|g| !g.contains('*')) {
                let mut members = vec![g.clone()];
                if prefixed {
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
