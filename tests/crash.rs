//! The crash test: fwload killed with SIGKILL, and the server crashed
//! with `pg_ctl restart -m immediate`, at random moments of change-set
//! loads into a throwaway cluster. After each, every target must equal
//! exactly its state before or after the load (checksums of ordered
//! rows), and a plain rerun or a `--resume` (alternately) must reach the
//! after state. Loads alternate direction (the change set, then the
//! original snapshot with `--delete hard` back again), so each step starts
//! from the last one's end.
//!
//! The same for the loads that build on time, against a reference that
//! makes each load cleanly: history loads into a dataset kept by year,
//! and the replace of one year's partitions.
//!
//! Seeded: `FWLOAD_CRASH_SEED` replays a run (the seed is printed, and
//! named in every failure). `FWLOAD_CRASH_KILLS`,
//! `FWLOAD_CRASH_SERVER_CRASHES` and `FWLOAD_CRASH_ROWS` (accounts) size
//! it; the defaults keep the suite quick.

use std::time::Instant;

use crate::pg::Cluster;
use crate::reliability::{Target, finish_within, path};
use crate::util::{Dir, hcad_by_year, hcad_change_set, repo};

/// splitmix64: a small, fixed generator, so a seed replays on any
/// platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?}")))
        .unwrap_or(default)
}

/// The run's seed: `FWLOAD_CRASH_SEED`, else the time.
fn seed() -> u64 {
    knob(
        "FWLOAD_CRASH_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
}

/// Starts a load with `args`, and after `delay` kills it (`server`:
/// crashes the server instead); returns whether it was still running,
/// and its exit code and output.
fn strike(
    t: &Target,
    cluster: &Cluster,
    args: &[&str],
    delay: std::time::Duration,
    server: bool,
) -> (bool, i32, String) {
    let mut child = t.spawn(args);
    std::thread::sleep(delay);
    let running = child.try_wait().unwrap().is_none();
    if server {
        cluster.crash_restart();
    } else {
        let _ = child.kill();
    }
    let (code, out) = finish_within(child, 180);
    (running, code, out)
}

/// Which state `now` is: (1, 0) the before state, (0, 1) the after
/// state; anything else fails with `ctx`.
fn side<T: PartialEq>(
    now: &T,
    (before, after): (&T, &T),
    ctx: &str,
) -> (u32, u32) {
    if now == before {
        (1, 0)
    } else if now == after {
        (0, 1)
    } else {
        panic!(
            "the targets are in neither the before nor the after state; {ctx}"
        )
    }
}

/// A change-set load's arguments: hard deletes under a guard loose
/// enough for the way back.
fn run<'a>(extra: &[&'a str], input: &'a str) -> Vec<&'a str> {
    let mut a = vec!["--delete", "hard", "--max-delete-ratio", "0.5"];
    a.extend_from_slice(extra);
    a.push(input);
    a
}

