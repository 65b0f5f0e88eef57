//! The dataset downloader against a local HTTP server: verified files land in
//! the cache and are not fetched twice; bad checksums, HTTP errors and
//! truncated transfers are clear errors that leave nothing behind.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use md5::{Digest, Md5};
use worker::data::{fetch_all, DataError, RemoteFile, Source};

/// A one-file-per-path HTTP/1.1 server. `lie_about_length` declares more
/// bytes than it sends (a dropped connection).
fn serve(
    files: Vec<(&'static str, Vec<u8>)>,
    lie_about_length: bool,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}/", listener.local_addr().expect("addr"));
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request = String::new();
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            reader.read_line(&mut request).ok();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).map_or(true, |n| n == 0) || line == "\r\n" {
                    break;
                }
            }
            let path = request
                .split_whitespace()
                .nth(1)
                .unwrap_or("/")
                .trim_start_matches('/')
                .to_owned();
            match files.iter().find(|(name, _)| *name == path) {
                Some((_, body)) => {
                    let declared = if lie_about_length {
                        body.len() + 100
                    } else {
                        body.len()
                    };
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {declared}\r\nConnection: close\r\n\r\n");
                    stream.write_all(head.as_bytes()).ok();
                    stream.write_all(body).ok();
                }
                None => {
                    stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").ok();
                }
            }
        }
    });
    (base, hits)
}

fn md5_hex(bytes: &[u8]) -> String {
    Md5::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn temp(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nas-dl-{tag}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    dir
}

fn source(base: &str, name: &str, md5: String) -> Source {
    Source {
        base_url: base.to_owned(),
        files: vec![RemoteFile {
            name: name.to_owned(),
            md5,
        }],
        unpack: false,
    }
}

#[test]
fn downloads_verifies_and_caches() {
    let body = b"pretend idx bytes".to_vec();
    let (base, hits) = serve(vec![("a.gz", body.clone())], false);
    let dir = temp("ok");
    let src = source(&base, "a.gz", md5_hex(&body));
    fetch_all(&src, &dir).expect("downloads");
    assert_eq!(std::fs::read(dir.join("a.gz")).expect("cached"), body);
    fetch_all(&src, &dir).expect("cached");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "a verified file is not fetched again"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_wrong_checksum_is_an_error_and_leaves_nothing() {
    let (base, _) = serve(vec![("a.gz", b"tampered".to_vec())], false);
    let dir = temp("md5");
    let err = fetch_all(&source(&base, "a.gz", md5_hex(b"original")), &dir).expect_err("mismatch");
    assert!(matches!(err, DataError::Checksum { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("a.gz")
            && text.contains("checksum mismatch")
            && text.contains(&md5_hex(b"original")),
        "{text}"
    );
    assert_eq!(
        std::fs::read_dir(&dir).expect("dir").count(),
        0,
        "no partial or bad file remains"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn http_errors_and_truncated_transfers_name_the_url() {
    let (base, _) = serve(vec![("short.gz", b"0123456789".to_vec())], true);
    let dir = temp("http");
    let err = fetch_all(&source(&base, "missing.gz", md5_hex(b"")), &dir)
        .expect_err("404")
        .to_string();
    assert!(err.contains("missing.gz") && err.contains("404"), "{err}");
    let err = fetch_all(&source(&base, "short.gz", md5_hex(b"0123456789")), &dir)
        .expect_err("truncated")
        .to_string();
    assert!(err.contains("short.gz"), "{err}");
    assert!(!dir.join("short.gz").exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn archives_are_unpacked_into_the_dataset_folder() {
    let mut tar_bytes = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(&mut tar_bytes, flate2::Compression::fast());
        let mut builder = tar::Builder::new(gz);
        let data = b"batch";
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(
                &mut header,
                "cifar-10-batches-bin/test_batch.bin",
                &data[..],
            )
            .expect("append");
        builder.into_inner().expect("tar").finish().expect("gz");
    }
    let (base, hits) = serve(vec![("c.tar.gz", tar_bytes.clone())], false);
    let dir = temp("tar");
    let src = Source {
        unpack: true,
        ..source(&base, "c.tar.gz", md5_hex(&tar_bytes))
    };
    fetch_all(&src, &dir).expect("unpacks");
    assert_eq!(
        std::fs::read(dir.join("test_batch.bin")).expect("unpacked"),
        b"batch"
    );
    assert!(
        !dir.join("c.tar.gz").exists(),
        "the archive is removed once unpacked"
    );
    fetch_all(&src, &dir).expect("again");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_damaged_cached_file_is_fetched_again() {
    let body = vec![7u8; 50_000];
    let (base, hits) = serve(vec![("a.gz", body.clone())], false);
    let dir = temp("damaged");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("a.gz"), &body[..1000]).expect("a truncated file");
    fetch_all(&source(&base, "a.gz", md5_hex(&body)), &dir).expect("fetched again");
    assert_eq!(std::fs::read(dir.join("a.gz")).expect("file"), body);
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn two_workers_fetching_into_one_cache_folder_both_end_with_the_verified_file() {
    let body: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let (base, _) = serve(vec![("big.gz", body.clone())], false);
    let dir = temp("shared");
    let src = source(&base, "big.gz", md5_hex(&body));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (src, dir) = (src.clone(), dir.clone());
            std::thread::spawn(move || fetch_all(&src, &dir))
        })
        .collect();
    for w in workers {
        w.join().expect("thread").expect("each fetch succeeds");
    }
    assert_eq!(std::fs::read(dir.join("big.gz")).expect("file"), body);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary file is left behind");
    std::fs::remove_dir_all(&dir).ok();
}
