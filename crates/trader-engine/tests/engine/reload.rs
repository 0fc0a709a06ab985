//! Live ensemble updates in process: an engine over the demo ensemble's real
//! member files (copied to a temporary directory that the test rewrites as
//! a search would), a real SQLite store, the simulator's paper broker and a
//! manual clock. Hours are handed over one by one, and
//! `Engine::between_hours` is called between them, as the live loop does;
//! `Engine::wait_for_load` makes a load's end a step of the test instead of
//! a race. The budget's check is trader-budget's own arithmetic over a host
//! whose envelope the test sets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use crate::common::{H, repo};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::DateTime;
use tokio::sync::Notify;
use trader_budget::{Envelope, HostBudget, Limit, Verdict, swap_report, swap_transient};
use trader_config::{Profile, ReloadMode, ReloadSettings};
use trader_core::{Bar, ComputeDevice, ManualClock, Symbol};
use trader_engine::{Engine, Reloader, SwapCheck, load_options};
use trader_ensemble::{MemberSummary, load_consistent};
use trader_sim::PaperBroker;
use trader_store::{Recorder, RunMode, Store};

/// 2018-03-05T00:00Z: four days into the slice.
const FROM: i64 = 1_520_208_000;
/// Enough for the first selection (its longest need is 65 h), not for
/// trial_0015 (12 + 60 - 1 = 71 h).
const HISTORY: u32 = 66;
const TOP_N: u32 = 3;

/// The budget of a swap on a host of `ram` bytes (all of it allowed, no
/// co-tenants).
struct HostOf {
    profile: Profile,
    ram: u64,
}

impl HostOf {
    fn host(&self) -> HostBudget {
        HostBudget {
            envelope: Envelope {
                ram: Limit {
                    machine_total: self.ram,
                    source: "the test".to_owned(),
                    allowed_percent: 100.0,
                },
                vram: None,
                vram_unknown_reason: Some("no GPU in this test".to_owned()),
            },
            tenants: Vec::new(),
            warnings: Vec::new(),
            alerts: None,
        }
    }

    /// RAM the swap to `members` needs with `in_use` bytes of weights
    /// resident.
    fn need(&self, members: &[MemberSummary], in_use: u64) -> u64 {
        swap_report(
            &self.profile,
            members,
            members.len(),
            swap_transient(in_use, members, self.profile.dtype, ComputeDevice::Cpu),
            &self.host(),
        )
        .unwrap()
        .ram
        .total
    }
}

impl SwapCheck for HostOf {
    fn admit(&self, members: &[MemberSummary], n: usize, in_use: u64) -> Result<(), String> {
        let report = swap_report(
            &self.profile,
            members,
            n,
            swap_transient(in_use, members, self.profile.dtype, ComputeDevice::Cpu),
            &self.host(),
        )
        .map_err(|e| e.to_string())?;
        if report.verdict == Verdict::Fits {
            Ok(())
        } else {
            Err(report.reasons.join("; "))
        }
    }

    fn rss_bytes(&self) -> Option<u64> {
        Some(trader_budget::own_memory().rss)
    }
}

/// A copy of models/demo whose ranking the test writes.
struct World {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    db: PathBuf,
    profile: Profile,
    clock: Arc<ManualClock>,
    broker: Arc<PaperBroker>,
    hours: BTreeMap<i64, BTreeMap<Symbol, Bar>>,
}

fn copy_dir(from: &Path, to: &Path) {
    fs_err::create_dir_all(to).unwrap();
    for entry in fs_err::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs_err::copy(entry.path(), target).unwrap();
        }
    }
}

/// Writes `dir/ensemble_params.json` as the trainer does: a temporary file
/// renamed over the old one.
fn write_ranking(dir: &Path, members: &[(&str, f64)]) {
    let members: Vec<_> = members
        .iter()
        .map(|(dir, score)| serde_json::json!({"dir": dir, "score": score}))
        .collect();
    let text =
        serde_json::json!({"format": 1, "top_n": TOP_N, "aggregate": "mean", "members": members});
    let tmp = dir.join(".ensemble_params.json.tmp");
    fs_err::write(&tmp, text.to_string()).unwrap();
    fs_err::rename(tmp, dir.join("ensemble_params.json")).unwrap();
}

