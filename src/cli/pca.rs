//! `aegpu pca`: the linear baseline on the same data flags as `train`: principal components fitted
//! on the training set (covariance through the GPU's matmul, eigenvectors on the host), the test
//! reconstruction error for each requested `k`, and with `--checkpoint` an autoencoder's gap to PCA
//! (for a linear one also the principal angles between its decoder and the top-`k` subspace).

use std::path::PathBuf;

use super::DataArgs;
use super::data::load_source;
use super::model_io::{check_input, open_model};
use aegpu::error::{Error, Result};
use aegpu::pca::{Pca, angles, mse};

#[derive(clap::Args)]
pub struct PcaArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Numbers of components, e.g. 2,32,64 (compare with an autoencoder's code size). Default: the
    /// code size of --checkpoint.
    #[arg(long, value_delimiter = ',')]
    components: Vec<usize>,
    /// An autoencoder to compare with PCA at its code size: its test MSE and the gap to PCA's; for a
    /// linear one (identity activations, MSE loss) also the principal angles between its
    /// decoder's columns and the top-k principal subspace.
    #[arg(long)]
    checkpoint: Option<PathBuf>,
    /// Fit on only the first N training examples.
    #[arg(long)]
    train_limit: Option<usize>,
    /// Evaluate on only the first N test examples.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Compute the covariance in f64 on the CPU instead of with the GPU's matmul (the reference).
    #[arg(long)]
    cpu: bool,
    /// Also write recon.png and filters.png (the components of the largest k) here.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub(super) fn pca_cmd(args: PcaArgs) -> Result<()> {
    if args.components.is_empty() && args.checkpoint.is_none() {
        return Err(Error::Config("give --components K[,K...] or a --checkpoint to compare with".into()));
    }
    let opened = args.checkpoint.as_deref().map(open_model).transpose()?;
    let (mut split, map) = load_source(&args.data.source()?)?;
    if map.is_some() {
        note!("note:    whitened patches: the errors below are in whitened units, not pixels");
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
    let mut ks = args.components.clone();
    if let Some(o) = &opened {
        check_input(&o.model, dim, &format!("{} images", split.train.name))?;
        ks.push(o.model.code_dim());
    }
    ks.sort_unstable();
    ks.dedup();
    let kmax = *ks.last().expect("at least one k");
    if ks[0] == 0 || kmax > dim {
        let k = if ks[0] == 0 { 0 } else { kmax };
        return Err(Error::Config(format!(
            "--components {k}: use 1 to {dim} (the input dimension of {}x{}x{} images)",
            split.train.channels, split.train.rows, split.train.cols
        )));
    }
    let start = std::time::Instant::now();
    let train = split.train.images_f32(0..split.train.n);
    let pca = match (&opened, args.cpu) {
        (_, true) => Pca::fit(&train, dim, kmax)?,
        (Some(o), false) => Pca::fit_gpu(&o.gpu, &train, dim, kmax)?,
        (None, false) => Pca::fit_gpu(&aegpu::gpu::Gpu::new(&Default::default())?, &train, dim, kmax)?,
    };
    let fit_s = start.elapsed().as_secs_f64();
    drop(train);
    let test = split.test.images_f32(0..split.test.n);
    let mut pca_mse = Vec::new();
    for &k in &ks {
        let fit = pca.truncated(k)?;
        let err = mse(&fit.reconstruct(&test), &test);
        pca_mse.push((k, err));
        say!(
            "{}",
            serde_json::json!({
                "components": k,
                "train_examples": split.train.n,
                "test_examples": split.test.n,
                "explained_variance": fit.explained(),
                "test_mse_px": err,
                "test_psnr_db": super::train::psnr_db(err),
                "covariance": if args.cpu { "cpu f64" } else { "gpu matmul" },
                "fit_s": fit_s,
            })
        );
    }
    if let (Some(o), Some(path)) = (&opened, &args.checkpoint) {
        let k = o.model.code_dim();
        let recon = aegpu::codec::reconstruct(&o.gpu, &o.model, &test)?;
        let ae = mse(&recon, &test);
        let pca_k = pca_mse.iter().find(|(kk, _)| *kk == k).expect("k added above").1;
        // Principal angles mean something only for a linear model; the gap is worth printing for any.
        let angles = match angles::decoder_columns(&o.gpu, &o.model) {
            Ok(columns) => Some(angles::principal_angles(&columns, &pca.truncated(k)?.components, dim)?),
            Err(Error::Config(why)) => {
                note!("note:    no principal angles: {why}");
                None
            }
            Err(e) => return Err(e),
        };
        let rounded =
            angles.as_ref().map(|a| a.iter().map(|x| (x * 1000.0).round() / 1000.0).collect::<Vec<_>>());
        say!(
            "{}",
            serde_json::json!({
                "checkpoint": path.display().to_string(),
                "code_dim": k,
                "autoencoder_test_mse_px": ae,
                "pca_test_mse_px": pca_k,
                "gap_percent": 100.0 * (ae - pca_k) / pca_k,
                "principal_angles_deg": rounded,
                "largest_angle_deg": angles.as_ref().and_then(|a| a.last()),
                "mean_angle_deg": angles.as_ref().map(|a| a.iter().sum::<f64>() / a.len() as f64),
            })
        );
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let shape = split.test.shape();
        let show = split.test.n.min(16);
        let recon = pca.reconstruct(&test[..show * dim]);
        aegpu::viz::save_recon_png(&dir.join("recon.png"), &test[..show * dim], &recon, show, shape, 16)?;
        let n = pca.k().min(400);
        aegpu::viz::save_filters_png(&dir.join("filters.png"), &pca.components[..n * dim], n, shape)?;
        note!("wrote {}", dir.display());
    }
    Ok(())
}
