//! Deterministic, parallel gzip.
//!
//! Compression is the slowest step of packing by an order of magnitude, so the stream is cut into
//! blocks that are deflated on several threads and stitched into one gzip member (the approach
//! pigz takes). Each block is primed with the last 32 KiB of the block before it and ends with a
//! sync flush, so the ratio matches a single-threaded stream; an empty final block ends the
//! stream. Block boundaries depend only on the input bytes, never on the thread count, so the
//! output is byte-identical whether one thread or sixteen do the work.
//!
//! The caller chooses where blocks end ([`ParallelGzipWriter::offer_cut`], e.g. at tar entries
//! picked by their name), so that a change to one file changes the compressed blocks around it
//! and not every block after it; a block reaching [`MAX_BLOCK_SIZE`] is cut regardless. Each
//! compressed block depends only on its own input and the 32 KiB before it, and
//! [`ParallelGzipWriter::finish`] lists where each one lies in the output (the block index).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use flate2::{Compress, Compression, FlushCompress, Status};
use sha2::Digest as _;

/// Input bytes a block holds at most: where no cut is offered (inside a large file), blocks are
/// cut at this size.
pub const MAX_BLOCK_SIZE: usize = 2 << 20;
/// Input bytes a block holds at least before an offered cut is taken.
pub const MIN_BLOCK_SIZE: usize = 256 << 10;
/// The empty final deflate block (BFINAL, fixed Huffman, end of block) that follows the last
/// sync-flushed block, so that every block, the last included, is compressed alike.
const FINAL_BLOCK: [u8; 2] = [0x03, 0x00];
/// Blocks the feeding thread may run ahead of the compressors, beyond one per thread. Feeding
/// is uneven (a run of tiny files costs a system call or three each, a large file is one long
/// read), so a small queue left the compressors idle in the slow stretches while they could
/// not absorb the fast ones. Eight blocks (about 10 MiB with their output) took about 6% off a
/// pack of a real `node_modules` on two cores; the memory does not grow with the input.
const RUN_AHEAD_BLOCKS: u64 = 8;
/// The deflate window: how much of the previous block primes the next one.
const DICTIONARY_SIZE: usize = 32 * 1024;

struct Job {
    seq: u64,
    dictionary: Vec<u8>,
    /// Always `MAX_BLOCK_SIZE` long; only `data[..len]` belongs to the block.
    data: Vec<u8>,
    len: usize,
}

/// One compressed block: its bytes, the CRC-32 and length of its input, and the SHA-256 of
/// its bytes.
struct Compressed {
    bytes: Vec<u8>,
    crc: crc32fast::Hasher,
    input_length: u64,
    sha256: [u8; 32],
}

struct Done {
    seq: u64,
    result: io::Result<Compressed>,
}

/// Where one compressed block lies in the gzip file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockEntry {
    /// Byte offset in the `.tar.gz` file (the 10-byte gzip header comes first).
    pub offset: u64,
    /// Compressed bytes.
    pub length: u64,
    /// SHA-256 of the compressed bytes, lowercase hex.
    pub sha256: String,
    /// Bytes of the tar stream the block holds.
    pub input_length: u64,
}

struct Workers {
    jobs: SyncSender<Job>,
    done: Receiver<Done>,
    handles: Vec<JoinHandle<()>>,
}

/// Buffers handed back and forth between the feeding thread and the compressors, so a pack
/// touches a handful of megabytes of fresh memory instead of allocating (and faulting in) two
/// new buffers per block.
#[derive(Default)]
struct BufferPool {
    blocks: Mutex<Vec<Vec<u8>>>,
    spare: Mutex<Vec<Vec<u8>>>,
}

impl BufferPool {
    fn take_block(&self) -> Vec<u8> {
        self.blocks.lock().ok().and_then(|mut b| b.pop()).unwrap_or_else(|| vec![0; MAX_BLOCK_SIZE])
    }

    fn take_spare(&self) -> Vec<u8> {
        let mut buffer = self.spare.lock().ok().and_then(|mut s| s.pop()).unwrap_or_default();
        buffer.clear();
        buffer
    }

    fn give_block(&self, block: Vec<u8>) {
        if let Ok(mut blocks) = self.blocks.lock() {
            blocks.push(block);
        }
    }

    fn give_spare(&self, buffer: Vec<u8>) {
        if let Ok(mut spare) = self.spare.lock() {
            spare.push(buffer);
        }
    }
}