impl World {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("ensemble");
        copy_dir(&repo().join("models/demo"), &dir);
        let mut profile = Profile::load("lean", &repo().join("configs")).unwrap();
        profile.ensemble_dir.clone_from(&dir);
        profile.top_n = TOP_N;
        profile.history_hours = HISTORY;
        let bars = common::recorded("tests/fixtures/slice", |_| true);
        let mut hours: BTreeMap<i64, BTreeMap<Symbol, Bar>> = BTreeMap::new();
        for (symbol, list) in &bars {
            for bar in list {
                hours.entry(bar.t).or_default().insert(symbol.clone(), *bar);
            }
        }
        let clock = Arc::new(ManualClock::new(
            DateTime::from_timestamp(FROM + H + 1, 0).unwrap(),
        ));
        let broker = Arc::new(PaperBroker::new(bars, 100_000.0, clock.clone()));
        let w = World {
            db: tmp.path().join("lean.sqlite"),
            _tmp: tmp,
            dir,
            profile,
            clock,
            broker,
            hours,
        };
        w.rank(&[
            ("trial_0014", 0.52),
            ("trial_0006", -0.17),
            ("trial_0013", -0.70),
        ]);
        w
    }

    fn rank(&self, members: &[(&str, f64)]) {
        write_ranking(&self.dir, members);
    }

    fn host(&self, ram: u64) -> HostOf {
        HostOf {
            profile: self.profile.clone(),
            ram,
        }
    }

    /// An engine of run `run_id` (a live run, resumed when it exists) on
    /// the directory as it is now, following it with `check`; `now` is the
    /// adoption time of its first ensemble.
    async fn engine(
        &self,
        check: HostOf,
        min_hours: u32,
        now: i64,
    ) -> Engine<Arc<PaperBroker>, Store> {
        let store = Store::open(&crate::common::store_at(&self.db).await, Some(HISTORY))
            .await
            .unwrap();
        let run = store
            .start_run("lean", "h", "{}", RunMode::Live, now)
            .await
            .unwrap();
        let (ensemble, stamp) = load_consistent(&self.dir, load_options(&self.profile)).unwrap();
        let mut engine =
            common::lean_engine(self.broker.clone(), store, ensemble, HISTORY, run.run_id).await;
        engine.record_start_version(now, 0, None).await.unwrap();
        let reloader = Reloader::new(
            self.dir.clone(),
            (
                load_options(&self.profile),
                ReloadSettings {
                    mode: ReloadMode::OnChange,
                    min_hours_between_swaps: min_hours,
                    min_score_gain: None,
                },
            ),
            Arc::new(check),
            (stamp, now),
            Arc::new(Notify::new()),
        )
        .unwrap();
        engine.follow(reloader);
        engine
    }

    /// Hands hour `t` (and, for the first, the history before it) to the
    /// engine at its close + 1 s, then calls `between_hours`.
    async fn hour(&self, engine: &mut Engine<Arc<PaperBroker>, Store>, t: i64) {
        let now = t + H + 1;
        self.clock.set(DateTime::from_timestamp(now, 0).unwrap());
        if engine.newest_common_bar().is_none() {
            for (_, bars) in self.hours.range(t - i64::from(HISTORY) * H..t) {
                engine.add_history(bars, now).await.unwrap();
            }
        }
        engine.on_hour(t, &self.hours[&t], true, now).await.unwrap();
        engine.between_hours(now).await.unwrap();
    }

    /// Every decided hour of run `run_id` with the version it used.
    async fn decisions(&self, run_id: i64) -> Vec<(i64, Option<String>, bool)> {
        let store = Store::open(&crate::common::store_at(&self.db).await, Some(HISTORY))
            .await
            .unwrap();
        store
            .decisions_of_run(run_id)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.bar_t, d.ensemble_version, d.skipped_reason.is_none()))
            .collect()
    }
}

/// Looks at the directory, lets the load end, and takes its result.
async fn settle_load(engine: &mut Engine<Arc<PaperBroker>, Store>, now: i64) {
    engine.between_hours(now).await.unwrap();
    engine.wait_for_load().await;
}

