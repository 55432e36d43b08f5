//! Undo of any run (issue 23): `fwload rollback --run ID` restores every
//! table exactly as it was before the run, refuses while a later run
//! changed the same tables, and a rollback killed midway leaves either
//! state, never a mix.

use std::time::Duration;

use crate::pg::TestDb;
use crate::reliability::{Target, finish, outcome};
use crate::util::{Dir, fwload, repo, run_gen};

/// `fwload rollback --run …` of `runs` on `t`'s metadata.
fn rollback(t: &Target, runs: &[i64]) -> (i32, String) {
    let mut a: Vec<String> = vec![
        "rollback".into(),
        "--database-url".into(),
        t.url.clone(),
        "--meta-schema".into(),
        t.meta.clone(),
    ];
    for r in runs {
        a.push("--run".into());
        a.push(r.to_string());
    }
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    outcome(&fwload(&refs))
}

fn newest_run(t: &Target) -> i64 {
    t.one(&format!(
        "SELECT max(id) FROM {}.runs WHERE mode <> 'rollback'",
        t.meta
    ))
}

/// An HCAD archive of `rows` accounts, `base.zip` in `d`.
fn base(d: &Dir, rows: usize, seed: u64) -> String {
    let base = d.join("base.zip").display().to_string();
    run_gen(&[
        "--schema",
        &repo("schemas/hcad"),
        "--rows",
        &rows.to_string(),
        "--seed",
        &seed.to_string(),
        "--out",
        &base,
    ]);
    base
}

/// Three change sets of `base`, each of the one before, in `d`.
fn change_sets(d: &Dir, base: &str) -> Vec<String> {
    let schema = repo("schemas/hcad");
    let mut prev = base.to_owned();
    (1..=3)
        .map(|i| {
            let next = d.join(&format!("next{i}.zip")).display().to_string();
            run_gen(&[
                "--schema",
                &schema,
                "--base",
                &prev,
                "--update",
                "5%",
                "--insert",
                "3%",
                "--delete",
                "2%",
                "--seed",
                &i.to_string(),
                "--out",
                &next,
            ]);
            prev = next.clone();
            next
        })
        .collect()
}

#[test]
fn rollback_of_each_change_set_restores_every_table_exactly() {
    let d = Dir::new();
    let db = TestDb::new();
    let t = Target::of(&db);
    let base = base(&d, 1500, 23);
    let sets = change_sets(&d, &base);
    let (code, out) = t.load(&["--create", &base]);
    assert_eq!(code, 0, "{out}");
    let mut afters = Vec::new();
    for (i, next) in sets.iter().enumerate() {
        let before = t.state();
        // Snapshot deletes in two, a plain merge in one.
        let delete = ["hard", "none", "hard"][i];
        let (code, out) =
            t.load(&["--delete", delete, "--max-delete-ratio", "0.5", next]);
        assert_eq!(code, 0, "{out}");
        let after = t.state();
        assert_ne!(after, before, "change set {i} changed nothing");
        let run = newest_run(&t);
        let (code, out) = rollback(&t, &[run]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains(&format!("as before run {run}")), "{out}");
        assert_eq!(t.state(), before, "rollback of change set {i}");
        // Undone once only.
        let (code, out) = rollback(&t, &[run]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("already rolled back"), "{out}");
        // Load it again (the rollback invalidated the unchanged skip) and
        // go on from there.
        let (code, out) =
            t.load(&["--delete", delete, "--max-delete-ratio", "0.5", next]);
        assert_eq!(code, 0, "{out}");
        assert!(!out.contains("nothing to load"), "{out}");
        assert_eq!(t.state(), after, "reload of change set {i}");
        afters.push(after);
    }
    // An older run while a newer one changed the same tables: refused,
    // naming it; together, both are undone.
    let newest = newest_run(&t);
    let older = t.one::<i64>(&format!(
        "SELECT max(id) FROM {}.runs WHERE mode <> 'rollback' AND id < {newest} AND undone_by IS NULL",
        t.meta
    ));
    let sums = t.state();
    let (code, out) = rollback(&t, &[older]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!(
            "later runs changed the same tables: run {newest}"
        )),
        "{out}"
    );
    assert_eq!(t.state(), sums);
    let (code, out) = rollback(&t, &[older, newest]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(t.state(), afters[0], "two runs rolled back together");
}

