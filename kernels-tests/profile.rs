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
    // The host's side and the launch model (see the next test for their arithmetic).
    assert!(report["host_record_us_per_step"].as_f64().is_some_and(|us| us > 0.0), "{report}");
    assert_eq!(report["passes_per_step"], 1, "{report}");
    assert!(report["bytes_written_per_step"].as_u64().is_some_and(|b| b > 0), "{report}");
    assert!(report["launch_model"]["floor_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{report}");
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

/// The launch model's arithmetic, with every cost given on the command line: an MNIST epoch at
/// batch 100 is 600 steps in 75 submits of 8; with 1 µs per dispatch, 10 µs per pass and 100 µs per
/// submit, the GPU's launch floor is 600 x (d x 1 + 1 x 10) + 75 x 100 µs.
#[test]
fn the_launch_model_adds_up_the_launches_of_an_epoch() {
    let tmp = TempDir::new("profile-launch");
    let t = tmp.path();
    let trace = t.join("trace.json");
    let args = [
        "profile",
        "--preset",
        "shallow",
        "--batch",
        "100",
        "--steps",
        "1",
        "--json",
        "--trace",
        s(&trace),
        "--dispatch-us",
        "1",
        "--pass-us",
        "10",
        "--submit-us",
        "100",
    ];
    let out = ok(aegpu(t, &args), "profile");
    let report: serde_json::Value = serde_json::from_str(&out[out.find('{').unwrap()..]).unwrap();
    let d = report["dispatches_per_step"].as_f64().unwrap();
    let model = &report["launch_model"];
    assert_eq!(model["mnist_epoch_steps"], 600, "{model}");
    let want_ms = (600.0 * (d + 10.0) + 75.0 * 100.0) / 1e3;
    let got_ms = model["gpu_launch_ms"].as_f64().unwrap();
    assert!((got_ms - want_ms).abs() < 1e-9, "GPU launch floor {got_ms} ms, expected {want_ms}");
    let host_ms = 600.0 * report["host_record_us_per_step"].as_f64().unwrap() / 1e3;
    assert!((model["host_record_ms"].as_f64().unwrap() - host_ms).abs() < 1e-9, "{model}");
    assert_eq!(model["floor_ms"].as_f64().unwrap(), got_ms.max(host_ms), "{model}");
    let predicted = model["predicted_epoch_ms"].as_f64().unwrap();
    let verdict = if got_ms.max(host_ms) >= 0.5 * predicted { "launch-bound" } else { "compute-bound" };
    assert_eq!(model["verdict"], verdict, "{model}");
}
