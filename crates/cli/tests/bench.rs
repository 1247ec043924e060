//! Smoke test of `mailslot bench`: it runs, reports the fields scripts read,
//! and reports no loss. It never checks a number against a time: benchmarks
//! do not gate CI.

use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_mailslot");

fn bench(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("bench")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn json(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "bench failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let text = String::from_utf8(o.stdout.clone()).unwrap();
    assert_eq!(text.lines().count(), 1, "one JSON object: {text}");
    serde_json::from_str(&text).unwrap()
}

fn positive(v: &serde_json::Value, field: &str) {
    let n = v[field]
        .as_f64()
        .unwrap_or_else(|| panic!("{field} missing in {v}"));
    assert!(n > 0.0, "{field} = {n} in {v}");
}

#[test]
fn bench_json_reports_throughput_and_baselines_without_loss() {
    let v = json(&bench(&[
        "--json",
        "--size",
        "64",
        "--writers",
        "1",
        "--seconds",
        "1",
        "--mode",
        "plain",
    ]));
    for f in ["msgs_per_s", "mb_per_s", "cpu_ns_per_msg"] {
        positive(&v, f);
    }
    assert_eq!(v["loss"], false);
    assert_eq!(v["mode"], "plain");
    assert!(v.get("p50_us").is_none(), "latency only with --latency");
    for b in ["seqpacket", "dgram", "mq", "shm-ring"] {
        let base = &v["baselines"][b];
        assert!(
            base.get("ratio").is_some() || base.get("error").is_some(),
            "{b}: {base}"
        );
    }
    positive(&v["baselines"]["seqpacket"], "ratio");
    positive(&v["baselines"]["shm-ring"], "ratio");
}

/// The raw ring baseline carries every message, checked like the others
/// (a loss or a bad byte fails the run): small messages from 4 writers
/// (one ring each), wrapping 60 KiB ones, and 3 MiB ones larger than the
/// ring, which stream through it; and it answers ping-pong.
#[test]
fn bench_shm_ring_baseline_reports_messages_without_loss() {
    for (size, writers, latency) in [("64", "4", true), ("60k", "2", false), ("3m", "2", false)] {
        let mut args = vec![
            "--json",
            "--size",
            size,
            "--writers",
            writers,
            "--seconds",
            "0.5",
            "--only",
            "plain,shm-ring",
        ];
        if latency {
            args.push("--latency");
        }
        let v = json(&bench(&args));
        let ring = &v["baselines"]["shm-ring"];
        assert!(ring.get("error").is_none(), "{size} x {writers}: {ring}");
        for f in ["msgs_per_s", "mb_per_s", "cpu_ns_per_msg", "ratio"] {
            positive(ring, f);
        }
        if latency {
            for f in ["p50_us", "p99_us", "p50_ratio"] {
                positive(ring, f);
            }
        }
        assert_eq!(v["loss"], false);
    }
}

#[test]
fn bench_json_latency_reports_percentiles() {
    let v = json(&bench(&[
        "--json",
        "--size",
        "64",
        "--writers",
        "1",
        "--seconds",
        "1",
        "--mode",
        "plain",
        "--latency",
    ]));
    for f in ["msgs_per_s", "mb_per_s", "p50_us", "p99_us", "p999_us"] {
        positive(&v, f);
    }
    assert!(v["p50_us"].as_f64() <= v["p99_us"].as_f64());
    assert_eq!(v["loss"], false);
    positive(&v["baselines"]["seqpacket"], "p50_ratio");
}

#[test]
fn bench_refuses_bad_arguments_with_exit_2() {
    for (args, says) in [
        (&["--size", "8"][..], "at least 12"),
        (&["--size", "0"][..], "at least 12"),
        (&["--size", "lots"][..], "not a size"),
        (&["--writers", "0"][..], "writers"),
        (&["--seconds", "0"][..], "more than 0"),
    ] {
        let o = bench(args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