/// Compressed blocks kept from earlier packs, so that a repack after a small change compresses
/// only the blocks that changed. Implementations decide where they live and what they keep;
/// a block missing, evicted or unreadable is simply compressed again.
pub trait BlockCache: Send + Sync {
    /// The compressed bytes stored under `key`, if any. An implementation returns only bytes it
    /// can vouch for (e.g. checked against a hash it stored with them): they go into the
    /// artifact as they are.
    fn get(&self, key: &BlockKey) -> Option<Vec<u8>>;
    /// Keeps `compressed` under `key`; failing to is not an error of the pack.
    fn put(&self, key: &BlockKey, compressed: &[u8]);
}

/// What a compressed block's bytes depend on, hashed: the format version, the level, the
/// 32 KiB dictionary and the block's input. Raising [`BLOCK_FORMAT`] retires every cached block
/// (a compressor upgrade that changes its output must raise it: a test pins one block's bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlockKey(pub [u8; 32]);

/// Version of what compressing a block means; part of every [`BlockKey`].
pub const BLOCK_FORMAT: &str = "aether-block-v1 zlib-rs sync-flush";

impl BlockKey {
    fn of(level: u32, dictionary: &[u8], data: &[u8]) -> Self {
        let mut hasher = sha2::Sha256::new();
        hasher.update(BLOCK_FORMAT.as_bytes());
        hasher.update(level.to_le_bytes());
        hasher.update((dictionary.len() as u64).to_le_bytes());
        hasher.update(dictionary);
        hasher.update((data.len() as u64).to_le_bytes());
        hasher.update(data);
        Self(hasher.finalize().into())
    }

    /// Lowercase hex, e.g. for a file name.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

/// Why [`ParallelGzipWriter::read_from`] failed: reading the source or writing the output.
#[derive(Debug)]
pub enum FillError {
    Read(io::Error),
    Write(io::Error),
}

/// A `Write` that gzips what it receives, compressing blocks on `threads` threads.
///
/// Call [`ParallelGzipWriter::finish`]; dropping it without finishing leaves a truncated stream.
pub struct ParallelGzipWriter<W: Write> {
    inner: W,
    level: u32,
    /// Always `MAX_BLOCK_SIZE` long, so readers can fill it in place; `filled` bytes are input.
    block: Vec<u8>,
    filled: usize,
    dictionary: Vec<u8>,
    crc: crc32fast::Hasher,
    total_in: u64,
    workers: Workers,
    pool: Arc<BufferPool>,
    max_in_flight: u64,
    next_submit: u64,
    next_write: u64,
    /// Compressed blocks waiting for those before them.
    ready: BTreeMap<u64, Compressed>,
    /// Bytes written so far, the header included: the offset of the next block.
    written: u64,
    blocks: Vec<BlockEntry>,
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
    pub fn new(inner: W, level: u32, threads: usize) -> io::Result<Self> {
        Self::with_cache(inner, level, threads, None)
    }

    /// Like [`ParallelGzipWriter::new`], taking blocks compressed before from `cache` and
    /// keeping the ones it compresses there. The output is the same bytes either way.
    pub fn with_cache(
        mut inner: W,
        level: u32,
        threads: usize,
        cache: Option<Arc<dyn BlockCache>>,
    ) -> io::Result<Self> {
        let level = level.min(9);
        let extra_flags = match level {
            9 => 2,
            1 => 4,
            _ => 0,
        };
        let header: [u8; HEADER_LEN as usize] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, extra_flags, 3];
        inner.write_all(&header)?;
        let pool = Arc::new(BufferPool::default());
        // Even one thread compresses beside the caller, not on its thread: feeding and compressing
        // overlap, and a deflate state allocated per block never lands between the caller's
        // long-lived allocations (interleaved there, they fragmented the heap to twice the size).
        let workers = spawn_workers(threads.max(1), level, &pool, cache);
        Ok(Self {
            inner,
            level,
            block: pool.take_block(),
            filled: 0,
            dictionary: Vec::with_capacity(DICTIONARY_SIZE),
            crc: crc32fast::Hasher::new(),
            total_in: 0,
            workers,
            pool,
            max_in_flight: in_flight_limit(threads),
            next_submit: 0,
            next_write: 0,
            ready: BTreeMap::new(),
            written: HEADER_LEN,
            blocks: Vec::new(),
        })
    }

    /// A place where the block being filled may end (e.g. the start of a tar entry the caller
    /// picked by its name). The block ends here if it holds at least [`MIN_BLOCK_SIZE`] bytes.
    pub fn offer_cut(&mut self) -> io::Result<()> {
        if self.filled >= MIN_BLOCK_SIZE { self.submit() } else { Ok(()) }
    }

