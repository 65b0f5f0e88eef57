//! `nas dataset add | list | show | rm`: your own datasets on a server.
//! `add` streams the upload (a folder is packed into a tar on the fly,
//! never staged on disk) with a progress bar on stderr.

use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use serde::Deserialize;
use store::datasets::DatasetRow;

use super::client::Client;
use crate::api::datasets::Uploaded;
use crate::cli::{DatasetAddArgs, DatasetListArgs, DatasetShowArgs};
use crate::table::{thousands, Align, Table};

/// A catalogue entry as `GET /datasets` lists it (the fields shown).
#[derive(Debug, Deserialize)]
struct BuiltIn {
    name: String,
    input: [usize; 3],
    class_names: Vec<String>,
    train_images: u64,
    test_images: u64,
}

/// `GET /datasets`.
#[derive(Debug, Deserialize)]
struct Listing {
    datasets: Vec<BuiltIn>,
    uploaded: Vec<DatasetRow>,
}

/// The default dataset name of an upload at `path`: its file or folder
/// name without extensions, in the characters names may use.
fn default_name(path: &Path) -> String {
    // `nas dataset add .` names it after the current folder.
    let full = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let file = full
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = file.split('.').next().unwrap_or_default();
    let name: String = stem
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(|c| c == '-' || c == '_').to_owned();
    if name.is_empty() {
        "dataset".into()
    } else {
        name.chars().take(64).collect()
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The bytes under a folder (an estimate of its tar's size: each file's
/// bytes plus a header and padding).
fn folder_bytes(dir: &Path) -> u64 {
    let mut total = 1024;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(entry.path()),
                Ok(t) if t.is_file() => {
                    let len = entry.metadata().map_or(0, |m| m.len());
                    total += 512 + len.div_ceil(512) * 512;
                }
                _ => total += 512,
            }
        }
    }
    total
}

/// A folder as a tar stream: written by a thread into a pipe as it is
/// read, so nothing is staged on disk or held whole in memory.
fn tar_stream(dir: &Path) -> anyhow::Result<impl Read + Send + 'static> {
    let (reader, writer) = std::io::pipe().context("a pipe for the tar stream")?;
    let root = dir.to_path_buf();
    let top = default_name(dir);
    std::thread::spawn(move || {
        let mut builder = tar::Builder::new(writer);
        builder.follow_symlinks(false);
        // An error ends the stream early: the server then names the
        // truncated archive, and the client reports the read error.
        let _ = builder
            .append_dir_all(&top, &root)
            .and_then(|()| builder.finish());
    });
    Ok(reader)
}

/// Counts the bytes read through it and draws the upload's progress.
struct Progress<R> {
    inner: R,
    sent: u64,
    total: u64,
    started: Instant,
    terminal: bool,
    last_tenth: u64,
    name: String,
}

impl<R> Progress<R> {
    fn draw(&mut self, done: bool) {
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let fraction = if self.total == 0 {
            1.0
        } else {
            (self.sent as f64 / self.total as f64).min(1.0)
        };
        let rate = mib(self.sent) / self.started.elapsed().as_secs_f64().max(1e-3);
        let width = 30usize;
        let filled = ((fraction * width as f64).round() as usize).min(width);
        let line = format!(
            "uploading {} [{}{}] {:.1}/{:.1} MiB {:.0}% {:.1} MiB/s",
            self.name,
            "#".repeat(filled),
            ".".repeat(width - filled),
            mib(self.sent),
            mib(self.total.max(self.sent)),
            fraction * 100.0,
            rate
        );
        let mut err = std::io::stderr();
        if self.terminal {
            let _ = write!(err, "\r{line}\x1b[K");
            if done {
                let _ = writeln!(err);
            }
        } else {
            let tenth = (fraction * 10.0) as u64;
            if tenth > self.last_tenth || done {
                self.last_tenth = tenth;
                let _ = writeln!(err, "{line}");
            }
        }
        let _ = err.flush();
    }
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let before = self.sent;
        self.sent += n as u64;
        // Redraw every MiB and at the end.
        if n == 0 || before >> 20 != self.sent >> 20 {
            self.draw(n == 0);
            if n == 0 {
                let _ = writeln!(
                    std::io::stderr(),
                    "sent; the server is decoding and checking it"
                );
            }
        }
        Ok(n)
    }
}

/// `nas dataset add PATH`.
pub fn add(args: &DatasetAddArgs) -> anyhow::Result<String> {
    let path: &PathBuf = &args.path;
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    let name = args.name.clone().unwrap_or_else(|| default_name(path));
    let (body, total): (Box<dyn Read + Send>, u64) = if meta.is_dir() {
        (Box::new(tar_stream(path)?), folder_bytes(path))
    } else if meta.is_file() {
        let file = File::open(path).with_context(|| format!("{}", path.display()))?;
        (Box::new(file), meta.len())
    } else {
        bail!("{}: neither a file nor a folder", path.display());
    };
    let mut query = format!(
        "name={}&label_column={}&test_fraction={}",
        encode(&name),
        encode(&args.label_column),
        args.test_fraction
    );
    if let Some(resize) = &args.resize {
        query.push_str(&format!("&resize={}", encode(resize)));
    }
    if let Some(channels) = args.channels {
        query.push_str(&format!("&channels={channels}"));
    }
    let progress = Progress {
        inner: body,
        sent: 0,
        total,
        started: Instant::now(),
        terminal: std::io::stderr().is_terminal(),
        last_tenth: 0,
        name: name.clone(),
    };
    let client = Client::new(&args.server);
    let started = Instant::now();
    let answer = client.post_stream(&format!("/datasets?{query}"), progress)?;
    if args.json {
        return Ok(format!("{}\n", String::from_utf8_lossy(&answer)));
    }
    let uploaded: Uploaded =
        serde_json::from_slice(&answer).context("unexpected answer from POST /datasets")?;
    let mut out = format!(
        "stored `{}` in {:.1} s ({})\n",
        uploaded.dataset.name,
        started.elapsed().as_secs_f64(),
        if uploaded.new_content {
            "new content"
        } else {
            "the same content was stored already"
        }
    );
    out.push_str(&describe(&uploaded.dataset));
    out.push_str(&format!(
        "\nsearch it: \"dataset\": \"{}\" in a spec (nas submit), or pick it in the dashboard\n",
        uploaded.dataset.name
    ));
    Ok(out)
}

