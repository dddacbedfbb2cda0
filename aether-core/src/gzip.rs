//! Deterministic, parallel gzip.
//!
//! Compression is the slowest step of packing by an order of magnitude, so the stream is cut into
//! fixed-size blocks that are deflated on several threads and stitched into one gzip member (the
//! approach pigz takes). Each block is primed with the last 32 KiB of the block before it and ends
//! with a sync flush, so the ratio matches a single-threaded stream. Block boundaries depend only
//! on the input bytes, never on the thread count, so the output is byte-identical whether one
//! thread or sixteen do the work.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};

/// Input bytes per independently compressed block.
pub const BLOCK_SIZE: usize = 1 << 20;
/// The deflate window: how much of the previous block primes the next one.
const DICTIONARY_SIZE: usize = 32 * 1024;

struct Job {
    seq: u64,
    dictionary: Vec<u8>,
    data: Vec<u8>,
    last: bool,
}

struct Done {
    seq: u64,
    result: io::Result<(Vec<u8>, crc32fast::Hasher)>,
}

struct Workers {
    jobs: Option<SyncSender<Job>>,
    done: Receiver<Done>,
    handles: Vec<JoinHandle<()>>,
}

/// A `Write` that gzips what it receives, compressing blocks on `threads` threads.
///
/// Call [`ParallelGzipWriter::finish`]; dropping it without finishing leaves a truncated stream.
pub struct ParallelGzipWriter<W: Write> {
    inner: W,
    level: u32,
    buffer: Vec<u8>,
    dictionary: Vec<u8>,
    crc: crc32fast::Hasher,
    total_in: u64,
    workers: Option<Workers>,
    max_in_flight: u64,
    next_submit: u64,
    next_write: u64,
    ready: BTreeMap<u64, (Vec<u8>, crc32fast::Hasher)>,
}

impl<W: Write> std::fmt::Debug for ParallelGzipWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParallelGzipWriter")
            .field("level", &self.level)
            .field("total_in", &self.total_in)
            .finish_non_exhaustive()
    }
}

impl<W: Write> ParallelGzipWriter<W> {
    /// Writes the gzip header at once: mtime 0, no file name, OS "Unix", as `gzip -n` does.
    pub fn new(mut inner: W, level: u32, threads: usize) -> io::Result<Self> {
        let level = level.min(9);
        let extra_flags = match level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        inner.write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, extra_flags, 3])?;
        let workers = (threads > 1).then(|| spawn_workers(threads, level));
        Ok(Self {
            inner,
            level,
            buffer: Vec::with_capacity(BLOCK_SIZE),
            dictionary: Vec::new(),
            crc: crc32fast::Hasher::new(),
            total_in: 0,
            workers,
            // Two blocks per thread keep every thread busy while bounding memory.
            max_in_flight: 2 * threads.max(1) as u64,
            next_submit: 0,
            next_write: 0,
            ready: BTreeMap::new(),
        })
    }

    /// Compresses what is buffered, writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.submit(true)?;
        while self.next_write < self.next_submit {
            self.wait_for_one()?;
        }
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        // ISIZE is the input size modulo 2^32, as RFC 1952 says.
        let isize = (self.total_in & 0xffff_ffff) as u32;
        self.inner.write_all(&crc.to_le_bytes())?;
        self.inner.write_all(&isize.to_le_bytes())?;
        self.inner.flush()?;
        if let Some(mut workers) = self.workers.take() {
            drop(workers.jobs.take());
            for handle in workers.handles.drain(..) {
                let _ = handle.join();
            }
        }
        // `Drop` is not implemented, so moving out of `self` is allowed.
        Ok(self.inner)
    }

    fn submit(&mut self, last: bool) -> io::Result<()> {
        let data = std::mem::replace(&mut self.buffer, Vec::with_capacity(BLOCK_SIZE));
        let dictionary = std::mem::take(&mut self.dictionary);
        if !last {
            let tail = data.len().saturating_sub(DICTIONARY_SIZE);
            self.dictionary = data[tail..].to_vec();
        }
        self.total_in += data.len() as u64;
        let job = Job { seq: self.next_submit, dictionary, data, last };
        self.next_submit += 1;
        match self.workers.as_ref().and_then(|w| w.jobs.as_ref()) {
            Some(jobs) => {
                jobs.send(job).map_err(|_| io::Error::other("gzip worker stopped"))?;
                while self.next_submit - self.next_write >= self.max_in_flight {
                    self.wait_for_one()?;
                }
                self.write_ready()
            }
            None => {
                let result = compress_block(self.level, &job)?;
                self.ready.insert(job.seq, result);
                self.write_ready()
            }
        }
    }

    fn wait_for_one(&mut self) -> io::Result<()> {
        if let Some(workers) = &self.workers {
            let done = workers.done.recv().map_err(|_| io::Error::other("gzip worker stopped"))?;
            self.ready.insert(done.seq, done.result?);
        }
        self.write_ready()
    }

    fn write_ready(&mut self) -> io::Result<()> {
        while let Some((compressed, crc)) = self.ready.remove(&self.next_write) {
            self.inner.write_all(&compressed)?;
            self.crc.combine(&crc);
            self.next_write += 1;
        }
        Ok(())
    }
}

