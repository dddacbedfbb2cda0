//! `stream-bench`: times uploading an artifact to a real `aether-server` on loopback with the
//! SDK against `curl -T` of the same file to the same server, and records the client's peak
//! memory at each size.

mod host;
mod server;
mod stats;
mod stream_report;
mod upload;

use std::path::{Path, PathBuf};

use aether_core::api::PresignRequest;
use aether_core::wire::AppName;
use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand};
use server::LocalServer;
use stream_report::SizeSamples;
use upload::{ArtifactFile, Target, Tuning, UploadOnceArgs};

const MIB: u64 = 1024 * 1024;
const APP: &str = "bench";

#[derive(Debug, Parser)]
#[command(name = "stream-bench", about = "Benchmarks Aether's artifact upload against curl -T")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start the server, time both uploads at every size and write every number as JSON.
    Run(RunArgs),
    /// Upload one file with the SDK and print the time and this process's peak RSS as JSON.
    UploadOnce(UploadOnceArgs),
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// The release `aether-server` binary to upload to.
    #[arg(long)]
    server_bin: PathBuf,
    /// The JSON results file.
    #[arg(long)]
    out: PathBuf,
    /// Artifact sizes, in MiB.
    #[arg(long, value_delimiter = ',', default_value = "64,512")]
    sizes_mib: Vec<u64>,
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Where the files and the server's data go (a fresh directory inside it, removed at the
    /// end); on the disk a server would use, not tmpfs. Defaults to beside --out.
    #[arg(long)]
    scratch: Option<PathBuf>,
    /// Where the server keeps artifacts: `local` (its data directory) or `s3` (a real
    /// S3-compatible server, s3s-fs, started for the run on 127.0.0.1; uploads then go to it).
    #[arg(long, value_enum, default_value_t = Storage::Local)]
    storage: Storage,
    #[command(flatten)]
    tuning: Tuning,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Storage {
    Local,
    S3,
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Cmd::Run(args) => run(&args),
        Cmd::UploadOnce(args) => {
            println!("{}", serde_json::to_string(&upload::upload_once(&args)?)?);
            Ok(())
        }
    }
}

fn run(args: &RunArgs) -> Result<()> {
    anyhow::ensure!(args.runs > 0, "--runs must be at least 1");
    anyhow::ensure!(!args.sizes_mib.is_empty() && !args.sizes_mib.contains(&0), "--sizes-mib must be positive");
    let out_dir = args.out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let scratch_parent = args.scratch.clone().unwrap_or_else(|| out_dir.to_path_buf());
    std::fs::create_dir_all(&scratch_parent)?;
    let scratch = tempfile::Builder::new().prefix("stream-bench-").tempdir_in(&scratch_parent)?;

    let (load_before, ticks_before) = (host::load_average(), host::cpu_ticks()?);
    let measured = measure_all(args, scratch.path());
    // After the server has been reaped, so its CPU time counts as the benchmark's own.
    let ticks_after = host::cpu_ticks()?;
    let machine = stream_report::Machine::now(load_before, host::other_cpu_s(ticks_before, ticks_after));
    let report = stream_report::build(machine, args.server_bin.display().to_string(), args.runs, &measured?)?;
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(&args.out, serde_json::to_string_pretty(&report)? + "\n")?;
    stream_report::print_table(&report);
    println!("results: {}", args.out.display());
    Ok(())
}

/// Starts the server, then measures every size; the server is stopped before this returns.
fn measure_all(args: &RunArgs, scratch: &Path) -> Result<Vec<SizeSamples>> {
    let largest = args.sizes_mib.iter().max().copied().unwrap_or(0) * MIB;
    let data_dir = scratch.join("server");
    std::fs::create_dir_all(&data_dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    // Kept alive until the measurements end; its data lives in its own temporary directory.
    let s3 = match args.storage {
        Storage::Local => None,
        Storage::S3 => {
            let s3 = aether_server::testing::s3::TestS3::start().context("cannot start s3s-fs")?;
            runtime.block_on(s3.bucket("artifacts"));
            eprintln!("s3s-fs at {}", s3.endpoint);
            Some(s3)
        }
    };
    let env = s3.as_ref().map(|s3| s3.env("artifacts")).unwrap_or_default();
    let mut server = LocalServer::start(&args.server_bin, &data_dir, largest.saturating_mul(2), &env)?;
    let client = server.client()?;
    let app = AppName::parse(APP)?;
    runtime.block_on(async {
        server.wait_healthy(&client).await?;
        client.create_app(&app).await.context("cannot create the app")
    })?;
    eprintln!(
        "aether-server at {}; a warm-up, then {} runs per size, alternating which upload goes first",
        server.url, args.runs
    );
    let exe = std::env::current_exe()?;
    let target = Target { api: &server.url, token: &server.token, app: APP };
    let mut measured = Vec::new();
    for &size_mib in &args.sizes_mib {
        let path = scratch.join(format!("artifact-{size_mib}mib.bin"));
        let file = ArtifactFile::create(path, size_mib * MIB)?;
        let samples = measure_size(args, &file, |tool, digest| match tool {
            Tool::Curl => {
                let request =
                    PresignRequest { app_name: app.clone(), digest: digest.clone(), size_bytes: file.size_bytes };
                let presigned = runtime.block_on(client.presign(&request))?;
                Ok(Sample::Curl(upload::curl_put(&file, &presigned)?))
            }
            Tool::Aether => Ok(Sample::Aether(upload::upload_in_child(&exe, target, &file, digest, &args.tuning)?)),
        });
        let _ = std::fs::remove_file(&file.path);
        measured.push(samples.with_context(|| format!("at {size_mib} MiB; server log:\n{}", server.log_tail()))?);
    }
    drop(server);
    drop(s3);
    Ok(measured)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tool {
    Curl,
    Aether,
}

#[derive(Debug)]
enum Sample {
    Curl(f64),
    Aether(upload::UploadOnce),
}

/// `args.runs` uploads of each tool after a warm-up, alternating which goes first so neither
/// always finds the server, the page cache or the disk in the state the other left. Every
/// upload gets its own digest; hashing the file for it happens before the clock starts.
fn measure_size(
    args: &RunArgs,
    file: &ArtifactFile,
    mut upload: impl FnMut(Tool, &aether_core::wire::Digest) -> Result<Sample>,
) -> Result<SizeSamples> {
    let mut samples = SizeSamples { size_bytes: file.size_bytes, curl_s: vec![], aether: vec![] };
    let size_mib = file.size_bytes / MIB;
    // Run 0 warms up both paths (the server's directories and database, the page cache) and
    // is not recorded: the first upload after a start is slower for reasons neither tool owns.
    for run in 0..=args.runs {
        let order = if run % 2 == 0 { [Tool::Aether, Tool::Curl] } else { [Tool::Curl, Tool::Aether] };
        for tool in order {
            let name = if tool == Tool::Curl { "curl" } else { "aether" };
            let digest = file.retag(&format!("{size_mib}m{run}{name}"))?;
            let sample = upload(tool, &digest)?;
            if run == 0 {
                continue;
            }
            match sample {
                Sample::Curl(seconds) => {
                    eprintln!("  {size_mib} MiB run {run}: curl   {seconds:.3} s");
                    samples.curl_s.push(seconds);
                }
                Sample::Aether(once) => {
                    let (s, rss, mode) = (once.seconds, once.peak_rss_mib, &once.mode);
                    eprintln!("  {size_mib} MiB run {run}: aether {s:.3} s ({mode}), peak RSS {rss:.1} MiB");
                    samples.aether.push(once);
                }
            }
        }
    }
    Ok(samples)
}
