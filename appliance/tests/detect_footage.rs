//! Real footage through `mado record` with the general detector: people in
//! the street scene are found and `mado inspect` shows them.

mod common;

use common::{mado, read_ivf, run_ok};
use serde_json::Value;

#[test]
fn people_are_detected_in_street_footage_and_carried_in_the_stream() {
    let footage = common::footage("vtest-768x576.y4m");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mado.toml");
    std::fs::write(
        &config,
        format!("{}mode = \"exact\"\nmax_rate = 1000.0\n", common::ssd_detect_config()),
    )
    .unwrap();
    let out = dir.path().join("street.ivf");
    let source = format!("file:{}", footage.display());
    run_ok(
        mado()
            .arg("--config")
            .arg(&config)
            // Real time, as on the device: the detector takes the newest
            // frame whenever it is free, so it sees a share of the frames
            // that depends on its speed, not on the encoder's.
            .args(["record", "--pace", "realtime", "--source", &source])
            .args(["--frames", "90", "--output", out.to_str().unwrap()]),
    );
    // In real time a frame waiting for its own detections may make the
    // encoder drop an older one (counted in the recorder's report), never stall.
    let recorded = read_ivf(&out).1.len();
    assert!((60..=90).contains(&recorded), "{recorded} of 90 frames recorded");

    let inspect = run_ok(mado().arg("inspect").arg(&out));
    let lines: Vec<Value> = String::from_utf8(inspect.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Frames the detector looked at carry their own result (exact mode).
    let sampled: Vec<&Value> = lines
        .iter()
        .filter(|l| l["meta"]["detections"]["frame_seq"] == l["meta"]["seq"])
        .collect();
    assert!(
        sampled.len() >= 15,
        "only {} of the recorded frames were looked at",
        sampled.len()
    );
    let with_person = sampled
        .iter()
        .filter(|l| {
            l["meta"]["detections"]["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["label"] == "Person")
        })
        .count();
    assert!(
        with_person * 10 >= sampled.len() * 9,
        "a Person in {with_person} of {} sampled frames",
        sampled.len()
    );
    // The motion gate is on by default: every frame carries its motion OBU;
    // people walk all the time, so the detector runs at full rate and most
    // frames have motion regions.
    assert!(
        lines.iter().all(|l| l["motion"]["mode"].is_string()),
        "a frame without its motion OBU"
    );
    let with_regions = lines
        .iter()
        .filter(|l| l["motion"]["moving"] == true && !l["motion"]["regions"].as_array().unwrap().is_empty())
        .count();
    assert!(
        with_regions * 2 >= lines.len(),
        "motion regions in only {with_regions} of {} frames",
        lines.len()
    );
    let first = &sampled[0]["meta"]["detections"];
    assert_eq!(first["model"], "ssd-mnv2-oidv4");
    assert!(first["inference_us"].as_u64().unwrap() > 0);
    for item in first["items"].as_array().unwrap() {
        let b: Vec<f64> = item["box"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(
            b[0] + b[2] <= 1.0 && b[1] + b[3] <= 1.0 && b[2] > 0.0 && b[3] > 0.0,
            "{item}"
        );
    }
}