impl<W: Write> Write for ParallelGzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK_SIZE - self.buffer.len();
        let take = room.min(buf.len());
        self.buffer.extend_from_slice(&buf[..take]);
        if self.buffer.len() == BLOCK_SIZE {
            self.submit(false)?;
        }
        Ok(take)
    }

    /// Flushing cannot emit a partial block without changing the output, so it only flushes
    /// what is already compressed.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn spawn_workers(threads: usize, level: u32) -> Workers {
    let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(threads);
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    let handles = (0..threads)
        .map(|_| {
            let jobs_rx = Arc::clone(&jobs_rx);
            let done_tx = done_tx.clone();
            std::thread::spawn(move || {
                loop {
                    let job = match jobs_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let result = compress_block(level, &job);
                    if done_tx.send(Done { seq: job.seq, result }).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    Workers { jobs: Some(jobs_tx), done: done_rx, handles }
}

/// Raw-deflates one block. Non-final blocks end with a sync flush so they end on a byte
/// boundary and can be concatenated; the final block sets BFINAL.
fn compress_block(level: u32, job: &Job) -> io::Result<(Vec<u8>, crc32fast::Hasher)> {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&job.data);
    let mut compress = Compress::new(Compression::new(level), false);
    if !job.dictionary.is_empty() {
        compress.set_dictionary(&job.dictionary).map_err(io::Error::other)?;
    }
    let flush = if job.last { FlushCompress::Finish } else { FlushCompress::Sync };
    let mut out = Vec::with_capacity(job.data.len() / 2 + 1024);
    loop {
        if out.len() == out.capacity() {
            out.reserve(64 * 1024);
        }
        let consumed = usize::try_from(compress.total_in()).map_err(io::Error::other)?;
        let status = compress.compress_vec(&job.data[consumed..], &mut out, flush).map_err(io::Error::other)?;
        let all_in = compress.total_in() == job.data.len() as u64;
        match status {
            Status::StreamEnd => break,
            // A sync flush is complete once all input is consumed and output space was left over.
            Status::Ok | Status::BufError if !job.last && all_in && out.len() < out.capacity() => {
                break;
            }
            Status::Ok | Status::BufError => {}
        }
    }
    Ok((out, crc))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gzip(data: &[u8], threads: usize) -> Vec<u8> {
        let mut w = ParallelGzipWriter::new(Vec::new(), 6, threads).unwrap();
        for chunk in data.chunks(70_001) {
            w.write_all(chunk).unwrap();
        }
        w.finish().unwrap()
    }

    fn gunzip(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data).read_to_end(&mut out).unwrap();
        out
    }

    fn sample(len: usize) -> Vec<u8> {
        // Compressible but not trivial: text-like with a slowly changing pattern.
        (0..len).map(|i| b"abcdefghij klmnop\n"[(i * 7 + i / 1000) % 18]).collect()
    }

    #[test]
    fn round_trips_across_block_boundaries() {
        for len in [0, 1, BLOCK_SIZE - 1, BLOCK_SIZE, BLOCK_SIZE + 1, 3 * BLOCK_SIZE + 17] {
            let data = sample(len);
            assert_eq!(gunzip(&gzip(&data, 2)), data, "len {len}");
        }
    }

    #[test]
    fn output_is_identical_for_any_thread_count() {
        let data = sample(5 * BLOCK_SIZE + 12_345);
        let one = gzip(&data, 1);
        for threads in [2, 3, 8] {
            assert_eq!(gzip(&data, threads), one, "threads {threads}");
        }
    }

    #[test]
    fn header_has_no_name_and_zero_mtime() {
        let out = gzip(b"hello", 1);
        assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    }

    #[test]
    fn ratio_matches_single_stream_deflate() {
        let data = sample(4 * BLOCK_SIZE);
        let mut reference = flate2::write::GzEncoder::new(Vec::new(), Compression::new(6));
        reference.write_all(&data).unwrap();
        let reference = reference.finish().unwrap();
        let ours = gzip(&data, 2);
        assert!(
            ours.len() as f64 <= reference.len() as f64 * 1.01 + 64.0,
            "ours {} vs single stream {}",
            ours.len(),
            reference.len()
        );
    }
}
