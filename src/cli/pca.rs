//! `aegpu pca`: the linear baseline on the same data flags as `train`: fit `k` principal components
//! on the training set, report the test reconstruction error and PSNR, and draw the components and
//! reconstructions.

use std::path::PathBuf;

use super::DataArgs;
use super::data::load_source;
use crate::error::{Error, Result};
use crate::pca::{Pca, mse};

#[derive(clap::Args)]
pub struct PcaArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Number of components (compare with an autoencoder's code size).
    #[arg(long)]
    components: usize,
    /// Fit on only the first N training examples.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Evaluate on only the first N test examples.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Also write recon.png and filters.png (the components) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(super) fn pca_cmd(args: PcaArgs) -> Result<()> {
    let (mut split, map) = load_source(&args.data.source()?)?;
    if map.is_some() {
        eprintln!("note:    whitened patches: the errors below are in whitened units, not pixels");
    }
    for (flag, limit, ds) in [
        ("--train-limit", args.train_limit, &mut split.train),
        ("--test-limit", args.test_limit, &mut split.test),
    ] {
        match limit {
            Some(0) => return Err(Error::Config(format!("{flag} must be at least 1"))),
            Some(n) => *ds = ds.subset(0..n),
            None => {}
        }
    }
    let dim = split.train.dim();
    let start = std::time::Instant::now();
    let pca = Pca::fit(&split.train.images_f32(0..split.train.n), dim, args.components)?;
    let test = split.test.images_f32(0..split.test.n);
    let recon = pca.reconstruct(&test);
    let err = mse(&recon, &test);
    println!(
        "{}",
        serde_json::json!({
            "components": args.components,
            "train_examples": split.train.n,
            "test_examples": split.test.n,
            "explained_variance": pca.explained(),
            "test_mse_px": err,
            "test_psnr_db": super::train::psnr_db(err),
            "fit_s": start.elapsed().as_secs_f64(),
        })
    );
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let shape = split.test.shape();
        let k = split.test.n.min(16);
        crate::viz::save_recon_png(
            &dir.join("recon.png"),
            &test[..k * dim],
            &recon[..k * dim],
            k,
            shape,
            16,
        )?;
        let show = pca.k().min(400);
        crate::viz::save_filters_png(&dir.join("filters.png"), &pca.components[..show * dim], show, shape)?;
        eprintln!("wrote {}", dir.display());
    }
    Ok(())
}
