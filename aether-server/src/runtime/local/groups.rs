//! The process groups this runtime started, recorded on disk so that a server that died
//! without stopping its releases (SIGKILL, the OOM killer) ends them when it starts again.
//! Otherwise they keep serving on their ports, known to nobody, while the restarted server
//! starts the same releases anew beside them.
//!
//! One file per group in `<data dir>/release-groups/`, named by the group's id and holding the
//! deployment id, written atomically right after the spawn and removed once the group is
//! stopped. Group ids are reused by the system, so a recorded group is ended only when one of
//! its live members carries the release's marker, `AETHER_DEPLOYMENT_ID=<id>`, in its
//! environment (`/proc/<pid>/environ`): an unrelated group that got the same id is left alone.
//! A server killed between the spawn and the write (microseconds) leaves its group unrecorded.

use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// The variable every release process gets, set to its deployment id. Apps may read it too
/// (like Heroku's `DYNO`); a deployment's own variables cannot override it.
pub const MARKER: &str = "AETHER_DEPLOYMENT_ID";
/// How long an orphaned group that ignores SIGKILL (uninterruptible I/O) is waited for.
const KILL_WAIT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub(super) struct GroupRecords {
    dir: PathBuf,
}

impl GroupRecords {
    pub(super) fn new(dir: PathBuf) -> io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// Records a started group. Written to a temporary name and renamed, so a crash never
    /// leaves a half-written record.
    pub(super) fn record(&self, pgid: Pid, deployment_id: &str) -> io::Result<()> {
        let path = self.dir.join(pgid.as_raw().to_string());
        let temporary = self.dir.join(format!(".{}.tmp", pgid.as_raw()));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(deployment_id.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, &path)
    }

    /// Forgets a group that was stopped.
    pub(super) fn forget(&self, pgid: Pid) {
        let path = self.dir.join(pgid.as_raw().to_string());
        match std::fs::remove_file(&path) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), %error, "cannot remove the record of a stopped release");
            }
            _ => {}
        }
    }

    /// Ends every recorded group that still runs and carries its marker: SIGTERM, then SIGKILL
    /// once `grace` has passed. Blocks (at most `grace` + [`KILL_WAIT`]); meant for start-up,
    /// before any release of this server runs. Returns how many groups were ended.
    pub(super) fn end_orphans(&self, grace: Duration) -> usize {
        let mut orphans = Vec::new();
        for (pgid, deployment_id) in self.recorded() {
            if carries_marker(pgid, &deployment_id) {
                tracing::warn!(pgid = pgid.as_raw(), deployment = %deployment_id, "ending a release left running by a previous server");
                signal(pgid, Signal::SIGTERM);
                orphans.push(pgid);
            } else {
                self.forget(pgid);
            }
        }
        if !wait_gone(&orphans, grace) {
            orphans.iter().for_each(|pgid| signal(*pgid, Signal::SIGKILL));
            if !wait_gone(&orphans, KILL_WAIT) {
                tracing::warn!(groups = ?orphans, "releases of a previous server did not exit after SIGKILL");
            }
        }
        orphans.iter().for_each(|pgid| self.forget(*pgid));
        orphans.len()
    }

    /// Every record as (group, deployment id); leftovers of interrupted writes are removed.
    fn recorded(&self) -> Vec<(Pid, String)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return Vec::new() };
        let mut records = Vec::new();
        for entry in entries.flatten() {
            let pgid = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()).filter(|p| *p > 1);
            match (pgid, std::fs::read_to_string(entry.path())) {
                (Some(pgid), Ok(id)) => records.push((Pid::from_raw(pgid), id)),
                _ => {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        records
    }
}

fn signal(pgid: Pid, signal: Signal) {
    match killpg(pgid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => tracing::warn!(pgid = pgid.as_raw(), %error, ?signal, "cannot signal an orphaned release"),
    }
}

fn wait_gone(groups: &[Pid], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if groups.iter().all(|pgid| members(*pgid).is_empty()) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Whether a live member of the group was started for `deployment_id`.
fn carries_marker(pgid: Pid, deployment_id: &str) -> bool {
    let wanted = format!("{MARKER}={deployment_id}");
    members(pgid).into_iter().any(|pid| {
        std::fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|environ| environ.split(|b| *b == 0).any(|entry| entry == wanted.as_bytes()))
    })
}

/// The live (not zombie) members of a group, from `/proc`; empty where `/proc` is missing.
pub(super) fn members(pgid: Pid) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat"))
                .is_ok_and(|stat| runs_in_group(&stat, pgid))
        })
        .collect()
}

/// Parses `/proc/<pid>/stat`: `pid (comm) state ppid pgrp ...`, where comm may hold spaces
/// and parentheses, hence the split at the last `)`.
pub(super) fn runs_in_group(stat: &str, pgid: Pid) -> bool {
    let Some((_, fields)) = stat.rsplit_once(')') else { return false };
    let mut fields = fields.split_whitespace();
    let state = fields.next().unwrap_or("Z");
    let pgrp = fields.nth(1).and_then(|p| p.parse::<i32>().ok());
    pgrp == Some(pgid.as_raw()) && !matches!(state, "Z" | "X" | "x")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::os::unix::process::CommandExt as _;

    use super::*;

    #[test]
    fn stat_lines_parse_despite_odd_command_names() {
        let pgid = Pid::from_raw(4242);
        assert!(runs_in_group("4243 (node) S 4242 4242 4242 0 -1", pgid));
        assert!(runs_in_group("4243 (a) b (c)) R 1 4242 4242 0", pgid));
        assert!(!runs_in_group("4243 (node) Z 1 4242 4242 0", pgid));
        assert!(!runs_in_group("4243 (node) S 4242 4241 4241 0", pgid));
        assert!(!runs_in_group("garbage", pgid));
    }

    /// A recorded group whose members lack the marker (a reused group id) is never signalled.
    #[test]
    fn a_group_without_the_marker_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let records = GroupRecords::new(dir.path().to_path_buf()).unwrap();
        let mut stranger =
            std::process::Command::new("sleep").arg("30").env_remove(MARKER).process_group(0).spawn().unwrap();
        let pgid = Pid::from_raw(i32::try_from(stranger.id()).unwrap());
        records.record(pgid, "some-deployment").unwrap();
        std::fs::write(dir.path().join(".99.tmp"), "half").unwrap();
        assert_eq!(records.end_orphans(Duration::from_millis(200)), 0);
        assert!(stranger.try_wait().unwrap().is_none(), "the unmarked group still runs");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "its record and the leftover are gone");
        stranger.kill().unwrap();
        stranger.wait().unwrap();
    }

    #[test]
    fn a_marked_group_is_ended_even_when_it_ignores_sigterm() {
        let dir = tempfile::tempdir().unwrap();
        let records = GroupRecords::new(dir.path().to_path_buf()).unwrap();
        let mut orphan = std::process::Command::new("sh")
            .args(["-c", "trap '' TERM; sleep 30 & wait"])
            .env(MARKER, "dep-1")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = Pid::from_raw(i32::try_from(orphan.id()).unwrap());
        records.record(pgid, "dep-1").unwrap();
        assert_eq!(records.end_orphans(Duration::from_millis(200)), 1);
        orphan.wait().unwrap();
        assert!(members(pgid).is_empty(), "no member of the group runs");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "its record is gone");
    }
}
