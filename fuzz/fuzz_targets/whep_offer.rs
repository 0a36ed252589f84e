//! The WHEP offer path as `mado run` takes it: the request's SDP checked and
//! parsed, then handed to the hub, which answers or refuses and then runs
//! its timers; never a panic, and a refused offer holds no viewer slot.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use mado::live::{check_offer, Hub, HubConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(offer) = check_offer(Some("application/sdp"), data) else {
        return;
    };
    let config = HubConfig {
        candidates: vec!["127.0.0.1:8189".parse().unwrap()],
        max_viewers: 2,
        keyframe_min_interval: Duration::from_millis(300),
        pacing_kbps: 0,
    };
    let mut hub = Hub::new(config, [7; 32]);
    let mut now = Instant::now();
    match hub.add_viewer(now, offer) {
        Ok((id, answer)) => {
            assert!(answer.to_sdp_string().starts_with("v=0"));
            assert_eq!(hub.viewer_count(), 1);
            for _ in 0..3 {
                now += Duration::from_millis(50);
                hub.handle_timeout(now);
                while hub.poll_output().is_some() {}
            }
            hub.remove_viewer(id).expect("the viewer just added");
        }
        Err(_) => assert_eq!(hub.viewer_count(), 0, "a refused offer holds no slot"),
    }
});
