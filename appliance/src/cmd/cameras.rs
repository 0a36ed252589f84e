//! `mado cameras`: what capture devices there are and what they offer.

use std::process::ExitCode;

use board::camera::list_cameras;
use serde_json::json;

pub fn list() -> anyhow::Result<ExitCode> {
    let cameras = list_cameras();
    if cameras.is_empty() {
        eprintln!("mado: no camera found");
    }
    for camera in cameras {
        let formats: Vec<_> = camera
            .formats
            .iter()
            .map(|f| {
                let sizes: Vec<_> = f
                    .sizes
                    .iter()
                    .map(|s| json!({"width": s.width, "height": s.height, "fps": s.fps}))
                    .collect();
                json!({"fourcc": f.fourcc, "usable": f.format.is_some(), "sizes": sizes})
            })
            .collect();
        let line = json!({"path": camera.path, "card": camera.card, "driver": camera.driver, "formats": formats});
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
