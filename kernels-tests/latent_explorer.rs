//! `examples/latent_explorer.rs` run headless on a few frames: training steps, two decodes into
//! textures and a render pass per frame in the host's encoder, frames written as PNGs.

#[path = "../examples/latent_explorer.rs"]
#[allow(dead_code)]
mod latent_explorer;

mod common;

#[test]
fn the_latent_explorer_runs_headless_and_its_frames_change() {
    let out = std::env::temp_dir().join(format!("aegpu-latent-explorer-{}", std::process::id()));
    let opts = latent_explorer::Options {
        frames: 4,
        steps_per_frame: 5,
        grid: 6,
        train: Some(2048),
        every: 3,
        data: common::data_dir(),
        out: out.clone(),
    };
    let outcome = latent_explorer::run(&opts).unwrap();
    // Frames 0 and 3 (every 3rd) and the last (also 3).
    assert_eq!(outcome.frames_written.len(), 2, "{:?}", outcome.frames_written);
    assert_eq!(outcome.losses.len(), 4, "one loss report per frame: {:?}", outcome.losses);
    assert!(outcome.losses.iter().all(|(_, l)| l.is_finite() && *l > 0.0), "{:?}", outcome.losses);
    assert_eq!(outcome.losses.iter().map(|l| l.0).collect::<Vec<_>>(), [1, 6, 11, 16]);
    let first = image::open(&outcome.frames_written[0]).unwrap().to_rgba8();
    let last = image::open(&outcome.frames_written[1]).unwrap().to_rgba8();
    assert_eq!([first.width(), first.height()], outcome.size);
    // The grid (at 16, 16, 6 tiles of 28) changed with 15 steps of training.
    let grid = |img: &image::RgbaImage| -> Vec<u8> {
        (16..16 + 168).flat_map(|y| (16..16 + 168).map(move |x| img.get_pixel(x, y)[0])).collect()
    };
    assert_ne!(grid(&first), grid(&last), "the decoded grid did not change");
    // The marker ring is drawn at the cursor's position, 9 pixels from its centre.
    for (img, at) in [(&first, outcome.markers[0]), (&last, outcome.markers[3])] {
        let px = img.get_pixel((at[0] + 9.0) as u32, at[1] as u32);
        assert_eq!(&px.0[..3], &[255, 64, 51], "marker colour at {at:?}");
    }
    let _ = std::fs::remove_dir_all(out);
}
