//! `aegpu profile` on lavapipe (which has timestamp queries): the Chrome trace is valid JSON with
//! one complete event per dispatch of every timed step, and the per-kernel table accounts for the
//! step's GPU time within 10 %.

mod common;
use common::cli::{TempDir, aegpu, ok, s};

#[test]
fn profile_writes_a_trace_and_a_table_that_sums_to_the_step() {
    let tmp = TempDir::new("profile");
    let t = tmp.path();
    let trace = t.join("trace.json");
    let args =
        ["profile", "--preset", "shallow", "--batch", "64", "--steps", "2", "--json", "--trace", s(&trace)];
    let out = ok(aegpu(t, &args), "profile");
    let json_start = out.find('{').expect("a JSON report");
    let report: serde_json::Value = serde_json::from_str(&out[json_start..]).expect("the report is JSON");
    let dispatches = report["dispatches_per_step"].as_u64().unwrap() as usize;
    assert!(dispatches >= 10, "{report}");
    assert!(report["steps_per_submit"].as_u64().is_some_and(|k| k >= 1), "{report}");
    assert!(report["submits_per_mnist_epoch"].as_u64().is_some_and(|s| s >= 1), "{report}");
    let kernels = report["kernels"].as_array().unwrap();
    let listed: u64 = kernels.iter().map(|k| k["dispatches"].as_u64().unwrap()).sum();
    assert_eq!(listed as usize, 2 * dispatches, "every dispatch of both steps is in the table");
    let percent: f64 = kernels.iter().map(|k| k["percent"].as_f64().unwrap()).sum();
    assert!((90.0..=100.5).contains(&percent), "the kernels account for {percent:.1}% of the step");
    let trace: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&trace).unwrap()).expect("trace JSON");
    let events = trace["traceEvents"].as_array().expect("traceEvents");
    assert_eq!(events.len(), 2 * dispatches);
    for e in events {
        assert_eq!(e["ph"], "X");
        assert!(e["dur"].as_f64().unwrap() >= 0.0 && e["ts"].as_f64().unwrap() >= 0.0, "{e}");
        assert!(e["name"].as_str().is_some_and(|n| !n.is_empty()));
    }
}

/// `--activations f16` profiles the step with its hidden activations stored as f16: same dispatches,
/// a smaller activation arena; the shallow preset (its one hidden layer is the code) is refused.
#[test]
fn profile_compares_f16_activation_storage() {
    let tmp = TempDir::new("profile-f16");
    let t = tmp.path();
    let trace = t.join("trace.json");
    let report = |storage: &str| -> serde_json::Value {
        let args = [
            "profile",
            "--preset",
            "deep",
            "--batch",
            "16",
            "--steps",
            "1",
            "--json",
            "--trace",
            s(&trace),
            "--activations",
            storage,
        ];
        let out = ok(aegpu(t, &args), storage);
        serde_json::from_str(&out[out.find('{').expect("a JSON report")..]).expect("JSON")
    };
    let (f32_report, f16_report) = (report("f32"), report("f16"));
    assert_eq!(f16_report["activations"], "f16");
    assert_eq!(f16_report["dispatches_per_step"], f32_report["dispatches_per_step"]);
    let bytes = |r: &serde_json::Value| r["activation_bytes"].as_u64().unwrap();
    assert!(bytes(&f16_report) < bytes(&f32_report), "{f16_report} against {f32_report}");
    let args = ["profile", "--preset", "shallow", "--batch", "16", "--steps", "1", "--activations", "f16"];
    common::cli::fails(aegpu(t, &args), "shallow in f16", &["besides its code", "--activations f32"]);
}