/// A shape `[c, h, w]` as people read it: `28x28x1`.
fn shape(input: [usize; 3]) -> String {
    format!("{}x{}x{}", input[1], input[2], input[0])
}

fn mib(bytes: i64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}

/// An uploaded dataset, in detail.
fn describe(d: &DatasetRow) -> String {
    let s = &d.summary;
    let (train, test): (u64, u64) = (
        s.train_per_class.iter().sum(),
        s.test_per_class.iter().sum(),
    );
    let mut out = format!(
        "  id       {}\n  input    {} (HxWxC)\n  classes  {}\n  images   {} training, {} test ({})\n  format   {}{}\n  size     {}\n",
        d.id,
        shape(s.input),
        s.class_names.len(),
        thousands(train),
        thousands(test),
        if s.test_given {
            "test split given by the data"
        } else {
            "test split carved at upload, stratified"
        },
        s.format,
        if s.skipped > 0 {
            format!(", {} non-image files skipped", s.skipped)
        } else {
            String::new()
        },
        mib(d.bytes),
    );
    let mut table = Table::new(&[
        ("label", Align::Right),
        ("class", Align::Left),
        ("train", Align::Right),
        ("test", Align::Right),
    ]);
    for (i, class) in s.class_names.iter().enumerate() {
        table.row(vec![
            i.to_string(),
            class.clone(),
            thousands(s.train_per_class.get(i).copied().unwrap_or(0)),
            thousands(s.test_per_class.get(i).copied().unwrap_or(0)),
        ]);
    }
    out.push('\n');
    out.push_str(&table.render());
    out
}

/// `nas dataset list`.
pub fn list(args: &DatasetListArgs) -> anyhow::Result<String> {
    let client = Client::new(&args.server);
    if args.json {
        let bytes = client.get_bytes("/datasets")?;
        return Ok(format!("{}\n", String::from_utf8_lossy(&bytes)));
    }
    let listing: Listing = client.get("/datasets")?;
    let mut table = Table::new(&[
        ("name", Align::Left),
        ("source", Align::Left),
        ("input", Align::Left),
        ("classes", Align::Right),
        ("train", Align::Right),
        ("test", Align::Right),
        ("id", Align::Left),
    ]);
    for d in &listing.datasets {
        table.row(vec![
            d.name.clone(),
            "built-in".into(),
            shape(d.input),
            d.class_names.len().to_string(),
            thousands(d.train_images),
            thousands(d.test_images),
            "-".into(),
        ]);
    }
    for d in &listing.uploaded {
        let s = &d.summary;
        table.row(vec![
            d.name.clone(),
            format!("upload ({})", s.format),
            shape(s.input),
            s.class_names.len().to_string(),
            thousands(s.train_per_class.iter().sum()),
            thousands(s.test_per_class.iter().sum()),
            d.id.chars().take(12).collect(),
        ]);
    }
    Ok(table.render())
}

/// `nas dataset show NAME`.
pub fn show(args: &DatasetShowArgs) -> anyhow::Result<String> {
    let client = Client::new(&args.server);
    if let Some(built_in) = search::dataset::CATALOG
        .iter()
        .find(|d| d.name == args.name)
    {
        if args.json {
            return Ok(format!("{}\n", serde_json::to_string_pretty(built_in)?));
        }
        let input = built_in.input;
        return Ok(format!(
            "{} (built-in): {}\n  input    {}x{}x{} (HxWxC)\n  classes  {}: {}\n  images   {} training, {} test\n",
            built_in.name,
            built_in.description,
            input.height,
            input.width,
            input.channels,
            built_in.classes,
            built_in.class_names.join(", "),
            thousands(built_in.train_images as u64),
            thousands(built_in.test_images as u64),
        ));
    }
    let path = format!("/datasets/{}", encode(&args.name));
    if args.json {
        let bytes = client.get_bytes(&path)?;
        return Ok(format!("{}\n", String::from_utf8_lossy(&bytes)));
    }
    let dataset: DatasetRow = client.get(&path)?;
    Ok(format!("{}\n{}", dataset.name, describe(&dataset)))
}

/// `nas dataset rm NAME`.
pub fn remove(args: &DatasetShowArgs) -> anyhow::Result<String> {
    let client = Client::new(&args.server);
    client.delete(&format!("/datasets/{}", encode(&args.name)))?;
    Ok(format!("removed `{}`\n", args.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_valid_dataset_names() {
        assert_eq!(default_name(Path::new("/tmp/My Pets.tar.gz")), "My-Pets");
        assert_eq!(
            default_name(Path::new("fashion_train.csv")),
            "fashion_train"
        );
        assert_eq!(default_name(Path::new("...")), "dataset");
        assert_eq!(encode("a b/é"), "a%20b%2F%C3%A9");
    }
}
