//! `berth content ls|get|ingest|rm|active|check`: the content store, like `ctr content`.
//! Every command but `active` works through the namespace's (`-n`) records
//! ([`berth_client::content_ns`]): a namespace sees, reads and removes only the blobs it
//! has a record of, and `rm` drops its record (the bytes go at GC once no namespace needs
//! them). `ingest` writes the bytes even when another namespace stored the blob, and
//! records the blob in this namespace once the content service has verified them.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::process::ExitCode;

use berth_ipc::content::proxy::ContentClient;
use berth_ipc::content::store::{ContentStore, ContentWriter};
use berth_ipc::content::{Check, CheckItem, Read as ReadBlob};
use berth_ipc::{Code, Digest};
use clap::Subcommand;
use serde::Serialize;

use berth_client::content_ns;

use super::Ctx;
use crate::output::{self, Format};

/// Bytes per chunk sent by `ingest`.
const INGEST_CHUNK: usize = 4 << 20;

/// `berth content …`
#[derive(Debug, Subcommand)]
pub enum ContentCmd {
    /// List blobs (filters: digest==…, size==…)
    #[command(alias = "list")]
    Ls {
        /// containerd-style filters; any one may match
        filters: Vec<String>,
    },
    /// Write a blob's bytes to stdout
    Get {
        /// The blob's digest (sha256:…)
        digest: String,
        /// Read through content.sock instead of copying from a passed fd
        #[arg(long)]
        stream: bool,
    },
    /// Store stdin as a blob under an ingest ref (resumes an interrupted ingest of that ref)
    Ingest {
        /// The ingest's ref
        r#ref: String,
        /// Digest the data must have
        #[arg(long)]
        expected_digest: Option<String>,
        /// Size the data must have
        #[arg(long)]
        expected_size: Option<u64>,
        /// Send the bytes through content.sock even when stdin is a file or a pipe (whose
        /// fd is otherwise passed to the service, which reads it itself)
        #[arg(long)]
        stream: bool,
    },
    /// Delete blobs
    #[command(alias = "del", alias = "remove")]
    Rm {
        /// Digests of the blobs
        #[arg(required = true)]
        digests: Vec<String>,
    },
    /// List ingests in progress (filters: ref==…, ref~=…)
    Active {
        /// containerd-style filters; any one may match
        filters: Vec<String>,
    },
    /// Re-hash the namespace's blobs and name those whose bytes do not match (exit 1 if any)
    Check {
        /// Name bad blobs of every namespace, and blobs no namespace records (the whole
        /// store's view; needs only the content service)
        #[arg(long)]
        all_namespaces: bool,
    },
}

#[derive(Serialize)]
struct BlobRow {
    digest: String,
    size: u64,
    created_at_ns: u64,
}

#[derive(Serialize)]
struct IngestRow {
    r#ref: String,
    offset: u64,
    total: Option<u64>,
    started_at_ns: u64,
    updated_at_ns: u64,
}

fn parse_digest(s: &str) -> anyhow::Result<Digest> {
    Digest::parse(s).map_err(|e| anyhow::anyhow!("{e}"))
}

fn age(ns: u64) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    format!("{} ago", output::human_duration(now.saturating_sub(ns / 1_000_000_000)))
}

