//! `pack-bench`: times Aether's packing against `tar | gzip` on the same tree and reports the
//! numbers the README promises (speed, size, determinism, memory, CLI start-up).

mod host;
mod measure;
mod stats;
mod synth;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use clap::{Parser, Subcommand};
use measure::{Packed, TreeShape};
use serde::Serialize;
use stats::Percentiles;

const SCHEMA: &str = "aether-pack-bench-v1";
const TARGET_TIME_RATIO: f64 = 0.3;
const TARGET_SIZE_RATIO: f64 = 1.03;
const TARGET_RSS_MIB: f64 = 64.0;
const TARGET_HELP_MS: f64 = 5.0;
/// Thread counts whose outputs must be byte-identical.
const DETERMINISM_THREADS: [usize; 3] = [1, 2, 4];
const MB: f64 = 1e6;

#[derive(Debug, Parser)]
#[command(name = "pack-bench", about = "Benchmarks Aether's packing against tar | gzip")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Time Aether and tar | gzip on TREE and write every number as JSON.
    Run(RunArgs),
    /// Pack TREE once and print the result with this process's peak RSS as JSON.
    PackOnce {
        #[arg(long)]
        tree: PathBuf,
        /// Where the .tar.gz goes; without it the bytes are discarded.
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value_t = default_threads())]
        threads: usize,
    },
    /// Generate the deterministic synthetic tree into DIR.
    Synth {
        dir: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    #[arg(long)]
    tree: PathBuf,
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// The JSON results file.
    #[arg(long)]
    out: PathBuf,
    /// The release `aether` binary whose `--help` is timed; skipped when absent.
    #[arg(long)]
    aether_bin: Option<PathBuf>,
    #[arg(long, default_value_t = 30)]
    help_runs: usize,
    #[arg(long, default_value_t = default_threads())]
    threads: usize,
    /// Where the archives are written; must be outside the tree. Defaults to beside --out.
    #[arg(long)]
    scratch: Option<PathBuf>,
}

fn default_threads() -> usize {
    host::cores()
}

#[derive(Debug, Serialize)]
struct Report {
    schema: &'static str,
    date_utc: String,
    machine: Machine,
    tree: Tree,
    runs: usize,
    threads: usize,
    aether_pack: Timing,
    tar_gzip: Timing,
    time_ratio: Target,
    size_ratio: Target,
    determinism: Determinism,
    peak_rss: PeakRss,
    help: Help,
}

#[derive(Debug, Serialize)]
struct Machine {
    cores: usize,
    cpu: String,
    mem_total_mib: u64,
    kernel: String,
    tar: String,
    gzip: String,
    /// 1/5/15-minute load averages before and after the run: anything else running on the
    /// machine slows both tools, the parallel one more.
    load_before: String,
    load_after: String,
    /// CPU seconds other processes on this machine used while this run measured; near 0 when
    /// quiet. Contention from outside it (other guests on a shared host) does not show here.
    other_cpu_s: f64,
}

#[derive(Debug, Serialize)]
struct Tree {
    path: PathBuf,
    /// How the tree was made (`npm ci` of the fixture, or the synthetic generator).
    source: String,
    #[serde(flatten)]
    shape: TreeShape,
    file_mb: f64,
}

#[derive(Debug, Serialize)]
struct Timing {
    samples_s: Vec<f64>,
    p50_s: f64,
    p95_s: f64,
    /// Tree file bytes over the p50 time, in MB (10^6 bytes) per second.
    throughput_mb_s: f64,
    output_bytes: u64,
}

#[derive(Debug, Serialize)]
struct Target {
    value: f64,
    target_max: f64,
    met: bool,
}

#[derive(Debug, Serialize)]
struct Determinism {
    digests_by_threads: BTreeMap<String, String>,
    identical_across_threads: bool,
    identical_across_runs: bool,
    met: bool,
}

