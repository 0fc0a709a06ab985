//! `trader sim` standalone: prints its base URL and answers Alpaca requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};

use crate::common::*;

/// A raw HTTP/1.1 GET with Alpaca's auth headers; returns the whole response.
fn get(base: &str, path: &str, key: &str, secret: &str) -> String {
    let addr = base.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAPCA-API-KEY-ID: {key}\r\nAPCA-API-SECRET-KEY: {secret}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn sim_prints_its_url_and_serves_the_keys_of_a_key_file() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys.toml");
    fs_err::write(
        &keys,
        "[[keys]]\nkey_id = \"PKA\"\nsecret_key = \"sa\"\n\n[[keys]]\nkey_id = \"PKB\"\nsecret_key = \"sb\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_trader"))
        .args([
            "sim",
            "--data",
            &repo().join("data/coinbase_2017_2018").display().to_string(),
        ])
        .args([
            "--keys",
            &keys.display().to_string(),
            "--start",
            "2018-01-01T00:30:00Z",
            "--speed",
            "1",
        ])
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line.trim().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let clock = get(&base, "/v2/clock", "PKB", "sb");
    assert!(clock.starts_with("HTTP/1.1 200"), "{clock}");
    // Speed 1 from 00:30: at most minutes have passed, even on a loaded machine.
    assert!(clock.contains("\"timestamp\":\"2018-01-01T00:3"), "{clock}");
    let bars = get(
        &base,
        "/v1beta3/crypto/us/bars?symbols=ETH/USD&timeframe=1Hour&start=2017-12-31T22:00:00Z",
        "PKA",
        "sa",
    );
    assert!(
        bars.contains("\"2017-12-31T23:00:00Z\"") && !bars.contains("2018-01-01T00:00:00Z"),
        "{bars}"
    );
    assert!(get(&base, "/v2/account", "PKA", "sb").starts_with("HTTP/1.1 401"));
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn sim_without_key_pairs_says_how_to_give_them() {
    let o = Command::new(env!("CARGO_BIN_EXE_trader"))
        .args([
            "sim",
            "--data",
            &repo().join("data/coinbase_2017_2018").display().to_string(),
        ])
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no key pairs"), "{}", stderr(&o));
}

/// Starts `trader sim` with one key pair from the environment; returns the
/// child and its base URL.
fn start_sim(key: &str, secret: &str) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_trader"))
        .args([
            "sim",
            "--data",
            &repo().join("data/coinbase_2017_2018").display().to_string(),
            "--start",
            "2018-01-01T00:30:00Z",
        ])
        .env("APCA_API_KEY_ID", key)
        .env("APCA_API_SECRET_KEY", secret)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line.trim().to_owned())
}

fn account(base: &str, key: &str, secret: &str, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_trader"))
        .arg("account")
        .args(extra)
        .env("APCA_API_BASE_URL", base)
        .env("APCA_API_DATA_URL", base)
        .env("APCA_API_KEY_ID", key)
        .env("APCA_API_SECRET_KEY", secret)
        .env("RUST_LOG", "trace")
        .output()
        .unwrap()
}

#[test]
fn account_reads_the_simulator_through_the_env_urls() {
    let (mut child, base) = start_sim("PKACC", "secret-acc-1234");
    let o = account(&base, "PKACC", "secret-acc-1234", &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(&format!("account at {base}\n")), "{out}");
    assert!(
        out.contains("  cash               100000.00 USD\n"),
        "{out}"
    );
    assert!(
        out.contains("positions: 0") && out.contains("open orders: 0"),
        "{out}"
    );
    let o = account(&base, "PKACC", "secret-acc-1234", &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["cash"], 100_000.0);
    assert_eq!(v["live"], false);
    // Traced at TRACE, yet neither key is in stderr.
    assert!(!stderr(&o).contains("secret-acc-1234") && !stderr(&o).contains("PKACC"));

    // Wrong keys: exit 1, "unauthorized", and the keys are not echoed.
    let o = account(&base, "PKACC", "not-the-secret", &[]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("unauthorized"), "{err}");
    assert!(
        !err.contains("not-the-secret") && !err.contains("PKACC"),
        "{err}"
    );
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn account_names_a_bad_url_or_missing_keys() {
    let o = account("localhost:8080", "PK", "s", &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("APCA_API_BASE_URL = \"localhost:8080\""),
        "{}",
        stderr(&o)
    );
    let o = Command::new(env!("CARGO_BIN_EXE_trader"))
        .arg("account")
        .env_remove("APCA_API_KEY_ID")
        .env_remove("APCA_API_SECRET_KEY")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("no Alpaca keys"), "{}", stderr(&o));
}
