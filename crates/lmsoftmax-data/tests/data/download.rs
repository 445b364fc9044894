//! `--download` against a local HTTP server on 127.0.0.1 serving an archive of the real
//! CIFAR-10 subset (no internet here).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use lmsoftmax_data::download::{
    Archive, DEFAULT_DOWNLOAD_TIMEOUT, check_md5, download_and_extract, md5_hex,
};
use lmsoftmax_data::{Cifar, CifarLabels, load_cifar};

use crate::common::shared_data;

/// Serves `body` with `status` to up to `requests` connections; returns the base address.
fn serve(body: Vec<u8>, status: &'static str, requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(requests) {
            let Ok(mut s) = stream else { return };
            let mut req = [0u8; 2048];
            let _ = s.read(&mut req);
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(&body);
        }
    });
    format!("http://{addr}")
}

/// A .tar.gz with `cifar-10-batches-py/` holding the real subset files.
fn subset_tarball() -> Vec<u8> {
    let enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut tar = tar::Builder::new(enc);
    tar.append_dir_all(
        "cifar-10-batches-py",
        shared_data().join("cifar-10-subset/cifar-10-batches-py"),
    )
    .unwrap();
    tar.into_inner().unwrap().finish().unwrap()
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|r| {
            r.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn downloads_checks_md5_and_extracts() {
    let body = subset_tarball();
    let base = serve(body.clone(), "200 OK", 1);
    let dest = tempfile::tempdir().unwrap();
    let archive = Archive {
        url: format!("{base}/cifar-10-python.tar.gz"),
        md5: md5_hex(&body),
        folder: "cifar-10-batches-py".into(),
        timeout: DEFAULT_DOWNLOAD_TIMEOUT,
    };
    let folder = download_and_extract(&archive, dest.path()).unwrap();
    assert_eq!(folder, dest.path().join("cifar-10-batches-py"));
    assert_eq!(leftovers(dest.path()), ["cifar-10-batches-py"]);
    let splits = load_cifar(Cifar::Ten, dest.path(), CifarLabels::Fine).unwrap();
    assert_eq!(splits.train.len(), 5085);
    // a second call finds the folder and does not download (the server served only once)
    assert_eq!(download_and_extract(&archive, dest.path()).unwrap(), folder);
}

#[test]
fn md5_mismatch_and_http_errors_leave_nothing_behind() {
    let body = subset_tarball();
    let dest = tempfile::tempdir().unwrap();
    let archive = Archive {
        url: format!("{}/x.tar.gz", serve(body, "200 OK", 1)),
        md5: "0".repeat(32),
        folder: "cifar-10-batches-py".into(),
        timeout: DEFAULT_DOWNLOAD_TIMEOUT,
    };
    let err = download_and_extract(&archive, dest.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not match the expected 00000000"),
        "{err}"
    );
    assert!(
        leftovers(dest.path()).is_empty(),
        "{:?}",
        leftovers(dest.path())
    );

    let archive = Archive {
        url: format!(
            "{}/missing.tar.gz",
            serve(b"no".to_vec(), "404 Not Found", 1)
        ),
        ..archive
    };
    let err = download_and_extract(&archive, dest.path())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("missing.tar.gz") && err.contains("404"),
        "{err}"
    );
    assert!(leftovers(dest.path()).is_empty());

    let junk = b"this is not a tarball".to_vec();
    let archive = Archive {
        url: format!("{}/junk.tar.gz", serve(junk.clone(), "200 OK", 1)),
        md5: md5_hex(&junk),
        ..archive
    };
    let err = download_and_extract(&archive, dest.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a valid .tar.gz archive"), "{err}");
    assert!(
        leftovers(dest.path()).is_empty(),
        "{:?}",
        leftovers(dest.path())
    );
}

#[test]
fn md5_matches_the_manifest() {
    // ../shared/data/MANIFEST.md lists this file's MD5 (the original batches.meta)
    let bytes =
        std::fs::read(shared_data().join("cifar-10-subset/cifar-10-batches-py/batches.meta"))
            .unwrap();
    assert_eq!(md5_hex(&bytes), "5ff9c542aee3614f3951f8cda6e48888");
}

/// Accepts one connection, reads the request, sends `reply` (maybe nothing), then holds the
/// connection open without a further byte for `hold`; returns the base address.
fn serve_then_stall(reply: Vec<u8>, hold: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut req = [0u8; 2048];
        let _ = s.read(&mut req);
        let _ = s.write_all(&reply);
        let _ = s.flush();
        std::thread::sleep(hold);
        drop(s);
    });
    format!("http://{addr}")
}

fn stalling_archive(base: &str, timeout: Duration) -> Archive {
    Archive {
        url: format!("{base}/stall.tar.gz"),
        md5: "0".repeat(32),
        folder: "cifar-10-batches-py".into(),
        timeout,
    }
}

/// Downloads `archive` into a fresh folder, expecting a timeout within a few seconds; returns
/// the message.
fn expect_timeout(archive: &Archive) -> String {
    let dest = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let err = download_and_extract(archive, dest.path())
        .unwrap_err()
        .to_string();
    let took = start.elapsed();
    assert!(
        took >= archive.timeout && took < Duration::from_secs(10),
        "{took:?}: {err}"
    );
    assert!(
        leftovers(dest.path()).is_empty(),
        "{:?}",
        leftovers(dest.path())
    );
    err
}

#[test]
fn download_fails_on_a_server_that_never_answers() {
    // the server accepts the connection, reads the request and says nothing for a minute
    let base = serve_then_stall(Vec::new(), Duration::from_secs(60));
    let archive = stalling_archive(&base, Duration::from_millis(400));
    let err = expect_timeout(&archive);
    assert!(
        err.contains(&archive.url) && err.contains("no progress for 0.4 s"),
        "{err}"
    );
}

#[test]
fn download_fails_on_a_server_that_stalls_mid_body() {
    // headers and 10 of the promised 100000 bytes, then silence
    let mut reply =
        b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n".to_vec();
    reply.extend_from_slice(&[0x1f; 10]);
    let base = serve_then_stall(reply, Duration::from_secs(60));
    let archive = stalling_archive(&base, Duration::from_millis(400));
    let err = expect_timeout(&archive);
    assert!(
        err.contains(&archive.url) && err.contains("no progress for 0.4 s"),
        "{err}"
    );
}

#[test]
fn bad_md5_is_refused_before_any_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let dest = tempfile::tempdir().unwrap();
    for bad in [
        "",
        "c58f30108f718f92721af3b95e74349",
        "g58f30108f718f92721af3b95e74349a",
    ] {
        let archive = Archive {
            url: format!("http://{addr}/cifar-10-python.tar.gz"),
            md5: bad.into(),
            folder: "cifar-10-batches-py".into(),
            timeout: Duration::from_secs(1),
        };
        let err = download_and_extract(&archive, dest.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{bad:?}")) && err.contains("not 32 hex digits"),
            "{err}"
        );
        assert!(check_md5(bad).is_err());
    }
    // a connection would wait in the listen backlog: there is none
    let pending = listener.accept();
    assert!(
        matches!(&pending, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the server was contacted: {pending:?}"
    );
    assert!(leftovers(dest.path()).is_empty());
    // either case of hex digits is an MD5
    assert!(check_md5("C58F30108F718F92721AF3B95E74349A").is_ok());
}
