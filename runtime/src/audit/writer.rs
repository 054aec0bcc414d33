//! Where the trail's bytes go: appended with `write` (one system call per
//! event), or copied into a memory-mapped, pre-allocated segment of the
//! file (no system call per event).
//!
//! Both keep the trail's promise: when `append` returns, the event is in
//! the operating system's page cache, so it outlives a crash of the proxy
//! exactly like a completed `write`. The mapped segment is reserved with
//! `fallocate` (blocks allocated, not a sparse hole) before anything is
//! copied into it, so a full disk or a file-size limit is an error of that
//! call and refuses the statement, never a `SIGBUS` on a later store.
//!
//! A mapped file is longer than its events: the reserved rest is zero
//! bytes, trimmed on rotation, on a clean close and when the trail is
//! opened again. Readers stop at the first zero byte ([`super::read_text`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use memmap2::{MmapMut, MmapOptions};

/// How much is reserved at a time: large enough that reserving and
/// re-mapping (three system calls) happen once per thousands of events,
/// small enough to keep the mapped window's share of memory small.
const SEGMENT: u64 = 2 << 20;

/// How events reach the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A pre-allocated, memory-mapped segment (regular files; the default).
    #[default]
    Mapped,
    /// One `write` per event (also used for what is not a regular file,
    /// such as `/dev/null`, and where the file system cannot reserve space).
    Append,
}

/// An open trail file.
pub(super) enum Writer {
    Append(File),
    Mapped(Mapped),
}

/// The mapped form: the file, how much of it is reserved, and the window
/// of it that is mapped (from the page holding the next event's start to
/// the end of the reservation).
pub(super) struct Mapped {
    file: File,
    reserved: u64,
    window: Option<(u64, MmapMut)>,
}

impl Writer {
    /// Opens `path` (created if missing) for events after its first `len`
    /// bytes, which [`super::trim`] has made the whole file.
    pub(super) fn open(path: &Path, mode: Mode) -> std::io::Result<Writer> {
        let regular = std::fs::metadata(path)
            .map(|m| m.file_type().is_file())
            .unwrap_or(true);
        if mode == Mode::Append || !regular {
            return append(path).map(Writer::Append);
        }
        let file = OpenOptions::new()
            .create(true)
            .read(true)
            .write(true)
            .truncate(false)
            .open(path)?;
        let reserved = file.metadata()?.len();
        Ok(Writer::Mapped(Mapped {
            file,
            reserved,
            window: None,
        }))
    }

    /// Writes `line` at byte `at` (the trail's length): on success it is in
    /// the page cache.
    pub(super) fn write(&mut self, at: u64, line: &[u8]) -> std::io::Result<()> {
        match self {
            Writer::Append(file) => {
                let written = file.write_all(line);
                if written.is_err() {
                    // A full disk or a file-size limit can leave part of
                    // the line: cut it off, so the next event continues a
                    // well-formed chain.
                    let _ = file.set_len(at);
                }
                written
            }
            Writer::Mapped(m) => match m.write(at, line) {
                // The file system cannot reserve space (no `fallocate`):
                // from now on, one `write` per event.
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::OPNOTSUPP.raw_os_error()) => {
                    tracing::warn!(error = %e, "the audit file system cannot reserve space; writing events one by one");
                    let _ = m.file.set_len(at);
                    let mut file = m.file.try_clone()?;
                    std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))?;
                    *self = Writer::Append(file);
                    self.write(at, line)
                }
                other => other,
            },
        }
    }

    /// Makes the trail's first `len` bytes durable.
    pub(super) fn sync(&mut self, at: u64, len: u64) -> std::io::Result<()> {
        match self {
            Writer::Append(file) => file.sync_data(),
            Writer::Mapped(m) => {
                if let Some((base, map)) = &m.window {
                    let start = usize::try_from(at.saturating_sub(*base)).unwrap_or(usize::MAX);
                    let len = usize::try_from(len).unwrap_or(usize::MAX);
                    map.flush_range(start, len.min(map.len().saturating_sub(start)))?;
                }
                // A reservation changed the file's size: make that durable
                // too (cheap when nothing changed).
                m.file.sync_data()
            }
        }
    }

    /// Cuts the reserved rest off, leaving the file exactly `len` bytes of
    /// events (before a rotation and when the trail is closed).
    pub(super) fn finish(&mut self, len: u64) {
        if let Writer::Mapped(m) = self {
            m.window = None;
            if m.reserved > len {
                match m.file.set_len(len) {
                    Ok(()) => m.reserved = len,
                    Err(e) => tracing::warn!(error = %e, "trimming the audit file failed"),
                }
            }
        }
    }
}

