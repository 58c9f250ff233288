//! Mutation fuzzing of every stage's decoders: no input makes a stage panic.
//!
//! A corpus of valid records of every topic a stage reads (raw interactions,
//! interactions, decision requests, rewards, model deltas, catalog versions)
//! comes from running simulated traffic of a deployment through the three
//! stages in one process. Then, for `--secs`, a seeded loop takes a record,
//! mutates its value (bit flips, interesting bytes, inserted, deleted,
//! repeated or spliced runs, truncation), its key and its timestamp, and hands
//! it to the stage that reads that topic as the Kafka runner does: through
//! `Stage::process`, or, for what a stage reads back at an assignment, through
//! `Stage::restore` (the aggregator's changelog, origin marks in its
//! `nba.origin` header) and `Stage::recall` (the updater's published
//! answers). The `nba.origin` header of interactions is mutated too. A panic
//! prints the topic, the seed, the iteration and the record in hex, and the
//! run exits 1.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use clap::Parser;
use nba_deployment::Deployment;
use nba_pipeline::{
    AggregatorStage, ConsumerStage, InputRecord, LocalPipeline, ORIGIN_HEADER, OutputRecord, Stage,
    Topic, UpdaterStage,
};
use nba_sim::{SimConfig, Simulator};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Feeds mutated records to the stages until the time is up; exit 1 on a panic.
#[derive(Debug, Parser)]
struct Cli {
    /// Seconds to fuzz.
    #[arg(long, default_value_t = 10)]
    secs: u64,
    /// Seed of the mutations (a failing run is repeated with its seed).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The compiled-in example whose records make the corpus.
    #[arg(long, default_value = "retail")]
    example: String,
    /// Print one JSON object as the last line of stdout.
    #[arg(long)]
    json: bool,
}

/// A record of the corpus.
#[derive(Debug, Clone)]
struct Sample {
    topic: Topic,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    timestamp: Option<i64>,
    /// The `nba.origin` header.
    origin: Option<Vec<u8>>,
}

impl Sample {
    fn of(r: &OutputRecord) -> Option<Self> {
        Some(Self {
            topic: r.topic,
            key: Some(r.key.clone()),
            value: r.payload.clone()?,
            timestamp: r.timestamp,
            origin: r
                .headers
                .iter()
                .find(|(name, _)| *name == ORIGIN_HEADER)
                .map(|(_, v)| v.clone()),
        })
    }
}

impl Sample {
    /// The record as the runner hands it to a stage.
    fn input(&self, offset: usize) -> InputRecord<'_> {
        InputRecord {
            topic: self.topic,
            topic_name: self.topic.default_name(),
            partition: 0,
            offset: i64::try_from(offset).unwrap_or(i64::MAX),
            key: self.key.as_deref(),
            payload: Some(&self.value),
            timestamp: self.timestamp,
            origin: self.origin.as_deref(),
        }
    }
}

/// Valid records of every topic a stage reads.
fn corpus(deployment: &Deployment) -> anyhow::Result<Vec<Sample>> {
    let settings = &deployment.settings;
    let mut pipeline = LocalPipeline::from_settings(settings).map_err(anyhow::Error::msg)?;
    let mut sim = Simulator::new(settings, &SimConfig::for_run(3_000, 5, Some(60)), true)
        .map_err(anyhow::Error::msg)?;
    let mut samples = Vec::new();
    let mut tap = Vec::new();
    for _ in 0..3_000 {
        let e = sim.next_event();
        let value = nba_schema::encode(&e)?;
        samples.push(Sample {
            topic: Topic::InteractionsRaw,
            key: Some(e.customer_id.clone().into_bytes()),
            value: value.clone(),
            timestamp: Some(e.timestamp),
            origin: None,
        });
        pipeline.push_raw(Some(e.customer_id.as_bytes()), &value, &mut tap);
        for r in tap.drain(..) {
            if matches!(
                r.topic,
                Topic::Interactions
                    | Topic::DecisionRequests
                    | Topic::Rewards
                    | Topic::NextBestActions
            ) {
                samples.extend(Sample::of(&r));
            }
            // Answered, so that responses and rewards come too.
            if r.topic == Topic::NextBestActions
                && let Ok(nba) = nba_schema::decode(r.payload.as_deref().unwrap_or_default())
            {
                sim.respond(&nba);
            }
        }
    }
    // Model deltas: what an instance that shares its model publishes after
    // learning from the requests and rewards above.
    let mut sharing =
        UpdaterStage::new(settings.updater(Some("corpus".into()))).map_err(anyhow::Error::msg)?;
    let deltas = outputs_of(
        &mut sharing,
        &samples,
        &[Topic::DecisionRequests, Topic::Rewards],
        Topic::ModelDeltas,
    );
    anyhow::ensure!(!deltas.is_empty(), "no model delta in the corpus");
    samples.extend(deltas);
    // The changelog an aggregator writes from the interactions above, each
    // partition's last state carrying its origin marks.
    let mut changelog = AggregatorStage::new(settings.aggregator())
        .map_err(anyhow::Error::msg)?
        .with_changelog(Duration::from_secs(1));
    let states = outputs_of(
        &mut changelog,
        &samples,
        &[Topic::Interactions],
        Topic::CustomerState,
    );
    anyhow::ensure!(
        states.iter().any(|s| s.origin.is_some()),
        "no changelog state with origin marks in the corpus"
    );
    samples.extend(states);
    let version = settings.catalog_version(1, 1_767_225_600_000 + 3_600_000);
    samples.push(Sample {
        topic: Topic::Catalog,
        key: Some(b"deployment".to_vec()),
        value: nba_schema::encode(&version)?,
        timestamp: None,
        origin: None,
    });
    Ok(samples)
}