    /// Reads up to `limit` bytes from `reader` straight into the block being filled, so file
    /// contents are copied once (by the kernel) instead of through intermediate buffers.
    /// `inspect` sees every chunk before it is compressed. Returns how many bytes were read;
    /// fewer than `limit` means the reader reached its end.
    pub fn read_from(
        &mut self,
        reader: &mut dyn Read,
        limit: u64,
        inspect: &mut dyn FnMut(&[u8]),
    ) -> Result<u64, FillError> {
        let mut done = 0u64;
        while done < limit {
            if self.filled == MAX_BLOCK_SIZE {
                self.submit().map_err(FillError::Write)?;
            }
            let room = (MAX_BLOCK_SIZE - self.filled).min(usize::try_from(limit - done).unwrap_or(usize::MAX));
            let target = &mut self.block[self.filled..self.filled + room];
            let n = match reader.read(target) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(FillError::Read(e)),
            };
            inspect(&target[..n]);
            self.filled += n;
            done += n as u64;
        }
        if self.filled == MAX_BLOCK_SIZE {
            self.submit().map_err(FillError::Write)?;
        }
        Ok(done)
    }

    /// Compresses what is buffered, writes the final block and the trailer, and returns the
    /// inner writer and the block index.
    pub fn finish(mut self) -> io::Result<(W, Vec<BlockEntry>)> {
        if self.filled > 0 {
            self.submit()?;
        }
        while self.next_write < self.next_submit {
            self.wait_for_one()?;
        }
        let crc = std::mem::replace(&mut self.crc, crc32fast::Hasher::new()).finalize();
        // ISIZE is the input size modulo 2^32, as RFC 1952 says.
        let isize = (self.total_in & 0xffff_ffff) as u32;
        self.inner.write_all(&FINAL_BLOCK)?;
        self.inner.write_all(&crc.to_le_bytes())?;
        self.inner.write_all(&isize.to_le_bytes())?;
        self.inner.flush()?;
        // `Drop` is not implemented, so moving out of `self` is allowed. Closing the job
        // channel ends the workers.
        let Workers { jobs, handles, .. } = self.workers;
        drop(jobs);
        for handle in handles {
            let _ = handle.join();
        }
        Ok((self.inner, self.blocks))
    }

    fn submit(&mut self) -> io::Result<()> {
        let data = std::mem::replace(&mut self.block, self.pool.take_block());
        let len = std::mem::take(&mut self.filled);
        let dictionary = std::mem::replace(&mut self.dictionary, self.pool.take_spare());
        let tail = len.saturating_sub(DICTIONARY_SIZE);
        self.dictionary.extend_from_slice(&data[tail..len]);
        self.total_in += len as u64;
        let job = Job { seq: self.next_submit, dictionary, data, len };
        self.next_submit += 1;
        self.workers.jobs.send(job).map_err(|_| stopped())?;
        while self.next_submit - self.next_write >= self.max_in_flight {
            self.wait_for_one()?;
        }
        self.write_ready()
    }

    fn wait_for_one(&mut self) -> io::Result<()> {
        let done = self.workers.done.recv().map_err(|_| stopped())?;
        self.ready.insert(done.seq, done.result?);
        self.write_ready()
    }

    fn write_ready(&mut self) -> io::Result<()> {
        while let Some(block) = self.ready.remove(&self.next_write) {
            self.inner.write_all(&block.bytes)?;
            let length = block.bytes.len() as u64;
            self.blocks.push(BlockEntry {
                offset: self.written,
                length,
                sha256: hex::encode(block.sha256),
                input_length: block.input_length,
            });
            self.written += length;
            self.pool.give_spare(block.bytes);
            self.crc.combine(&block.crc);
            self.next_write += 1;
        }
        Ok(())
    }
}

impl<W: Write> Write for ParallelGzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let take = (MAX_BLOCK_SIZE - self.filled).min(buf.len());
        self.block[self.filled..self.filled + take].copy_from_slice(&buf[..take]);
        self.filled += take;
        if self.filled == MAX_BLOCK_SIZE {
            self.submit()?;
        }
        Ok(take)
    }

    /// Flushing cannot emit a partial block without changing the output, so it only flushes
    /// what is already compressed.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// The gzip header's length: the offset of the first block.
const HEADER_LEN: u64 = 10;

