//! Facts about the machine and this process that every benchmark records next to its numbers:
//! a timing means little without the hardware, the load and the other work that shared it.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result};

/// The unit of /proc CPU times; 100 on every mainstream Linux build.
pub const USER_HZ: f64 = 100.0;

pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

pub fn cpu_model() -> String {
    field(&read("/proc/cpuinfo"), "model name")
}

pub fn mem_total_mib() -> u64 {
    let kib: u64 = field(&read("/proc/meminfo"), "MemTotal").trim_end_matches(" kB").parse().unwrap_or(0);
    kib / 1024
}

pub fn kernel() -> String {
    read("/proc/sys/kernel/osrelease").trim().to_owned()
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// The value after the colon of the first line starting with `key`.
fn field(text: &str, key: &str) -> String {
    text.lines().find(|l| l.starts_with(key)).and_then(|l| l.split(':').nth(1)).unwrap_or("").trim().to_owned()
}

/// The 1/5/15-minute load averages.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

/// The first line `tool --version` prints, or nothing when the tool is missing.
pub fn first_line_of(tool: &str) -> String {
    Command::new(tool)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_default()
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn date_utc() -> String {
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    aether_core::timestamp::rfc3339_seconds(i64::try_from(secs).unwrap_or(i64::MAX)).unwrap_or_default()
}

/// This process's peak resident set, from the kernel's own accounting.
pub fn vm_hwm_kib() -> Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("cannot read /proc/self/status")?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).context("no VmHWM in /proc/self/status")?;
    let kib = line.split_whitespace().nth(1).context("malformed VmHWM line")?;
    Ok(kib.parse()?)
}

/// Busy CPU ticks of the whole machine and of this process with its waited-for children, both
/// in the kernel's USER_HZ ticks; their difference over a run is what other processes used.
pub fn cpu_ticks() -> Result<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let cpu: Vec<u64> =
        stat.lines().next().unwrap_or("").split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: everything but idle and iowait is busy.
    let busy = cpu.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, v)| v).sum();
    let own = std::fs::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which may itself contain spaces: utime, stime, cutime and
    // cstime are the 12th to 15th.
    let after_comm = own.rsplit_once(')').map_or("", |(_, rest)| rest);
    let own = after_comm.split_whitespace().skip(11).take(4).filter_map(|f| f.parse::<u64>().ok()).sum();
    Ok((busy, own))
}

/// CPU seconds the rest of the machine used between two [`cpu_ticks`] readings. Only children
/// that were waited for before `after` count as this process's own.
pub fn other_cpu_s(before: (u64, u64), after: (u64, u64)) -> f64 {
    let other = after.0.saturating_sub(before.0).saturating_sub(after.1.saturating_sub(before.1));
    other as f64 / USER_HZ
}