impl Mapped {
    fn write(&mut self, at: u64, line: &[u8]) -> std::io::Result<()> {
        let end = at + line.len() as u64;
        let mapped = self
            .window
            .as_ref()
            .is_some_and(|(base, map)| *base <= at && end <= base + map.len() as u64);
        if !mapped {
            self.reserve(at, end)?;
        }
        let (base, map) = self.window.as_mut().expect("reserve maps a window");
        let start = usize::try_from(at - *base).expect("inside the window");
        map[start..start + line.len()].copy_from_slice(line);
        Ok(())
    }

    /// Reserves room up to at least `end` and maps the window from `at`.
    #[allow(
        unsafe_code,
        reason = "the one `unsafe` of the workspace: no safe crate maps a file for writing"
    )]
    fn reserve(&mut self, at: u64, end: u64) -> std::io::Result<()> {
        use rustix::fs::{FallocateFlags, fallocate};
        if end > self.reserved {
            let from = self.reserved;
            let wanted = end.max(at + SEGMENT);
            // Near a file-size limit or a full disk a whole segment may not
            // fit while this event still does.
            let reserved = match fallocate(&self.file, FallocateFlags::empty(), 0, wanted) {
                Ok(()) => wanted,
                Err(rustix::io::Errno::OPNOTSUPP) => {
                    return Err(rustix::io::Errno::OPNOTSUPP.into());
                }
                Err(_) => {
                    fallocate(&self.file, FallocateFlags::empty(), 0, end)?;
                    end
                }
            };
            self.reserved = reserved;
            // Advice only, like the populate below: a failed fill leaves
            // the pages to be faulted in from the file.
            let _ = zero_fill(&self.file, from, reserved);
        }
        let page = rustix::param::page_size() as u64;
        let base = at / page * page;
        self.window = None;
        let len = usize::try_from(self.reserved - base).map_err(std::io::Error::other)?;
        // SAFETY: the mapping is of the trail's own file, which the proxy
        // only ever extends (rotation renames it and opens a new one). A
        // process that truncates the trail under a running proxy (which
        // takes the rights to edit the trail anyway) makes the next store
        // fault; nothing reads through the mapping.
        let map = unsafe {
            MmapOptions::new()
                .offset(base)
                .len(len)
                .map_mut(&self.file)?
        };
        // Fault the window's pages in, writable, in one call: otherwise each
        // new page takes a write fault on its first event's copy, which was
        // 4 % of the proxy's CPU under pgbench (every sixth statement or so).
        // Advice only: a kernel without MADV_POPULATE_WRITE (before 5.14)
        // faults page by page as before.
        let _ = map.advise(memmap2::Advice::PopulateWrite);
        self.window = Some((base, map));
        Ok(())
    }
}

/// Writes zero bytes over `from..to` of the file, which a reservation has
/// just allocated (and which reads as zeros already), so the window's pages
/// enter the page cache through `write`, dirty, and the populate after
/// mapping only maps them. Faulted in from the file instead, each page
/// went through read-ahead of an unwritten extent, zeroing and
/// `page_mkwrite`: about 5 µs a page here against under 1 µs this way
/// (measured with a C program over 256 MiB), and over a third of an
/// event's cost in `cargo bench -p clsf-runtime --bench audit`.
fn zero_fill(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(ZEROS.len(), |left| left.min(ZEROS.len()));
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
}