/// The allocator's high-water mark varies between identical packs, so several are measured and
/// the worst one is held against the target.
#[derive(Debug, Serialize)]
struct PeakRss {
    samples_mib: Vec<f64>,
    p50_mib: f64,
    /// The largest sample.
    mib: f64,
    threads: usize,
    target_max_mib: f64,
    met: bool,
}

#[derive(Debug, Serialize)]
struct Help {
    measured: bool,
    note: Option<String>,
    samples_ms: Vec<f64>,
    p50_ms: Option<f64>,
    p95_ms: Option<f64>,
    target_max_ms: f64,
    met: Option<bool>,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Run(args) => run(&args),
        Cmd::PackOnce { tree, out, threads } => {
            let mut packed = measure::aether_pack(&tree, threads, out.as_deref())?;
            packed.vm_hwm_kib = Some(host::vm_hwm_kib()?);
            println!("{}", serde_json::to_string(&packed)?);
            Ok(())
        }
        Cmd::Synth { dir, seed } => {
            let stats = synth::generate(&dir, seed)?;
            std::fs::write(dir.join(".tree-source"), format!("synthetic generator, seed {seed}\n"))?;
            let mb = stats.bytes as f64 / MB;
            println!("{} files, {} dirs, {} symlinks, {mb:.1} MB", stats.files, stats.dirs, stats.symlinks);
            Ok(())
        }
    }
}

fn run(args: &RunArgs) -> Result<()> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    let tree = std::fs::canonicalize(&args.tree).with_context(|| format!("no tree at {}", args.tree.display()))?;
    let out_dir = args.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let scratch = args.scratch.clone().unwrap_or_else(|| out_dir.join("scratch"));
    std::fs::create_dir_all(&scratch)?;
    let scratch = std::fs::canonicalize(&scratch)?;
    // An archive inside the tree would be packed by the next run and change every number.
    anyhow::ensure!(!scratch.starts_with(&tree), "--scratch must be outside the tree");

    let (load_before, ticks_before) = (host::load_average(), host::cpu_ticks()?);
    let measured = measure_all(&tree, &scratch, args);
    let ticks_after = host::cpu_ticks()?;
    clean_scratch(&scratch);
    let mut report = build_report(args, tree, measured?)?;
    report.machine.load_before = load_before;
    report.machine.other_cpu_s = host::other_cpu_s(ticks_before, ticks_after);
    if let Some(parent) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)? + "\n")?;
    print_table(&report);
    println!("results: {}", args.out.display());
    Ok(())
}

fn determinism_digests(tree: &Path) -> Result<BTreeMap<String, String>> {
    DETERMINISM_THREADS
        .iter()
        .map(|&threads| Ok((threads.to_string(), measure::aether_pack(tree, threads, None)?.digest)))
        .collect()
}

/// Everything one `run` measures, before it is summarised.
#[derive(Debug, Default)]
struct Measured {
    shape: TreeShape,
    digests: BTreeMap<String, String>,
    aether_s: Vec<f64>,
    packs: Vec<Packed>,
    tar_s: Vec<f64>,
    tar_size: u64,
    children: Vec<Packed>,
}

fn measure_all(tree: &Path, scratch: &Path, args: &RunArgs) -> Result<(Measured, Help)> {
    eprintln!("tree {}: counting", tree.display());
    let mut m = Measured { shape: measure::tree_shape(tree)?, ..Measured::default() };
    eprintln!("determinism: packing with {DETERMINISM_THREADS:?} threads (also warms the page cache)");
    m.digests = determinism_digests(tree)?;
    eprintln!("timing {} runs of each", args.runs);
    timed_runs(tree, scratch, args, &mut m)?;
    eprintln!("peak RSS: {} packs, each in a fresh child process", args.runs);
    let exe = std::env::current_exe()?;
    m.children = (0..args.runs)
        .map(|_| measure::pack_in_child(&exe, tree, args.threads, &scratch.join("rss.tar.gz")))
        .collect::<Result<Vec<_>>>()?;
    Ok((m, help(args)))
}