/// What `stage` writes to `output` from the samples of `inputs`, flushed
/// every 500 samples and at the end.
fn outputs_of(
    stage: &mut dyn Stage,
    samples: &[Sample],
    inputs: &[Topic],
    output: Topic,
) -> Vec<Sample> {
    let mut written = Vec::new();
    for (i, s) in samples.iter().enumerate() {
        if inputs.contains(&s.topic) {
            stage.process(&s.input(i), &mut written);
        }
        if i % 500 == 0 {
            stage.flush(&mut written);
        }
    }
    stage.flush(&mut written);
    written
        .iter()
        .filter(|r| r.topic == output)
        .filter_map(Sample::of)
        .collect()
}

/// Mutates `s` in place, `value` possibly spliced with `other`; its origin
/// header, key and timestamp now and then.
fn mutate(rng: &mut ChaCha8Rng, s: &mut Sample, other: &[u8]) {
    mutate_bytes(rng, &mut s.value, other);
    match rng.random_range(0..8) {
        0 => s.origin = None,
        1 => mutate_bytes(
            rng,
            s.origin.get_or_insert_with(Vec::new),
            b"nba.interactions.raw/0/12",
        ),
        _ => {}
    }
    match rng.random_range(0..16) {
        0 => s.key = None,
        1 => s.key = Some((0..rng.random_range(0..40)).map(|_| rng.random()).collect()),
        _ => {}
    }
    match rng.random_range(0..16) {
        0 => s.timestamp = None,
        1 => s.timestamp = Some(-1),
        2 => s.timestamp = Some(i64::MIN),
        3 => s.timestamp = Some(i64::MAX),
        4 => s.timestamp = Some(rng.random()),
        _ => {}
    }
}

