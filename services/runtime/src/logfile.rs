//! Containers' output logs: where they live, their line format, and writing them with a
//! size cap and rotation.
//!
//! A process's stdout and stderr go to one file, `<root>/logs/<ns>/<id>/init.log` for the
//! init and `exec-<exec id>.log` for an exec, in the CRI log format: one record per line,
//! `<RFC 3339 UTC time, nanoseconds> <stdout|stderr> <F|P> <data>\n`. `F` ends a line of the
//! process's output (its `\n` is the record's); `P` is part of a line (the bytes read so far
//! had no newline), so the process's bytes are the concatenation of the records' data with
//! a `\n` after each `F`. Lossless, a time per record.
//!
//! Before a write would make the file larger than `max_bytes`, it is renamed to `.1` (`.1`
//! to `.2`, and so on; the oldest beyond `max_files` goes) and a new one begun. Readers
//! hold files open, so a rotation does not lose what they are reading.
//!
//! A container created with `RunOptions.log_path` has its init's log at that path instead,
//! in the same format, never capped or rotated by berth: its owner (the kubelet) renames the
//! file and asks for a reopen ([`LogWriter::reopen`], the `ReopenLog` request).

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use berth_ipc::runtime::OutputStream;
use berth_service_kit::time::{parse_rfc3339_nanos, rfc3339_nanos};

/// The log dir of container `id` in `ns` under the root dir.
pub fn container_dir(root: &Path, ns: &str, id: &str) -> PathBuf {
    root.join("logs").join(ns).join(id)
}

/// The log files of one process: berth's own (capped and rotated, under the container's log
/// dir), or one file at a path the caller chose (`RunOptions.log_path`), which the caller
/// rotates (it renames the file, then asks for a reopen).
#[derive(Debug, Clone)]
pub struct LogPaths {
    place: Place,
}

#[derive(Debug, Clone)]
enum Place {
    /// `<dir>/<stem>.log` and its rotations `<stem>.log.<k>`.
    Kept { dir: PathBuf, stem: String },
    /// This one file, never rotated by berth.
    At(PathBuf),
}

impl LogPaths {
    /// The files of the init (`None`) or an exec of the container whose log dir is `dir`.
    pub fn new(dir: &Path, exec: Option<&str>) -> LogPaths {
        let stem = match exec {
            None => "init".to_string(),
            Some(e) => format!("exec-{e}"),
        };
        LogPaths { place: Place::Kept { dir: dir.to_path_buf(), stem } }
    }
    /// The one file at `path` (absolute), rotated by whoever chose it.
    pub fn at(path: &Path) -> LogPaths {
        LogPaths { place: Place::At(path.to_path_buf()) }
    }
    /// Whether berth rotates these files (not a caller-chosen path).
    pub fn rotates(&self) -> bool {
        matches!(self.place, Place::Kept { .. })
    }
    /// The file being written.
    pub fn current(&self) -> PathBuf {
        match &self.place {
            Place::Kept { dir, stem } => dir.join(format!("{stem}.log")),
            Place::At(path) => path.clone(),
        }
    }
    /// The `k`th rotated file (`k >= 1`; larger is older); none for a caller-chosen path.
    fn rotated(&self, k: u32) -> Option<PathBuf> {
        match &self.place {
            Place::Kept { dir, stem } => Some(dir.join(format!("{stem}.log.{k}"))),
            Place::At(_) => None,
        }
    }
    /// Every file that exists, oldest first (the current one last).
    pub fn existing(&self) -> Vec<PathBuf> {
        let mut k = 1;
        while self.rotated(k).is_some_and(|p| p.exists()) {
            k += 1;
        }
        let mut files: Vec<PathBuf> = (1..k).rev().filter_map(|k| self.rotated(k)).collect();
        if self.current().exists() {
            files.push(self.current());
        }
        files
    }
    /// Creates the dir the current file goes in: berth's own 0700, a caller's path's 0755
    /// (what the CRI's log readers expect), less the umask.
    fn make_dir(&self) -> std::io::Result<()> {
        let (dir, mode) = match &self.place {
            Place::Kept { dir, .. } => (dir.as_path(), 0o700),
            Place::At(path) => (path.parent().unwrap_or(Path::new("/")), 0o755),
        };
        std::fs::DirBuilder::new().recursive(true).mode(mode).create(dir)
    }
    /// Opens the current file for appending, creating it (0600 for berth's own, 0640 at a
    /// caller's path, less the umask).
    fn open_current(&self) -> std::io::Result<File> {
        let mode = if self.rotates() { 0o600 } else { 0o640 };
        std::fs::OpenOptions::new().create(true).append(true).mode(mode).open(self.current())
    }
}

/// A log file being written, with its cap.
pub struct LogWriter {
    paths: LogPaths,
    file: File,
    size: u64,
    max_bytes: u64,
    max_files: u32,
    buf: Vec<u8>,
}