#[test]
fn crash_test_targets_end_before_or_after() {
    let seed = seed();
    let kills = knob("FWLOAD_CRASH_KILLS", 6);
    let crashes = knob("FWLOAD_CRASH_SERVER_CRASHES", 2);
    let rows = knob("FWLOAD_CRASH_ROWS", 3000);
    eprintln!("crash test: seed {seed} (FWLOAD_CRASH_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    let d = Dir::new();
    let (base, next) = hcad_change_set(&d, rows as usize, seed);
    let cluster = Cluster::start("", None, &[]);
    let t = Target {
        url: cluster.url("postgres"),
        schema: "crash".into(),
        meta: "crash_meta".into(),
        dataset: repo("schemas/hcad"),
    };
    let (code, out) = t.load(&run(&["--create"], path(&base)));
    assert_eq!(code, 0, "seed {seed}: {out}");
    let at_base = t.state();
    let t0 = Instant::now();
    let (code, out) = t.load(&run(&[], path(&next)));
    assert_eq!(code, 0, "seed {seed}: {out}");
    let span = t0.elapsed();
    let at_next = t.state();
    assert_ne!(
        at_base, at_next,
        "seed {seed}: the change set changed nothing"
    );

    // (input, the state loading it ends in), the current one first.
    let mut sides = [(path(&next), at_next), (path(&base), at_base)];
    let (mut kills_left, mut crashes_left) = (kills, crashes);
    let (mut mid_run, mut ended_before, mut ended_after) = (0, 0, 0);
    let mut step = 0u64;
    while kills_left + crashes_left > 0 {
        let server = rng.next() % (kills_left + crashes_left) < crashes_left;
        if server {
            crashes_left -= 1;
        } else {
            kills_left -= 1;
        }
        sides.swap(0, 1);
        let (input, want) = (sides[0].0, sides[0].1.clone());
        let before = sides[1].1.clone();
        let delay = span.mul_f64(rng.unit() * 1.2);
        let what = if server { "server crash" } else { "kill -9" };
        let (running, code, out) =
            strike(&t, &cluster, &run(&[], input), delay, server);
        if running {
            mid_run += 1;
        }
        let now = t.state();
        let ctx = format!(
            "seed {seed}, step {step} ({what} after {delay:?}, load exit {code}): {out}"
        );
        let (b, a) = side(&now, (&before, &want), &ctx);
        (ended_before, ended_after) = (ended_before + b, ended_after + a);
        let resume: &[&str] = if step % 2 == 1 { &["--resume"] } else { &[] };
        let (code, out) = t.load(&run(resume, input));
        assert_eq!(
            code,
            0,
            "rerun (resume {}) failed: {out}; {ctx}",
            step % 2
        );
        assert!(
            t.state() == want,
            "rerun (resume {}) did not reach the after state: {out}; {ctx}",
            step % 2
        );
        step += 1;
    }
    eprintln!(
        "crash test: seed {seed}, {rows} accounts, a clean load {span:?}: {kills} kills and {crashes} server crashes, {mid_run} of them while fwload ran; the targets were left in the before state {ended_before} times, in the after state {ended_after} times, never in between; every rerun (plain and --resume) reached the after state"
    );
    let alive: i64 = t.one(&format!(
        "SELECT count(*) FROM {}.runs WHERE status = 'running'",
        t.meta
    ));
    assert_eq!(alive, 0, "seed {seed}: runs left looking alive");
}

/// Kills and server crashes in history loads into a dataset kept by
/// year (the change set and the snapshot back, each at a later
/// `--as-of`) and in replaces of one year's partitions, alternately.
/// Each step is first made cleanly on a reference schema: after the
/// crash every target equals the reference's before or after that step,
/// and a rerun or a `--resume` (alternately) reaches the after state.
#[test]
fn crash_test_history_and_year_replace() {
    let seed = seed();
    let steps = knob("FWLOAD_CRASH_TIME_STEPS", 6);
    let rows = knob("FWLOAD_CRASH_ROWS", 2000);
    eprintln!(
        "time crash test: seed {seed} (FWLOAD_CRASH_SEED={seed} replays it)"
    );
    let mut rng = Rng(seed);
    let d = Dir::new();
    let (base, next) = hcad_change_set(&d, rows as usize, seed);
    let by_year = hcad_by_year(&d, "by-year");
    let cluster = Cluster::start("", None, &[]);
    let mk = |s: &str| Target {
        url: cluster.url("postgres"),
        schema: s.into(),
        meta: format!("{s}_meta"),
        dataset: by_year.clone(),
    };
    // (crashed, reference) for history, then for replace.
    let pairs = [(mk("hist"), mk("hist_ref")), (mk("repl"), mk("repl_ref"))];
    let first: [Vec<&str>; 2] = [
        vec!["--mode", "history", "--as-of", "2024-01-01", "--year", "2024"],
        vec!["--mode", "replace", "--year", "2023"],
    ];
    for ((t, r), args) in pairs.iter().zip(&first) {
        for x in [t, r] {
            let mut a = vec!["--create"];
            a.extend_from_slice(args);
            a.push(path(&base));
            let (code, out) = x.load(&a);
            assert_eq!(code, 0, "seed {seed}: {out}");
        }
    }
    let inputs = [path(&next), path(&base)];
    let (mut mid_run, mut ended_before, mut ended_after) = (0, 0, 0);
    for step in 0..steps {
        let (t, r) = &pairs[(step % 2) as usize];
        let input = inputs[((step / 2) % 2) as usize];
        let as_of = format!("2024-02-{:02}", step + 1);
        let mut args: Vec<&str> = if step % 2 == 0 {
            vec!["--mode", "history", "--as-of", &as_of, "--year", "2024"]
        } else {
            vec!["--mode", "replace", "--year", "2023"]
        };
        if step % 2 == 0 {
            args.extend(["--delete", "hard"]);
        }
        args.extend(["--max-delete-ratio", "0.5", input]);
        let before = r.state();
        assert_eq!(t.state(), before, "seed {seed}, step {step}: out of step");
        let t0 = Instant::now();
        let (code, out) = r.load(&args);
        assert_eq!(code, 0, "seed {seed}, step {step}, reference: {out}");
        let span = t0.elapsed();
        let want = r.state();
        assert_ne!(want, before, "seed {seed}, step {step}: nothing changed");

        let server = rng.next().is_multiple_of(3);
        let delay = span.mul_f64(rng.unit() * 1.2);
        let what = if server { "server crash" } else { "kill -9" };
        let (running, code, out) = strike(t, &cluster, &args, delay, server);
        mid_run += u32::from(running);
        let now = t.state();
        let ctx = format!(
            "seed {seed}, step {step} ({} {what} after {delay:?}, load exit {code}): {out}",
            args[1]
        );
        let (b, a) = side(&now, (&before, &want), &ctx);
        (ended_before, ended_after) = (ended_before + b, ended_after + a);
        let mut again = args.clone();
        if step % 4 >= 2 {
            again.insert(0, "--resume");
        }
        let (code, out) = t.load(&again);
        assert_eq!(code, 0, "rerun {again:?} failed: {out}; {ctx}");
        assert!(
            t.state() == want,
            "rerun {again:?} did not reach the after state: {out}; {ctx}"
        );
    }
    eprintln!(
        "time crash test: seed {seed}, {rows} accounts, {steps} steps, {mid_run} crashes while fwload ran; before state {ended_before} times, after state {ended_after} times, never in between; every rerun reached the after state"
    );
}