#[test]
fn the_first_load_rolls_back_to_no_tables_and_undo_is_pruned() {
    let d = Dir::new();
    let db = TestDb::new();
    let t = Target::of(&db);
    let base = base(&d, 300, 5);
    let sets = change_sets(&d, &base);
    let soft = ["--delete", "soft", "--max-delete-ratio", "0.5"];
    let (code, out) =
        t.load(&[&["--create"][..], &soft[..], &[&base]].concat());
    assert_eq!(code, 0, "{out}");
    let first = newest_run(&t);
    let (code, out) = rollback(&t, &[first]);
    assert_eq!(code, 0, "{out}");
    assert!(t.state().is_empty(), "{:?}", t.state());
    // --keep-undo 1: each load prunes the undo of the one before.
    let keep1 = ["--keep-undo", "1"];
    assert_eq!(
        t.load(&[&["--create"][..], &soft, &keep1, &[&base]].concat()).0,
        0
    );
    let a = newest_run(&t);
    let before = t.state();
    assert_eq!(t.load(&[&soft[..], &keep1, &[&sets[0]]].concat()).0, 0);
    let b = newest_run(&t);
    let soft_deleted: i64 = t.one(&format!(
        "SELECT count(*) FROM {}.real_acct WHERE deleted_at IS NOT NULL",
        t.schema
    ));
    assert!(soft_deleted > 0);
    let undo: String =
        t.one(&format!("SELECT undo FROM {}.runs WHERE id = {a}", t.meta));
    assert_eq!(undo, "pruned");
    let (code, out) = rollback(&t, &[a, b]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("the undo of run {a} was pruned")), "{out}");
    // Soft deletes and revivals undone.
    let (code, out) = rollback(&t, &[b]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(t.state(), before);
    // --keep-undo 0 records none.
    assert_eq!(t.load(&["--keep-undo", "0", &sets[1]]).0, 0);
    let c = newest_run(&t);
    let (code, out) = rollback(&t, &[c]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("recorded no undo"), "{out}");
}

#[test]
fn a_rollback_killed_midway_leaves_the_tables_as_they_were() {
    let d = Dir::new();
    let db = TestDb::new();
    let t = Target::of(&db);
    let base = base(&d, 800, 9);
    let sets = change_sets(&d, &base);
    assert_eq!(t.load(&["--create", &base]).0, 0);
    let before = t.state();
    assert_eq!(t.load(&["--delete", "hard", &sets[0]]).0, 0);
    let after = t.state();
    let run = newest_run(&t);
    // Hold a lock on the first table the rollback restores (the last the
    // load changed), so the rollback stops inside its transaction with
    // every table after it restored; then kill it.
    let last: String = t.one(&format!(
        "SELECT table_name FROM {}.undo_tables WHERE run_id = {run} ORDER BY seq DESC LIMIT 1",
        t.meta
    ));
    let mut blocker = t.client();
    let mut hold = blocker.transaction().unwrap();
    hold.batch_execute(&format!("LOCK TABLE {last} IN ACCESS EXCLUSIVE MODE"))
        .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_fwload"))
        .args([
            "rollback",
            "--database-url",
            &t.url,
            "--meta-schema",
            &t.meta,
            "--run",
            &run.to_string(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until its statement waits on the lock.
    let mut c = t.client();
    let t0 = std::time::Instant::now();
    loop {
        let waiting: i64 = c
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the rollback never waited"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let (code, _) = finish(child);
    assert_ne!(code, 0);
    hold.rollback().unwrap();
    // The server ends the dead session's transaction: nothing of it stays.
    let t0 = std::time::Instant::now();
    while t.one::<i64>(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE '%undo_rows%' AND pid <> pg_backend_pid()",
    ) > 0
    {
        assert!(t0.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(t.state(), after, "a killed rollback left a mix");
    let undone: Option<i64> = t.one(&format!(
        "SELECT undone_by FROM {}.runs WHERE id = {run}",
        t.meta
    ));
    assert_eq!(undone, None);
    // Rolled back again, in full.
    let (code, out) = rollback(&t, &[run]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(t.state(), before);
}
