//! The two uploads being compared, on the same file and server: `curl -T` to a presigned URL
//! (the reference: one PUT, nothing else) and the SDK's whole `upload_artifact`, run in a
//! child process so that the peak RSS it reports is the client's alone.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use aether_core::api::PresignResponse;
use aether_core::digest::HashingReader;
use aether_core::wire::{AppName, Digest};
use aether_sdk::client::Client;
use aether_sdk::upload::{UploadRequest, upload_artifact};
use anyhow::{Context as _, Result, bail};
use serde::{Deserialize, Serialize};

use crate::host;
use crate::stats::timed;

const CHUNK: usize = 1024 * 1024;
/// Bytes at the start of the file rewritten before every upload, so each one has a new digest.
const TAG_BYTES: usize = 16;

/// A file of incompressible bytes whose first [`TAG_BYTES`] are replaced per measurement: the
/// server skips a digest it already holds, so uploading the same bytes twice would measure
/// nothing, while writing a whole new file for each upload would add its writeback to the
/// timings.
#[derive(Debug)]
pub struct ArtifactFile {
    pub path: PathBuf,
    pub size_bytes: u64,
}

impl ArtifactFile {
    /// Writes `size_bytes` of xorshift output to `path`.
    pub fn create(path: PathBuf, size_bytes: u64) -> Result<Self> {
        let file = File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
        let mut writer = BufWriter::with_capacity(CHUNK, file);
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15 ^ size_bytes;
        let mut chunk = vec![0u8; CHUNK];
        let mut left = size_bytes;
        while left > 0 {
            for word in chunk.chunks_exact_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                word.copy_from_slice(&state.to_le_bytes());
            }
            let n = usize::try_from(left).map_or(CHUNK, |left| left.min(CHUNK));
            writer.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        // On disk before the first upload, so the kernel's writeback of these bytes does not
        // compete with whichever upload happens to run first.
        writer.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(Self { path, size_bytes })
    }

    /// Stamps `tag` over the first bytes and returns the new SHA-256 of the whole file.
    pub fn retag(&self, tag: &str) -> Result<Digest> {
        let mut stamp = [b'-'; TAG_BYTES];
        let len = tag.len().min(TAG_BYTES);
        stamp[..len].copy_from_slice(&tag.as_bytes()[..len]);
        // Sizes are whole MiB, so the stamp always fits.
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        file.write_all(&stamp)?;
        file.seek(SeekFrom::Start(0))?;
        let mut reader = HashingReader::new(file);
        let mut buf = vec![0u8; CHUNK];
        while reader.read(&mut buf)? > 0 {}
        let (hex, bytes) = reader.finish();
        if bytes != self.size_bytes {
            bail!("{} changed size: {bytes} bytes, expected {}", self.path.display(), self.size_bytes);
        }
        Ok(Digest::parse(&hex)?)
    }
}

/// `curl -T` of the file to the presigned URL with the headers the server asked for; returns
/// the wall-clock seconds from spawning curl to its exit.
pub fn curl_put(file: &ArtifactFile, presigned: &PresignResponse) -> Result<f64> {
    if !presigned.method.eq_ignore_ascii_case("PUT") {
        bail!("the server answered the presign with method {:?}, not PUT", presigned.method);
    }
    let mut command = Command::new("curl");
    command.args(["-sS", "--fail", "--noproxy", "*", "-o", "/dev/null", "-X", "PUT", "-T"]).arg(&file.path);
    for (name, value) in &presigned.headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    command.arg(&presigned.upload_url).stdin(Stdio::null()).stderr(Stdio::inherit());
    let (status, seconds) = timed(|| command.status().context("cannot run curl"))?;
    if !status.success() {
        bail!("curl -T failed: {status}");
    }
    Ok(seconds)
}

/// What `upload-once` measured, printed as one JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadOnce {
    pub seconds: f64,
    /// `VmHWM` of the uploading process, in MiB.
    pub peak_rss_mib: f64,
    pub uploaded_bytes: u64,
    /// `single` (one streaming PUT) or `multipart`, as the SDK chose with these settings.
    pub mode: String,
    pub multipart_threshold_bytes: u64,
    pub part_size_bytes: u64,
    pub max_concurrent_parts: usize,
}