/// Runs a content command.
pub async fn run(ctx: &Ctx, cmd: ContentCmd) -> anyhow::Result<ExitCode> {
    let content = ContentClient::new(ctx.services.content.clone());
    let (services, ns) = (&ctx.services, ctx.namespace.as_str());
    let e = |e: berth_ipc::Error| anyhow::anyhow!("{e}");
    match cmd {
        ContentCmd::Ls { filters } => {
            let list = content_ns::list(services, ns, &filters).await.map_err(e)?;
            let rows: Vec<BlobRow> = list
                .iter()
                .map(|i| BlobRow { digest: i.digest.to_string(), size: i.size, created_at_ns: i.created })
                .collect();
            match ctx.format {
                Format::Json => output::json(&rows)?,
                Format::Table => output::table(
                    &["DIGEST", "SIZE", "CREATED"],
                    &rows
                        .iter()
                        .map(|r| vec![r.digest.clone(), output::human_size(r.size), age(r.created_at_ns)])
                        .collect::<Vec<_>>(),
                ),
            }
        }
        ContentCmd::Get { digest, stream } => {
            let digest = parse_digest(&digest)?;
            content_ns::get(services, ns, &digest).await.map_err(e)?;
            if !stream && content.fd_socket().exists() {
                // The kernel copies (copy_file_range, sendfile or splice where it can).
                let mut blob = content.read_fd(&digest).await.map_err(e)?;
                let copied = std::io::copy(&mut blob.file, &mut std::io::stdout().lock())?;
                anyhow::ensure!(copied == blob.size, "blob {digest}: {copied} of {} bytes read", blob.size);
                return Ok(ExitCode::SUCCESS);
            }
            let mut stream =
                content.client().stream(ReadBlob { digest, offset: 0, length: None }).await.map_err(e)?;
            let mut out = std::io::stdout().lock();
            while let Some(chunk) = stream.next().await {
                out.write_all(&chunk.map_err(e)?.data.0)?;
            }
            out.flush()?;
        }
        ContentCmd::Ingest { r#ref, expected_digest, expected_size, stream } => {
            let expected = expected_digest.as_deref().map(parse_digest).transpose()?;
            let (digest, size) = ingest(&content, &r#ref, expected, expected_size, stream).await?;
            content_ns::record(services, ns, digest, size).await.map_err(e)?;
            println!("{digest}");
        }
        ContentCmd::Rm { digests } => {
            let mut failed = false;
            for d in digests {
                match parse_digest(&d) {
                    Ok(digest) => match content_ns::remove(services, ns, &digest).await {
                        Ok(()) => println!("{digest}"),
                        Err(err) => {
                            failed = true;
                            eprintln!("berth: {err}");
                        }
                    },
                    Err(err) => {
                        failed = true;
                        eprintln!("berth: {err}");
                    }
                }
            }
            return Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS });
        }
        ContentCmd::Active { filters } => {
            let list = content.list_statuses(&filters).await.map_err(e)?;
            let rows: Vec<IngestRow> = list
                .into_iter()
                .map(|s| IngestRow {
                    r#ref: s.r#ref,
                    offset: s.offset,
                    total: s.total,
                    started_at_ns: s.started_at_ns,
                    updated_at_ns: s.updated_at_ns,
                })
                .collect();
            match ctx.format {
                Format::Json => output::json(&rows)?,
                Format::Table => output::table(
                    &["REF", "SIZE", "TOTAL", "STARTED", "UPDATED"],
                    &rows
                        .iter()
                        .map(|r| {
                            vec![
                                r.r#ref.clone(),
                                output::human_size(r.offset),
                                r.total.map_or_else(|| "-".into(), output::human_size),
                                age(r.started_at_ns),
                                age(r.updated_at_ns),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        ContentCmd::Check { all_namespaces } => return check(ctx, &content, all_namespaces).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// Streams stdin into the ingest `r`, resuming where an earlier attempt stopped (the bytes
/// already stored are skipped on stdin), and commits; returns the verified blob's digest
/// and size. The bytes are written even when the blob is already stored (by this or
/// another namespace): the content service verifies them before saying so.
async fn ingest(
    content: &ContentClient,
    r: &str,
    expected: Option<Digest>,
    size: Option<u64>,
    force_stream: bool,
) -> anyhow::Result<(Digest, u64)> {
    let e = |e: berth_ipc::Error| anyhow::anyhow!("{e}");
    let mut writer = content.writer_proving(r, expected, size).await.map_err(e)?;
    let skip = writer.status().offset;
    let passable = if !force_stream && content.fd_socket().exists() { passable_stdin(skip)? } else { None };
    if let Some(stdin) = passable {
        writer.append_from(stdin.as_fd()).await.map_err(e)?;
        return commit(writer, size, expected).await;
    }
    // A thread reads stdin so that reading overlaps sending.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        if let Err(err) = std::io::copy(&mut (&mut stdin).take(skip), &mut std::io::sink()) {
            let _ = tx.blocking_send(Err(err));
            return;
        }
        loop {
            let mut buf = vec![0u8; INGEST_CHUNK];
            let mut filled = 0;
            while filled < buf.len() {
                match stdin.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        let _ = tx.blocking_send(Err(err));
                        return;
                    }
                }
            }
            buf.truncate(filled);
            if filled == 0 || tx.blocking_send(Ok(buf)).is_err() {
                return;
            }
        }
    });
    while let Some(chunk) = rx.recv().await {
        writer.push(chunk?).await.map_err(e)?;
    }
    commit(writer, size, expected).await
}

/// Stdin as a file to pass to the service, positioned `skip` bytes on, when it is a
/// regular file or a pipe.
fn passable_stdin(skip: u64) -> anyhow::Result<Option<std::fs::File>> {
    use std::io::{Seek, SeekFrom};
    use std::os::unix::fs::FileTypeExt;
    let mut file = std::fs::File::from(std::io::stdin().as_fd().try_clone_to_owned()?);
    let kind = file.metadata()?.file_type();
    if kind.is_file() {
        file.seek(SeekFrom::Current(i64::try_from(skip)?))?;
    } else if kind.is_fifo() {
        std::io::copy(&mut (&mut file).take(skip), &mut std::io::sink())?;
    } else {
        return Ok(None);
    }
    Ok(Some(file))
}

async fn commit(
    writer: berth_ipc::content::proxy::RemoteWriter,
    size: Option<u64>,
    expected: Option<Digest>,
) -> anyhow::Result<(Digest, u64)> {
    let written = writer.offset();
    match writer.commit(size, expected).await {
        Ok(info) => Ok((info.digest, info.size)),
        // The same bytes are already stored, and commit verified ours against them
        // ("blob sha256:…: already exists"): the ingest has done its job.
        Err(err) if err.code == Code::AlreadyExists => {
            let named = err.message.strip_prefix("blob ").and_then(|m| m.split_once(": already exists"));
            let digest = match (expected, named) {
                (Some(d), _) => d,
                (None, Some((d, _))) => parse_digest(d)?,
                (None, None) => anyhow::bail!("{err}"),
            };
            Ok((digest, written))
        }
        Err(err) => Err(anyhow::anyhow!("{err}")),
    }
}

/// Re-hashes every blob and names the bad ones this namespace has a record of (a blob only
/// other namespaces have is none of its business).
async fn check(ctx: &Ctx, content: &ContentClient, all: bool) -> anyhow::Result<ExitCode> {
    let mine: Option<std::collections::HashSet<String>> = if all {
        None
    } else {
        Some(
            content_ns::list(&ctx.services, &ctx.namespace, &[])
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .into_iter()
                .map(|r| format!("{}/{}", r.digest.algorithm(), r.digest.hex()))
                .collect(),
        )
    };
    let mut stream = content.client().stream(Check).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut bad_seen = 0u64;
    let json = ctx.format == Format::Json;
    let mut bad = Vec::new();
    while let Some(item) = stream.next().await {
        match item.map_err(|e| anyhow::anyhow!("{e}"))? {
            CheckItem::Bad { name, problem } => {
                if mine.as_ref().is_none_or(|m| m.contains(&name)) {
                    bad_seen += 1;
                    if json {
                        bad.push(
                            serde_json::json!({"digest": name.replacen('/', ":", 1), "problem": problem}),
                        );
                    } else {
                        println!("{name}: {problem}");
                    }
                }
            }
            CheckItem::Done { checked, .. } => {
                let checked = mine.as_ref().map_or(checked, |m| m.len() as u64);
                if json {
                    output::json(&serde_json::json!({"namespace": (!all).then_some(&ctx.namespace),
                        "checked": checked, "bad": bad}))?;
                } else if all {
                    eprintln!("checked {checked} blobs, {bad_seen} bad");
                } else {
                    eprintln!("checked {checked} blobs of namespace {}, {bad_seen} bad", ctx.namespace);
                }
                return Ok(if bad_seen > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS });
            }
        }
    }
    anyhow::bail!("check ended early after {bad_seen} bad blobs")
}