/// The timed samples of both tools. They alternate which goes first, so neither always runs on
/// a cache or CPU state the other left behind.
fn timed_runs(tree: &Path, scratch: &Path, args: &RunArgs, m: &mut Measured) -> Result<()> {
    let (aether_out, tar_out) = (scratch.join("aether.tar.gz"), scratch.join("tar-gzip.tar.gz"));
    for run in 0..args.runs {
        for tool in if run % 2 == 0 { ["aether", "tar"] } else { ["tar", "aether"] } {
            if tool == "aether" {
                let (packed, s) = stats::timed(|| measure::aether_pack(tree, args.threads, Some(&aether_out)))?;
                eprintln!("  run {}: aether {s:.3} s", run + 1);
                m.aether_s.push(s);
                m.packs.push(packed);
            } else {
                let (size, s) = stats::timed(|| measure::tar_gzip(tree, &tar_out))?;
                eprintln!("  run {}: tar|gzip {s:.3} s", run + 1);
                m.tar_s.push(s);
                m.tar_size = size;
            }
        }
    }
    Ok(())
}

fn help(args: &RunArgs) -> Help {
    let skipped = |note: String| Help {
        measured: false,
        note: Some(note),
        samples_ms: vec![],
        p50_ms: None,
        p95_ms: None,
        target_max_ms: TARGET_HELP_MS,
        met: None,
    };
    let Some(bin) = args.aether_bin.as_ref() else { return skipped("no --aether-bin given".into()) };
    if !bin.is_file() {
        return skipped(format!("{} not found (build it with cargo build --release -p aether-cli)", bin.display()));
    }
    match measure::help_timings_ms(bin, args.help_runs) {
        Ok(samples) => {
            let p = stats::percentiles(&samples);
            Help {
                measured: true,
                note: None,
                p50_ms: Some(p.p50),
                p95_ms: Some(p.p95),
                met: Some(p.p50 < TARGET_HELP_MS),
                samples_ms: p.samples,
                target_max_ms: TARGET_HELP_MS,
            }
        }
        Err(e) => skipped(format!("{e:#}")),
    }
}

fn clean_scratch(scratch: &Path) {
    for name in ["aether.tar.gz", "tar-gzip.tar.gz", "rss.tar.gz"] {
        let path = scratch.join(name);
        let _ = std::fs::remove_file(measure::sibling(&path, ".manifest.json"));
        let _ = std::fs::remove_file(path);
    }
    let _ = std::fs::remove_dir(scratch);
}

fn build_report(args: &RunArgs, tree: PathBuf, (m, help): (Measured, Help)) -> Result<Report> {
    let Measured { shape, digests, aether_s, packs, tar_s, tar_size, children } = m;
    let first = packs.first().context("no pack ran")?;
    if first.file_bytes != shape.file_bytes {
        bail!("the tree changed during the benchmark ({} -> {} bytes)", shape.file_bytes, first.file_bytes);
    }
    let (a, t) = (stats::percentiles(&aether_s), stats::percentiles(&tar_s));
    let file_mb = shape.file_bytes as f64 / MB;
    let across_threads = digests.values().all(|d| *d == first.digest);
    let across_runs = packs.iter().chain(&children).all(|p| p.digest == first.digest);
    let rss_mib = children
        .iter()
        .map(|c| c.vm_hwm_kib.map(|kib| kib as f64 / 1024.0).context("pack-once reported no peak RSS"))
        .collect::<Result<Vec<_>>>()?;
    let rss = stats::percentiles(&rss_mib);
    let max_mib = rss_mib.iter().copied().fold(0.0, f64::max);
    let time_ratio = a.p50 / t.p50;
    let size_ratio = first.size_bytes as f64 / tar_size as f64;
    Ok(Report {
        schema: SCHEMA,
        date_utc: host::date_utc(),
        machine: machine(),
        tree: Tree { source: tree_source(&tree), path: tree, shape, file_mb },
        runs: args.runs,
        threads: args.threads,
        aether_pack: timing(a, file_mb, first.size_bytes),
        tar_gzip: timing(t, file_mb, tar_size),
        time_ratio: Target { value: time_ratio, target_max: TARGET_TIME_RATIO, met: time_ratio <= TARGET_TIME_RATIO },
        size_ratio: Target { value: size_ratio, target_max: TARGET_SIZE_RATIO, met: size_ratio <= TARGET_SIZE_RATIO },
        determinism: Determinism {
            digests_by_threads: digests,
            identical_across_threads: across_threads,
            identical_across_runs: across_runs,
            met: across_threads && across_runs,
        },
        peak_rss: PeakRss {
            p50_mib: rss.p50,
            samples_mib: rss.samples,
            mib: max_mib,
            threads: args.threads,
            target_max_mib: TARGET_RSS_MIB,
            met: max_mib < TARGET_RSS_MIB,
        },
        help,
    })
}