const ROOMY: u64 = 64_000_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_selection_is_adopted_between_hours_and_each_decision_names_its_version() {
    let w = World::new();
    let mut engine = w.engine(w.host(ROOMY), 0, FROM + H).await;
    let first = engine.stats().ensemble_version.clone();
    for i in 0..3 {
        w.hour(&mut engine, FROM + i * H).await;
    }
    assert!(engine.stats().swaps.is_empty(), "nothing changed yet");
    // The search finds a better member: the top 3 change.
    w.rank(&[
        ("trial_0014", 0.52),
        ("trial_0006", -0.17),
        ("trial_0013", -0.70),
        ("trial_0004", 0.90),
    ]);
    settle_load(&mut engine, FROM + 3 * H + 10).await;
    // The load ended between hours: the next boundary swaps.
    let swap = engine
        .between_hours(FROM + 3 * H + 20)
        .await
        .unwrap()
        .expect("the loaded ensemble goes in at the hour boundary");
    assert_eq!(swap.from, first);
    assert_ne!(swap.to, first);
    assert_eq!(swap.after_hour, Some(FROM + 2 * H));
    assert_eq!(swap.members, ["trial_0004", "trial_0014", "trial_0006"]);
    assert_eq!(engine.stats().ensemble_version, swap.to);
    for i in 3..6 {
        w.hour(&mut engine, FROM + i * H).await;
    }
    // Every hour decided once, the first three with the old version.
    let decisions = w.decisions(engine.run_id()).await;
    let want: Vec<_> = (0..6)
        .map(|i| {
            let v = if i < 3 { &first } else { &swap.to };
            (FROM + i * H, Some(v.clone()), true)
        })
        .collect();
    assert_eq!(decisions, want);
    // The adoptions: the start, then the swap after the third hour.
    let adoptions = engine
        .store()
        .adoptions_of_run(engine.run_id())
        .await
        .unwrap();
    let got: Vec<_> = adoptions
        .iter()
        .map(|a| (a.version.clone(), a.previous.clone(), a.after_hour))
        .collect();
    assert_eq!(
        got,
        [
            (first.clone(), None, None),
            (swap.to.clone(), Some(first), Some(FROM + 2 * H)),
        ]
    );
    assert_eq!(adoptions[1].members[0].name, "trial_0004");
    // The same selection is not loaded again.
    settle_load(&mut engine, FROM + 6 * H + 10).await;
    assert_eq!(engine.between_hours(FROM + 6 * H + 20).await.unwrap(), None);
    assert!(engine.stats().swaps_refused.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_too_big_with_the_swap_transient_is_refused_and_nothing_changes() {
    let w = World::new();
    let new_top = [
        ("trial_0008", 0.95),
        ("trial_0010", 0.94),
        ("trial_0004", 0.93),
    ];
    // A host where the new members fit alone but not beside the old ones.
    let (in_use, members) = {
        let (old, _) = load_consistent(&w.dir, load_options(&w.profile)).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        copy_dir(&w.dir, tmp.path());
        write_ranking(tmp.path(), &new_top);
        let catalog = trader_ensemble::EnsembleCatalog::open(tmp.path()).unwrap();
        (old.weight_bytes(), catalog.select(TOP_N as usize).unwrap())
    };
    let check = w.host(ROOMY);
    let (alone, beside) = (check.need(&members, 0), check.need(&members, in_use));
    assert!(beside > alone, "the transient counts: {beside} vs {alone}");
    let mut engine = w
        .engine(w.host(alone + (beside - alone) / 2), 0, FROM + H)
        .await;
    let first = engine.stats().ensemble_version.clone();
    w.hour(&mut engine, FROM).await;
    w.rank(&new_top);
    settle_load(&mut engine, FROM + H + 10).await;
    assert_eq!(engine.between_hours(FROM + H + 20).await.unwrap(), None);
    assert_eq!(engine.stats().swaps_refused.get("budget"), Some(&1));
    assert_eq!(engine.stats().ensemble_version, first);
    // Refused once: the same selection is not looked at again.
    settle_load(&mut engine, FROM + H + 30).await;
    assert_eq!(engine.stats().swaps_refused.get("budget"), Some(&1));
    w.hour(&mut engine, FROM + H).await;
    let decisions = w.decisions(engine.run_id()).await;
    assert_eq!(
        decisions,
        [
            (FROM, Some(first.clone()), true),
            (FROM + H, Some(first), true)
        ]
    );
    assert_eq!(
        engine
            .store()
            .adoptions_of_run(engine.run_id())
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_needing_more_history_than_held_is_refused() {
    let w = World::new();
    let mut engine = w.engine(w.host(ROOMY), 0, FROM + H).await;
    let first = engine.stats().ensemble_version.clone();
    w.hour(&mut engine, FROM).await;
    // trial_0015 needs 12 + 60 - 1 = 71 h; the profile keeps 66.
    w.rank(&[
        ("trial_0014", 0.52),
        ("trial_0006", -0.17),
        ("trial_0015", 2.0),
    ]);
    settle_load(&mut engine, FROM + H + 10).await;
    assert_eq!(engine.between_hours(FROM + H + 20).await.unwrap(), None);
    assert_eq!(
        engine.stats().swaps_refused,
        BTreeMap::from([("history", 1)])
    );
    assert_eq!(engine.stats().ensemble_version, first);
    w.hour(&mut engine, FROM + H).await;
    assert_eq!(
        w.decisions(engine.run_id()).await.last(),
        Some(&(FROM + H, Some(first), true))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_written_member_is_never_adopted_and_the_whole_one_is() {
    let w = World::new();
    let mut engine = w.engine(w.host(ROOMY), 0, FROM + H).await;
    let first = engine.stats().ensemble_version.clone();
    w.hour(&mut engine, FROM).await;
    // A member copied by hand, its weights file cut in the middle.
    let new = w.dir.join("trial_0100");
    copy_dir(&w.dir.join("trial_0004"), &new);
    let weights = fs_err::read(new.join("actor.safetensors")).unwrap();
    fs_err::write(new.join("actor.safetensors"), &weights[..weights.len() / 2]).unwrap();
    w.rank(&[
        ("trial_0014", 0.52),
        ("trial_0006", -0.17),
        ("trial_0100", 3.0),
    ]);
    settle_load(&mut engine, FROM + H + 10).await;
    assert_eq!(engine.between_hours(FROM + H + 20).await.unwrap(), None);
    assert_eq!(
        engine.stats().ensemble_version,
        first,
        "a torn file is not adopted"
    );
    assert_eq!(
        engine.stats().swaps_refused,
        BTreeMap::from([("invalid", 1)])
    );
    w.hour(&mut engine, FROM + H).await;
    // The copy completes: the member's file changed, so it is looked at again.
    fs_err::write(new.join("actor.safetensors"), &weights).unwrap();
    settle_load(&mut engine, FROM + 2 * H + 10).await;
    let swap = engine
        .between_hours(FROM + 2 * H + 20)
        .await
        .unwrap()
        .expect("the whole member is adopted");
    assert_eq!(swap.members, ["trial_0100", "trial_0014", "trial_0006"]);
    w.hour(&mut engine, FROM + 2 * H).await;
    let versions: Vec<_> = w
        .decisions(engine.run_id())
        .await
        .into_iter()
        .map(|(_, v, _)| v.unwrap())
        .collect();
    assert_eq!(versions, [first.clone(), first, swap.to]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_hours_between_swaps_holds_a_new_selection_until_it_is_due() {
    let w = World::new();
    let mut engine = w.engine(w.host(ROOMY), 2, FROM + H).await;
    w.hour(&mut engine, FROM).await;
    w.rank(&[
        ("trial_0004", 0.90),
        ("trial_0014", 0.52),
        ("trial_0006", -0.17),
    ]);
    // Adopted at FROM + H: not before FROM + 3 H.
    settle_load(&mut engine, FROM + 2 * H + 10).await;
    assert_eq!(engine.between_hours(FROM + 2 * H + 20).await.unwrap(), None);
    w.hour(&mut engine, FROM + H).await;
    settle_load(&mut engine, FROM + 3 * H).await;
    let swap = engine.between_hours(FROM + 3 * H + 1).await.unwrap();
    assert!(swap.is_some(), "due at FROM + 3 H");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_during_a_swap_the_trader_restarts_on_one_version_and_keeps_every_hour_once() {
    let w = World::new();
    let mut engine = w.engine(w.host(ROOMY), 0, FROM + H).await;
    let run_id = engine.run_id();
    let first = engine.stats().ensemble_version.clone();
    for i in 0..2 {
        w.hour(&mut engine, FROM + i * H).await;
    }
    w.rank(&[
        ("trial_0004", 0.90),
        ("trial_0014", 0.52),
        ("trial_0006", -0.17),
    ]);
    // The load starts, and the process dies while it runs.
    engine.between_hours(FROM + 2 * H).await.unwrap();
    drop(engine);
    // Restarted on the same store and account: the directory as it is now.
    let mut engine = w.engine(w.host(ROOMY), 0, FROM + 2 * H + 30).await;
    assert_eq!(engine.run_id(), run_id, "the live run is resumed");
    let second = engine.stats().ensemble_version.clone();
    assert_ne!(second, first);
    // The hour before the kill is not decided again; the next ones are.
    for i in 1..4 {
        w.hour(&mut engine, FROM + i * H).await;
    }
    let decisions = w.decisions(run_id).await;
    assert_eq!(
        decisions,
        [
            (FROM, Some(first.clone()), true),
            (FROM + H, Some(first.clone()), true),
            (FROM + 2 * H, Some(second.clone()), true),
            (FROM + 3 * H, Some(second.clone()), true),
        ]
    );
    assert_eq!(engine.stats().already_decided, 1);
    let adoptions: Vec<_> = engine
        .store()
        .adoptions_of_run(run_id)
        .await
        .unwrap()
        .into_iter()
        .map(|a| (a.version, a.previous))
        .collect();
    assert_eq!(adoptions, [(first.clone(), None), (second, Some(first))]);
    // Orders: one id per (hour, symbol), none sent twice.
    let ids = common::stored_orders(&w.db);
    let mut unique: Vec<_> = ids.iter().map(|(id, _, _)| id.clone()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_selection_rewritten_after_its_load_is_not_adopted_stale() {
    let w = World::new();
    let mut engine = w.engine(w.host(ROOMY), 0, FROM + H).await;
    w.hour(&mut engine, FROM).await;
    w.rank(&[
        ("trial_0004", 0.90),
        ("trial_0014", 0.52),
        ("trial_0006", -0.17),
    ]);
    engine.between_hours(FROM + H + 10).await.unwrap();
    engine.wait_for_load().await;
    // Loaded, not yet swapped in; the search writes a newer ranking.
    w.rank(&[
        ("trial_0008", 0.99),
        ("trial_0004", 0.90),
        ("trial_0014", 0.52),
    ]);
    assert_eq!(engine.between_hours(FROM + H + 20).await.unwrap(), None);
    engine.wait_for_load().await;
    let swap = engine
        .between_hours(FROM + H + 30)
        .await
        .unwrap()
        .expect("the newest selection goes in");
    assert_eq!(swap.members, ["trial_0008", "trial_0004", "trial_0014"]);
    assert_eq!(engine.stats().swaps.len(), 1);
}

#[test]
fn only_events_that_can_change_the_selection_wake_the_trader() {
    use notify::EventKind;
    use notify::event::{
        AccessKind, AccessMode, CreateKind, DataChange, ModifyKind, RemoveKind, RenameMode,
    };
    let wakes = [
        EventKind::Create(CreateKind::Folder),
        EventKind::Modify(ModifyKind::Data(DataChange::Any)),
        EventKind::Modify(ModifyKind::Name(RenameMode::To)),
        EventKind::Remove(RemoveKind::Folder),
        EventKind::Access(AccessKind::Close(AccessMode::Write)),
        EventKind::Any,
        EventKind::Other,
    ];
    let quiet = [
        EventKind::Access(AccessKind::Open(AccessMode::Any)),
        EventKind::Access(AccessKind::Open(AccessMode::Read)),
        EventKind::Access(AccessKind::Read),
        EventKind::Access(AccessKind::Close(AccessMode::Read)),
        EventKind::Access(AccessKind::Any),
    ];
    for kind in wakes {
        assert!(trader_engine::selection_may_change(&kind), "{kind:?}");
    }
    for kind in quiet {
        assert!(!trader_engine::selection_may_change(&kind), "{kind:?}");
    }
}

/// The trader's own looks at its directory must not wake it: they open the
/// members' directories and files, which inotify reports, and each wake
/// looked again, a loop that kept a core busy between hours. Then a real
/// change still wakes it.
#[test]
fn reading_the_directory_does_not_wake_the_watch_and_a_new_member_does() {
    use std::sync::mpsc;
    use std::time::Duration;
    let w = World::new();
    let (tx, rx) = mpsc::channel();
    let _watch = trader_engine::watch_selection(&w.dir, move || {
        let _ = tx.send(());
    })
    .unwrap();
    for _ in 0..50 {
        trader_ensemble::SelectionStamp::read(&w.dir, TOP_N as usize).unwrap();
    }
    // The reads' events, if they woke it, arrive within milliseconds.
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "a read of the directory woke the watch"
    );
    copy_dir(&w.dir.join("trial_0004"), &w.dir.join("trial_new"));
    assert!(
        rx.recv_timeout(Duration::from_secs(20)).is_ok(),
        "a new member directory did not wake the watch"
    );
}