impl LogWriter {
    /// Opens (creating it and its dirs) the current file of `paths` for appending. The cap
    /// applies to berth's own files only: a caller-chosen path grows until its owner
    /// rotates it.
    pub fn open(paths: LogPaths, max_bytes: u64, max_files: u32) -> std::io::Result<LogWriter> {
        paths.make_dir()?;
        let file = paths.open_current()?;
        let size = file.metadata()?.len();
        let max_bytes = if paths.rotates() { max_bytes } else { u64::MAX };
        Ok(LogWriter { paths, file, size, max_bytes, max_files: max_files.max(1), buf: Vec::new() })
    }

    /// Closes the file and opens the one now at its path (creating it and its dirs): what
    /// is written after this goes there. On failure the old file is kept and written on.
    pub fn reopen(&mut self) -> std::io::Result<()> {
        self.paths.make_dir()?;
        let file = self.paths.open_current()?;
        self.size = file.metadata()?.len();
        self.file = file;
        Ok(())
    }

    /// The file being written.
    pub fn path(&self) -> PathBuf {
        self.paths.current()
    }

    /// Appends `data` (bytes the process wrote on `stream`) as records stamped `time_ns`.
    pub fn write(&mut self, stream: OutputStream, time_ns: u64, data: &[u8]) -> std::io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        encode(&mut buf, stream, time_ns, data);
        let r = self.write_records(&buf);
        self.buf = buf;
        r
    }

    fn write_records(&mut self, mut records: &[u8]) -> std::io::Result<()> {
        while !records.is_empty() {
            // Whole records that fit; a file never holds more than `max_bytes`.
            let room = self.max_bytes.saturating_sub(self.size) as usize;
            let mut take = 0;
            for line in records.split_inclusive(|b| *b == b'\n') {
                if take + line.len() > room {
                    break;
                }
                take += line.len();
            }
            if take == 0 {
                if self.size == 0 {
                    // One record larger than a whole file (not made by `encode` with the
                    // minimum cap): written anyway rather than lost.
                    take = records.iter().position(|b| *b == b'\n').map_or(records.len(), |p| p + 1);
                } else {
                    self.rotate()?;
                    continue;
                }
            }
            self.file.write_all(&records[..take])?;
            self.size += take as u64;
            records = &records[take..];
        }
        Ok(())
    }

    /// `.k` to `.k+1` from the oldest kept, the current one to `.1`, a new current one.
    fn rotate(&mut self) -> std::io::Result<()> {
        let keep = self.max_files - 1;
        if keep == 0 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let rotated = |k| self.paths.rotated(k).ok_or(std::io::ErrorKind::Unsupported);
        let _ = std::fs::remove_file(rotated(keep)?);
        for k in (1..keep).rev() {
            let _ = std::fs::rename(rotated(k)?, rotated(k + 1)?);
        }
        std::fs::rename(self.paths.current(), rotated(1)?)?;
        self.file = self.paths.open_current()?;
        self.size = 0;
        Ok(())
    }
}

/// Appends the records of `data` (split at newlines) to `out`.
pub fn encode(out: &mut Vec<u8>, stream: OutputStream, time_ns: u64, data: &[u8]) {
    let time = rfc3339_nanos(time_ns);
    let name = stream_name(stream);
    for part in data.split_inclusive(|b| *b == b'\n') {
        let (tag, body) = match part.strip_suffix(b"\n") {
            Some(body) => ("F", body),
            None => ("P", part),
        };
        out.extend_from_slice(time.as_bytes());
        out.push(b' ');
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        out.extend_from_slice(tag.as_bytes());
        out.push(b' ');
        out.extend_from_slice(body);
        out.push(b'\n');
    }
}

fn stream_name(stream: OutputStream) -> &'static str {
    match stream {
        OutputStream::Stdout => "stdout",
        OutputStream::Stderr => "stderr",
    }
}

/// One record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Unix nanoseconds.
    pub time_ns: u64,
    /// Its stream.
    pub stream: OutputStream,
    /// Part of a line (`P`): no newline after the data.
    pub partial: bool,
    /// The data, without the record's newline.
    pub data: Vec<u8>,
}

impl Record {
    /// The process's bytes: the data, with its newline unless partial.
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = self.data.clone();
        if !self.partial {
            b.push(b'\n');
        }
        b
    }
}

/// Parses one record line (without its `\n`); `None` if it is not one.
pub fn parse(line: &[u8]) -> Option<Record> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = parse_rfc3339_nanos(std::str::from_utf8(parts.next()?).ok()?)?;
    let stream = match parts.next()? {
        b"stdout" => OutputStream::Stdout,
        b"stderr" => OutputStream::Stderr,
        _ => return None,
    };
    let partial = match parts.next()? {
        b"P" => true,
        b"F" => false,
        _ => return None,
    };
    Some(Record { time_ns: time, stream, partial, data: parts.next().unwrap_or_default().to_vec() })
}

#[cfg(test)]
#[path = "logfile_tests.rs"]
mod tests;
