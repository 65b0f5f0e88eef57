//! Archives as hostile input: the entries of a `.zip`, `.tar` or `.tar.gz`
//! read as data (names are only looked at, never used as paths), with the
//! entry count and the unpacked bytes bounded while reading, so a
//! decompression bomb stops at the bound instead of filling memory.

use std::fs::File;
use std::io::Read;
use std::path::{Component, Path};

use flate2::read::GzDecoder;

use super::{ImportError, ImportLimits};

/// One file of an archive.
#[derive(Debug, Clone)]
pub(super) struct Entry {
    /// Its name in the archive, `/`-separated, checked to be relative and
    /// free of `..`.
    pub name: String,
    /// Its bytes, unpacked.
    pub bytes: Vec<u8>,
}

/// Which archive a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ArchiveKind {
    Zip,
    Tar,
    TarGz,
}

/// An entry name as a safe relative path, or the error naming it.
fn checked_name(name: &str) -> Result<String, ImportError> {
    let unsafe_name = |reason: &str| ImportError::Entry {
        entry: name.to_owned(),
        reason: reason.to_owned(),
    };
    let name = name.replace('\\', "/");
    if name.starts_with('/') || name.contains(':') {
        return Err(unsafe_name("an absolute path is refused"));
    }
    for part in Path::new(&name).components() {
        match part {
            Component::ParentDir => return Err(unsafe_name("a `..` in an entry name is refused")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_name("an absolute path is refused"))
            }
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    Ok(name.trim_start_matches("./").to_owned())
}

/// Keeps count of what an archive unpacks to.
struct Budget<'l> {
    limits: &'l ImportLimits,
    entries: usize,
    bytes: u64,
}

impl Budget<'_> {
    fn entry(&mut self) -> Result<(), ImportError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(ImportError::Bound {
                what: "archive entries".into(),
                limit: self.limits.max_entries as u64,
            });
        }
        Ok(())
    }

    /// Reads `reader` to its end within the unpacked-bytes bound.
    fn read(&mut self, name: &str, reader: impl Read) -> Result<Vec<u8>, ImportError> {
        let room = self.limits.max_unpacked_bytes.saturating_sub(self.bytes);
        let mut bytes = Vec::new();
        reader
            .take(room + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| ImportError::Entry {
                entry: name.to_owned(),
                reason: format!("cannot be unpacked: {e}"),
            })?;
        self.bytes += bytes.len() as u64;
        if self.bytes > self.limits.max_unpacked_bytes {
            return Err(ImportError::Bound {
                what: "unpacked bytes".into(),
                limit: self.limits.max_unpacked_bytes,
            });
        }
        Ok(bytes)
    }
}

/// Every regular file of the archive at `path`, with the number of other
/// entries (links, devices) passed over.
pub(super) fn read_entries(
    path: &Path,
    kind: ArchiveKind,
    limits: &ImportLimits,
) -> Result<(Vec<Entry>, usize), ImportError> {
    let file = File::open(path).map_err(|e| ImportError::io(path, e))?;
    let mut budget = Budget {
        limits,
        entries: 0,
        bytes: 0,
    };
    match kind {
        ArchiveKind::Zip => zip_entries(file, &mut budget),
        ArchiveKind::Tar => tar_entries(file, &mut budget),
        ArchiveKind::TarGz => tar_entries(GzDecoder::new(file), &mut budget),
    }
}

fn zip_entries(file: File, budget: &mut Budget<'_>) -> Result<(Vec<Entry>, usize), ImportError> {
    let not_zip =
        |e: zip::result::ZipError| ImportError::Format(format!("a broken zip archive: {e}"));
    let mut archive = zip::ZipArchive::new(file).map_err(not_zip)?;
    let (mut entries, mut skipped) = (Vec::new(), 0);
    for i in 0..archive.len() {
        budget.entry()?;
        let entry = archive.by_index(i).map_err(not_zip)?;
        let name = checked_name(entry.name())?;
        if entry.is_dir() {
            continue;
        }
        if entry.is_symlink() {
            skipped += 1;
            continue;
        }
        let bytes = budget.read(&name, entry)?;
        entries.push(Entry { name, bytes });
    }
    Ok((entries, skipped))
}

fn tar_entries(
    reader: impl Read,
    budget: &mut Budget<'_>,
) -> Result<(Vec<Entry>, usize), ImportError> {
    let not_tar = |e: std::io::Error| ImportError::Format(format!("a broken tar archive: {e}"));
    let mut archive = tar::Archive::new(reader);
    let (mut entries, mut skipped) = (Vec::new(), 0);
    for entry in archive.entries().map_err(not_tar)? {
        budget.entry()?;
        let entry = entry.map_err(not_tar)?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = checked_name(&raw)?;
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            skipped += 1;
            continue;
        }
        let bytes = budget.read(&name, entry)?;
        entries.push(Entry { name, bytes });
    }
    Ok((entries, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_climb_or_start_at_the_root_are_refused() {
        for bad in [
            "../x.png",
            "a/../../x.png",
            "/etc/passwd",
            "C:/x.png",
            "..\\x.png",
        ] {
            assert!(
                matches!(checked_name(bad), Err(ImportError::Entry { .. })),
                "{bad}"
            );
        }
        assert_eq!(checked_name("./cat/1.png").expect("fine"), "cat/1.png");
    }
}