/// Bit flips, interesting bytes, inserted, deleted, repeated or spliced runs,
/// truncation and extreme varints in `v`, spliced with `other`.
fn mutate_bytes(rng: &mut ChaCha8Rng, v: &mut Vec<u8>, other: &[u8]) {
    const INTERESTING: [u8; 8] = [0, 1, 0x7f, 0x80, 0xfe, 0xff, b'"', 0xc3];
    for _ in 0..rng.random_range(1..=4) {
        let len = v.len();
        match rng.random_range(0..8) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                v[i] ^= 1 << rng.random_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.random_range(0..len);
                v[i] = INTERESTING[rng.random_range(0..INTERESTING.len())];
            }
            2 => {
                let i = rng.random_range(0..=len);
                let n = rng.random_range(1..=16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.random()).collect();
                v.splice(i..i, bytes);
            }
            3 if len > 0 => {
                let i = rng.random_range(0..len);
                let j = rng.random_range(i..=len.min(i + 16));
                v.drain(i..j);
            }
            4 => v.truncate(rng.random_range(0..=len)),
            5 if len > 0 => {
                // A run repeated: long strings, arrays that claim more.
                let i = rng.random_range(0..len);
                let j = rng.random_range(i..=len.min(i + 8));
                let run = v[i..j].repeat(rng.random_range(1..64));
                v.splice(j..j, run);
            }
            6 if !other.is_empty() => {
                let i = rng.random_range(0..=len);
                let j = rng.random_range(0..other.len());
                v.truncate(i);
                v.extend_from_slice(&other[j..]);
            }
            _ => {
                // A zig-zag varint of an extreme length or count.
                let i = rng.random_range(0..=len);
                let big: &[u8] = match rng.random_range(0..3) {
                    0 => &[0xff, 0xff, 0xff, 0xff, 0x0f],
                    1 => &[0x01],
                    _ => &[0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01],
                };
                v.splice(i..i, big.iter().copied());
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let deployment = Deployment::example(&cli.example, &[])
        .map_err(|e| anyhow::anyhow!("no example {:?}: {e:?}", cli.example))?;
    let settings = &deployment.settings;
    let samples = corpus(&deployment)?;
    // Each topic as often as any other, whatever its share of the corpus.
    let mut by_topic: Vec<Vec<Sample>> = Vec::new();
    for t in Topic::ALL {
        let of_topic: Vec<Sample> = samples.iter().filter(|s| s.topic == t).cloned().collect();
        if !of_topic.is_empty() {
            by_topic.push(of_topic);
        }
    }
    let mut consumer = ConsumerStage::new(settings.intake());
    let mut aggregator = AggregatorStage::new(settings.aggregator()).map_err(anyhow::Error::msg)?;
    // One that restores from the changelog.
    let mut restorer = AggregatorStage::new(settings.aggregator())
        .map_err(anyhow::Error::msg)?
        .with_changelog(Duration::from_secs(1));
    // One that shares its model, so that it reads model deltas.
    let mut updater =
        UpdaterStage::new(settings.updater(Some("fuzz".into()))).map_err(anyhow::Error::msg)?;
    let mut rng = ChaCha8Rng::seed_from_u64(cli.seed);
    let deadline = Instant::now() + Duration::from_secs(cli.secs);
    let (mut runs, mut forwarded, mut dead) = (0u64, 0u64, 0u64);
    let (mut read_back_taken, mut read_back_refused) = (0u64, 0u64);
    let mut per_topic = std::collections::BTreeMap::<&str, u64>::new();
    let mut out = Vec::new();
    while Instant::now() < deadline {
        for _ in 0..1_000 {
            let of_topic = &by_topic[rng.random_range(0..by_topic.len())];
            let base = &of_topic[rng.random_range(0..of_topic.len())];
            let other = &of_topic[rng.random_range(0..of_topic.len())].value;
            let mut s = base.clone();
            mutate(&mut rng, &mut s, other);
            let input = s.input(usize::try_from(runs).unwrap_or(usize::MAX));
            let panicked = |stage: &str| {
                let hex: String = s.value.iter().map(|b| format!("{b:02x}")).collect();
                anyhow::anyhow!(
                    "{stage} panicked on a record of {} (seed {}, run {runs}): key {:?}, timestamp {:?}, origin {:?}, value {hex}",
                    s.topic,
                    cli.seed,
                    s.key,
                    s.timestamp,
                    s.origin.as_deref().map(String::from_utf8_lossy),
                )
            };
            // Read back at an assignment: refused with a reason, or taken.
            let read_back = match s.topic {
                Topic::CustomerState => Some((
                    restorer.name(),
                    catch_unwind(AssertUnwindSafe(|| {
                        restorer.restore(&input, input.offset + 1)
                    })),
                )),
                Topic::NextBestActions => Some((
                    updater.name(),
                    catch_unwind(AssertUnwindSafe(|| {
                        updater.recall(&input, Some(input.offset))
                    })),
                )),
                _ => None,
            };
            if let Some((stage, result)) = read_back {
                match result {
                    Err(_) => return Err(panicked(stage)),
                    Ok(Ok(())) => read_back_taken += 1,
                    Ok(Err(_)) => read_back_refused += 1,
                }
            }
            let stages: Vec<&mut dyn Stage> = match s.topic {
                Topic::InteractionsRaw => vec![&mut consumer],
                Topic::Interactions => vec![&mut aggregator],
                Topic::DecisionRequests | Topic::Rewards | Topic::ModelDeltas => vec![&mut updater],
                Topic::Catalog => vec![&mut aggregator, &mut updater],
                _ => vec![],
            };
            for stage in stages {
                out.clear();
                let result = catch_unwind(AssertUnwindSafe(|| stage.process(&input, &mut out)));
                if result.is_err() {
                    return Err(panicked(stage.name()));
                }
                for o in &out {
                    if o.topic == Topic::DeadLetter {
                        dead += 1;
                    } else {
                        forwarded += 1;
                    }
                }
            }
            *per_topic.entry(s.topic.default_name()).or_default() += 1;
            runs += 1;
        }
        // What the stages publish from what they took in.
        out.clear();
        for stage in [
            &mut aggregator as &mut dyn Stage,
            &mut restorer,
            &mut updater,
        ] {
            if catch_unwind(AssertUnwindSafe(|| stage.flush(&mut out))).is_err() {
                anyhow::bail!(
                    "{} panicked flushing (seed {}, run {runs})",
                    stage.name(),
                    cli.seed
                );
            }
        }
    }
    println!(
        "{runs} mutated records in {} s ({:.0}/s), 0 panics; outputs: {forwarded} records, {dead} dead letters; corpus {} records",
        cli.secs,
        runs as f64 / cli.secs.max(1) as f64,
        samples.len()
    );
    println!(
        "read back at assignments (changelog states, published answers): {read_back_taken} taken, {read_back_refused} refused with a reason"
    );
    for (topic, n) in &per_topic {
        println!("  {topic}: {n}");
    }
    if cli.json {
        println!(
            "{}",
            serde_json::json!({
                "runs": runs, "secs": cli.secs, "seed": cli.seed, "panics": 0,
                "forwarded": forwarded, "dead_letters": dead, "corpus": samples.len(),
                "per_topic": per_topic,
                "read_back_taken": read_back_taken, "read_back_refused": read_back_refused,
            })
        );
    }
    Ok(())
}