/// Blocks handed to the compressors and not yet written out, at most.
fn in_flight_limit(threads: usize) -> u64 {
    threads.max(1) as u64 + RUN_AHEAD_BLOCKS
}

fn stopped() -> io::Error {
    io::Error::other("gzip worker stopped")
}

fn spawn_workers(threads: usize, level: u32, pool: &Arc<BufferPool>, cache: Option<Arc<dyn BlockCache>>) -> Workers {
    // Room for every block in flight, so handing one over never waits: only the in-flight
    // limit holds the feeding thread back.
    let capacity = usize::try_from(in_flight_limit(threads)).unwrap_or(usize::MAX);
    let (jobs_tx, jobs_rx) = mpsc::sync_channel::<Job>(capacity);
    let (done_tx, done_rx) = mpsc::channel::<Done>();
    let jobs_rx = Arc::new(Mutex::new(jobs_rx));
    let handles = (0..threads)
        .map(|_| {
            let jobs_rx = Arc::clone(&jobs_rx);
            let done_tx = done_tx.clone();
            let pool = Arc::clone(pool);
            let cache = cache.clone();
            std::thread::spawn(move || {
                let mut compressor = BlockCompressor::new(level, cache);
                loop {
                    let job = match jobs_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = job else { return };
                    let result = compressor.compress(&job, pool.take_spare());
                    pool.give_block(job.data);
                    pool.give_spare(job.dictionary);
                    if done_tx.send(Done { seq: job.seq, result }).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    Workers { jobs: jobs_tx, done: done_rx, handles }
}

/// Compresses blocks. A fresh deflate state per block: a reset state carries over enough of
/// the previous block (in zlib-rs) to make the output depend on which thread got which block.
struct BlockCompressor {
    level: u32,
    cache: Option<Arc<dyn BlockCache>>,
}

impl BlockCompressor {
    fn new(level: u32, cache: Option<Arc<dyn BlockCache>>) -> Self {
        Self { level, cache }
    }

    /// The block compressed, from the cache when it holds it.
    fn compress(&mut self, job: &Job, out: Vec<u8>) -> io::Result<Compressed> {
        let Some(cache) = self.cache.clone() else { return self.deflate(job, out) };
        let data = &job.data[..job.len];
        let key = BlockKey::of(self.level, &job.dictionary, data);
        if let Some(bytes) = cache.get(&key) {
            let mut crc = crc32fast::Hasher::new();
            crc.update(data);
            let sha256 = sha2::Sha256::digest(&bytes).into();
            return Ok(Compressed { bytes, crc, input_length: data.len() as u64, sha256 });
        }
        let compressed = self.deflate(job, out)?;
        cache.put(&key, &compressed.bytes);
        Ok(compressed)
    }

    /// Raw-deflates one block into `out`, ending with a sync flush so that it ends on a byte
    /// boundary and blocks can be concatenated (the writer adds the final block).
    fn deflate(&mut self, job: &Job, mut out: Vec<u8>) -> io::Result<Compressed> {
        let data = &job.data[..job.len];
        let mut crc = crc32fast::Hasher::new();
        crc.update(data);
        let mut compress = Compress::new(Compression::new(self.level), false);
        if !job.dictionary.is_empty() {
            compress.set_dictionary(&job.dictionary).map_err(io::Error::other)?;
        }
        let flush = FlushCompress::Sync;
        // The output space offered to each call follows a fixed schedule (not the reused
        // buffer's capacity), so the bytes never depend on which buffer a block got.
        let mut limit = data.len() / 2 + 1024;
        out.clear();
        loop {
            out.resize(limit, 0);
            let written = usize::try_from(compress.total_out()).map_err(io::Error::other)?;
            let consumed = usize::try_from(compress.total_in()).map_err(io::Error::other)?;
            let status = compress.compress(&data[consumed..], &mut out[written..], flush).map_err(io::Error::other)?;
            let written = usize::try_from(compress.total_out()).map_err(io::Error::other)?;
            let all_in = compress.total_in() == data.len() as u64;
            // A sync flush is complete once all input is consumed and output space was left over.
            if all_in && written < limit && matches!(status, Status::Ok | Status::BufError) {
                out.truncate(written);
                break;
            }
            if written == limit {
                limit = (2 * limit).max(limit + 64 * 1024);
            }
        }
        let sha256 = sha2::Sha256::digest(&out).into();
        Ok(Compressed { bytes: out, crc, input_length: data.len() as u64, sha256 })
    }
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
        w.finish().unwrap().0
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
        for len in [0, 1, MAX_BLOCK_SIZE - 1, MAX_BLOCK_SIZE, MAX_BLOCK_SIZE + 1, 3 * MAX_BLOCK_SIZE + 17] {
            let data = sample(len);
            assert_eq!(gunzip(&gzip(&data, 2)), data, "len {len}");
        }
    }

    #[test]
    fn output_is_identical_for_any_thread_count() {
        let data = sample(5 * MAX_BLOCK_SIZE + 12_345);
        let one = gzip(&data, 1);
        for threads in [2, 3, 8] {
            assert_eq!(gzip(&data, threads), one, "threads {threads}");
        }
    }

    #[test]
    fn reading_into_blocks_gives_the_same_bytes_as_writing() {
        let data = sample(3 * MAX_BLOCK_SIZE + 4_321);
        for threads in [1, 2] {
            let mut w = ParallelGzipWriter::new(Vec::new(), 6, threads).unwrap();
            let (mut seen, mut reader) = (Vec::new(), &data[..]);
            // A limit past the end: the reader runs dry first.
            let n = w.read_from(&mut reader, data.len() as u64 + 1, &mut |c| seen.extend_from_slice(c)).unwrap();
            assert_eq!(n, data.len() as u64);
            assert_eq!(seen, data);
            assert_eq!(w.finish().unwrap().0, gzip(&data, 1), "threads {threads}");
        }
    }

    #[test]
    fn reading_stops_at_the_limit_and_mixes_with_writes() {
        let data = sample(MAX_BLOCK_SIZE + 10);
        let mut w = ParallelGzipWriter::new(Vec::new(), 6, 2).unwrap();
        w.write_all(b"head").unwrap();
        let mut reader = &data[..];
        assert_eq!(w.read_from(&mut reader, MAX_BLOCK_SIZE as u64, &mut |_| {}).unwrap(), MAX_BLOCK_SIZE as u64);
        w.write_all(b"tail").unwrap();
        let mut expected = b"head".to_vec();
        expected.extend_from_slice(&data[..MAX_BLOCK_SIZE]);
        expected.extend_from_slice(b"tail");
        assert_eq!(gunzip(&w.finish().unwrap().0), expected);
    }

    #[test]
    fn header_has_no_name_and_zero_mtime() {
        let out = gzip(b"hello", 1);
        assert_eq!(&out[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]);
    }

    #[test]
    fn ratio_matches_single_stream_deflate() {
        let data = sample(4 * MAX_BLOCK_SIZE);
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

    #[test]
    fn the_block_index_tiles_the_file_between_header_and_final_block() {
        let data = sample(3 * MAX_BLOCK_SIZE + 999);
        let mut w = ParallelGzipWriter::new(Vec::new(), 6, 2).unwrap();
        w.write_all(&data).unwrap();
        let (out, blocks) = w.finish().unwrap();
        assert_eq!(blocks.len(), 4);
        let mut offset = HEADER_LEN;
        for block in &blocks {
            assert_eq!(block.offset, offset);
            let bytes = &out[offset as usize..(offset + block.length) as usize];
            assert_eq!(block.sha256, hex::encode(sha2::Sha256::digest(bytes)));
            offset += block.length;
        }
        assert_eq!(&out[offset as usize..offset as usize + 2], &FINAL_BLOCK);
        assert_eq!(offset + 2 + 8, out.len() as u64, "only the final block and the trailer follow");
        assert_eq!(blocks.iter().map(|b| b.input_length).sum::<u64>(), data.len() as u64);
        assert_eq!(gunzip(&out), data);
    }

    #[test]
    fn offered_cuts_are_taken_once_a_block_holds_the_minimum() {
        let mut w = ParallelGzipWriter::new(Vec::new(), 6, 2).unwrap();
        w.write_all(&sample(MIN_BLOCK_SIZE - 1)).unwrap();
        w.offer_cut().unwrap();
        w.write_all(b"x").unwrap();
        w.offer_cut().unwrap();
        w.write_all(&sample(10)).unwrap();
        let (out, blocks) = w.finish().unwrap();
        let lengths: Vec<u64> = blocks.iter().map(|b| b.input_length).collect();
        assert_eq!(lengths, [MIN_BLOCK_SIZE as u64, 10]);
        assert_eq!(gunzip(&out).len(), MIN_BLOCK_SIZE + 10);
    }

    #[test]
    fn a_change_inside_one_block_leaves_the_blocks_after_the_next_cut_alike() {
        // Segments of 300 KiB with a cut offered after each: one block per segment.
        let segments: Vec<Vec<u8>> = (0..6).map(|i| sample(300 * 1024 + i * 7)).collect();
        let pack = |segments: &[Vec<u8>]| {
            let mut w = ParallelGzipWriter::new(Vec::new(), 6, 2).unwrap();
            for segment in segments {
                w.write_all(segment).unwrap();
                w.offer_cut().unwrap();
            }
            w.finish().unwrap().1
        };
        let before = pack(&segments);
        let mut changed = segments.clone();
        let shorter = changed[2].len() - 100;
        changed[2].truncate(shorter);
        let after = pack(&changed);
        let sha = |blocks: &[BlockEntry]| blocks.iter().map(|b| b.sha256.clone()).collect::<Vec<_>>();
        let (before, after) = (sha(&before), sha(&after));
        assert_eq!(before.len(), 6);
        assert_eq!(before[..2], after[..2], "the blocks before the change moved");
        // The changed block, and the one after it (primed with the changed block's tail).
        assert_ne!(before[2], after[2]);
        assert_eq!(before[4..], after[4..], "the change reached past the next block");
    }

    /// Blocks in memory, counting how many were served.
    #[derive(Default)]
    struct MemoryCache {
        blocks: Mutex<std::collections::HashMap<BlockKey, Vec<u8>>>,
        hits: std::sync::atomic::AtomicUsize,
    }

    impl BlockCache for MemoryCache {
        fn get(&self, key: &BlockKey) -> Option<Vec<u8>> {
            let found = self.blocks.lock().unwrap().get(key).cloned();
            if found.is_some() {
                self.hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            found
        }

        fn put(&self, key: &BlockKey, compressed: &[u8]) {
            self.blocks.lock().unwrap().insert(*key, compressed.to_vec());
        }
    }

    fn gzip_cached(segments: &[Vec<u8>], cache: &Arc<MemoryCache>) -> (Vec<u8>, Vec<BlockEntry>) {
        let shared: Arc<dyn BlockCache> = Arc::clone(cache) as Arc<dyn BlockCache>;
        let mut w = ParallelGzipWriter::with_cache(Vec::new(), 6, 2, Some(shared)).unwrap();
        for segment in segments {
            w.write_all(segment).unwrap();
            w.offer_cut().unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn a_repack_takes_unchanged_blocks_from_the_cache_and_gives_the_same_bytes() {
        let segments: Vec<Vec<u8>> = (0..5).map(|i| sample(300 * 1024 + i * 11)).collect();
        let cache = Arc::new(MemoryCache::default());
        let (cold, blocks) = gzip_cached(&segments, &cache);
        assert_eq!(cache.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
        let mut uncached = ParallelGzipWriter::new(Vec::new(), 6, 1).unwrap();
        for segment in &segments {
            uncached.write_all(segment).unwrap();
            uncached.offer_cut().unwrap();
        }
        assert_eq!(uncached.finish().unwrap().0, cold, "the cache changed the bytes");

        let (warm, _) = gzip_cached(&segments, &cache);
        assert_eq!(warm, cold);
        assert_eq!(cache.hits.load(std::sync::atomic::Ordering::SeqCst), blocks.len());

        // A byte changed near the start of one segment: only its block is compressed again (the
        // next block is primed with the segment's last 32 KiB, which did not change).
        let mut changed = segments.clone();
        changed[3][10] ^= 0x20;
        let before = cache.hits.load(std::sync::atomic::Ordering::SeqCst);
        let (repacked, _) = gzip_cached(&changed, &cache);
        assert_eq!(cache.hits.load(std::sync::atomic::Ordering::SeqCst) - before, blocks.len() - 1);
        assert_eq!(gunzip(&repacked), changed.concat());
    }

    #[test]
    fn the_compressor_output_is_pinned_so_cached_blocks_stay_valid() {
        // Cached blocks are reused across versions of Aether: if this changes, the compressor's
        // output changed and BLOCK_FORMAT must change with it.
        let mut w = ParallelGzipWriter::new(Vec::new(), 5, 1).unwrap();
        w.write_all(&sample(300 * 1024)).unwrap();
        let (_, blocks) = w.finish().unwrap();
        assert_eq!(BLOCK_FORMAT, "aether-block-v1 zlib-rs sync-flush");
        assert_eq!(blocks[0].sha256, PINNED_BLOCK_SHA256);
    }

    const PINNED_BLOCK_SHA256: &str = "d9fac86984cd10f60322ed8fde5333695a8762480b811930da02e6222e50b8a1";
}