fn timing(p: Percentiles, file_mb: f64, output_bytes: u64) -> Timing {
    let throughput_mb_s = file_mb / p.p50;
    Timing { throughput_mb_s, p50_s: p.p50, p95_s: p.p95, samples_s: p.samples, output_bytes }
}

fn tree_source(tree: &Path) -> String {
    std::fs::read_to_string(tree.join(".tree-source")).map_or_else(|_| "unknown".into(), |s| s.trim().to_owned())
}

fn machine() -> Machine {
    Machine {
        cores: default_threads(),
        cpu: host::cpu_model(),
        mem_total_mib: host::mem_total_mib(),
        kernel: host::kernel(),
        tar: host::first_line_of("tar"),
        gzip: host::first_line_of("gzip"),
        load_before: String::new(),
        load_after: host::load_average(),
        other_cpu_s: 0.0,
    }
}

fn print_table(r: &Report) {
    let mark = |met: bool| if met { "ok" } else { "MISSED" };
    let t = &r.tree;
    println!(
        "tree: {} files, {} dirs, {} symlinks, {:.1} MB ({})",
        t.shape.files, t.shape.dirs, t.shape.symlinks, t.file_mb, t.source
    );
    let m = &r.machine;
    println!("machine: {} cores, {}; {} runs, {} threads", m.cores, m.cpu, r.runs, r.threads);
    let (other, before, after) = (m.other_cpu_s, &m.load_before, &m.load_after);
    println!("other processes used {other:.1} CPU s during the run (load {before} -> {after})");
    println!("{:<28} {:>10} {:>10} {:>12} {:>14}", "", "p50", "p95", "MB/s", "output bytes");
    for (name, x) in [("aether pack", &r.aether_pack), ("tar | gzip -6 (reference)", &r.tar_gzip)] {
        println!("{name:<28} {:>9.3}s {:>9.3}s {:>12.1} {:>14}", x.p50_s, x.p95_s, x.throughput_mb_s, x.output_bytes);
    }
    let (tr, sr, rss) = (&r.time_ratio, &r.size_ratio, &r.peak_rss);
    println!("time ratio (aether/tar p50)  {:.3}  target <= {}  {}", tr.value, tr.target_max, mark(tr.met));
    println!("size ratio (aether/gzip -6)  {:.4}  target <= {}  {}", sr.value, sr.target_max, mark(sr.met));
    let n = rss.samples_mib.len();
    println!(
        "peak RSS, worst of {n} packs   {:.1} MiB (p50 {:.1})  target < {} MiB  {}",
        rss.mib,
        rss.p50_mib,
        rss.target_max_mib,
        mark(rss.met)
    );
    let d = &r.determinism;
    println!("identical bytes, threads {DETERMINISM_THREADS:?} and every run: {}  {}", d.met, mark(d.met));
    match (&r.help.p50_ms, &r.help.p95_ms) {
        (Some(p50), Some(p95)) => {
            let met = r.help.met.unwrap_or(false);
            println!(
                "aether --help                p50 {p50:.2} ms, p95 {p95:.2} ms  target < {} ms  {}",
                r.help.target_max_ms,
                mark(met)
            );
        }
        _ => println!("aether --help                not measured: {}", r.help.note.as_deref().unwrap_or("")),
    }
}