/// Where and what `upload-once` uploads.
#[derive(Debug, Clone, clap::Args)]
pub struct UploadOnceArgs {
    #[arg(long)]
    pub api: String,
    #[arg(long)]
    pub token: String,
    #[arg(long)]
    pub app: String,
    #[arg(long)]
    pub file: PathBuf,
    #[arg(long)]
    pub digest: String,
    #[arg(long)]
    pub size: u64,
    #[command(flatten)]
    pub tuning: Tuning,
}

/// The SDK's multipart settings; unset means the SDK's defaults, which is what users get.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Tuning {
    /// Files strictly larger than this go up in parts.
    #[arg(long)]
    pub multipart_threshold_bytes: Option<u64>,
    #[arg(long)]
    pub part_size_bytes: Option<u64>,
}

/// One SDK upload in this process: the body of the `upload-once` child. The runtime has two
/// workers, as the CLI's does.
pub fn upload_once(args: &UploadOnceArgs) -> Result<UploadOnce> {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut config = aether_sdk::client::ClientConfig::new(&args.api);
    config.token = Some(args.token.clone());
    let client = Client::new(config)?;
    let mut request =
        UploadRequest::new(AppName::parse(&args.app)?, &args.file, Digest::parse(&args.digest)?, args.size);
    if let Some(threshold) = args.tuning.multipart_threshold_bytes {
        request.multipart_threshold_bytes = threshold;
    }
    if let Some(part_size) = args.tuning.part_size_bytes.filter(|n| *n > 0) {
        request.part_size_bytes = part_size;
    }
    let (outcome, seconds) = timed(|| Ok(runtime.block_on(upload_artifact(&client, &request, |_| {}))?))?;
    if outcome.skipped || outcome.uploaded_bytes != args.size {
        bail!("the server already had {}; nothing was measured", args.digest);
    }
    let multipart = request.size_bytes > request.multipart_threshold_bytes;
    Ok(UploadOnce {
        seconds,
        peak_rss_mib: host::vm_hwm_kib()? as f64 / 1024.0,
        uploaded_bytes: outcome.uploaded_bytes,
        mode: if multipart { "multipart" } else { "single" }.to_owned(),
        multipart_threshold_bytes: request.multipart_threshold_bytes,
        part_size_bytes: request.part_size_bytes,
        max_concurrent_parts: request.max_concurrent_parts,
    })
}

/// Who to upload as, for [`upload_in_child`].
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub api: &'a str,
    pub token: &'a str,
    pub app: &'a str,
}

/// Runs `upload-once` in a fresh child of `self_exe`, so the peak RSS belongs to one upload.
pub fn upload_in_child(
    self_exe: &Path,
    target: Target<'_>,
    file: &ArtifactFile,
    digest: &Digest,
    tuning: &Tuning,
) -> Result<UploadOnce> {
    let mut command = Command::new(self_exe);
    command.args(["upload-once", "--api", target.api, "--token", target.token, "--app", target.app]);
    command.arg("--file").arg(&file.path).args(["--digest", digest.as_str(), "--size", &file.size_bytes.to_string()]);
    if let Some(threshold) = tuning.multipart_threshold_bytes {
        command.args(["--multipart-threshold-bytes", &threshold.to_string()]);
    }
    if let Some(part_size) = tuning.part_size_bytes {
        command.args(["--part-size-bytes", &part_size.to_string()]);
    }
    // Loopback never goes through a proxy, as with curl's `--noproxy '*'`.
    command.env("NO_PROXY", "*").env("no_proxy", "*");
    let output = command.stdin(Stdio::null()).stderr(Stdio::inherit()).output().context("cannot run upload-once")?;
    if !output.status.success() {
        bail!("upload-once failed: {}", output.status);
    }
    serde_json::from_slice(&output.stdout).context("upload-once printed no result")
}
