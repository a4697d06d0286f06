//! Code files that NumPy and PyTorch read without aegpu: `.npy` (one array per file, with sidecar
//! files beside it) or one `.safetensors` file.
//!
//! - `codes.npy`: float32 `[n, d]` (a VAE's μ); `codes.logvar.npy` (a VAE's log σ², when asked),
//!   `codes.labels.npy` (int64 `[n]`), `codes.names.txt` (one image file name per line), each only
//!   when there is something to write. `np.load("codes.npy")`.
//! - `codes.safetensors`: tensors `codes` (F32 `[n, d]`), `logvar`, `labels` (I64 `[n]`); names
//!   and provenance in the metadata (`aegpu.names` as a JSON list, `aegpu.model_hash`, ...).
//!   `safetensors.torch.load_file("codes.safetensors")["codes"]`.
//!
//! [`read_codes`] reads either back (also float64 `.npy` arrays, which NumPy writes by default).

use std::collections::BTreeMap;
use std::io::{BufRead, BufWriter};
use std::path::{Path, PathBuf};

use npyz::WriterBuilder;

use crate::error::{Error, Result};

/// Codes with what a user needs next to them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CodeSet {
    /// `[n, dim]` row-major.
    pub codes: Vec<f32>,
    /// Code values per row (d).
    pub dim: usize,
    /// A VAE's log σ², `[n, dim]`.
    pub logvar: Option<Vec<f32>>,
    /// Each row's class index, `[n]`, when the images have labels.
    pub labels: Option<Vec<i64>>,
    /// Image file names, one per row (empty for a dataset split).
    pub names: Vec<String>,
    /// Provenance (checkpoint, model hash, data source); safetensors metadata only.
    pub meta: BTreeMap<String, String>,
}

impl CodeSet {
    /// Rows (images); 0 when `dim` is 0.
    pub fn len(&self) -> usize {
        self.codes.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The file formats, by extension.
fn is_safetensors(path: &Path) -> Result<bool> {
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("npy") => Ok(false),
        Some("safetensors") => Ok(true),
        _ => Err(Error::Config(format!(
            "{}: name a .npy or .safetensors file (the extension picks the format)",
            path.display()
        ))),
    }
}

/// `codes.npy` -> `codes.<what>` beside it.
pub fn sidecar(path: &Path, what: &str) -> PathBuf {
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!("{stem}.{what}"))
}

/// Writes `set` to `path` (`.npy` or `.safetensors`); returns every file written.
pub fn write_codes(path: &Path, set: &CodeSet) -> Result<Vec<PathBuf>> {
    let n = set.len();
    if n == 0 || set.codes.len() != n * set.dim {
        return Err(Error::Shape(format!("{} code values are not rows of {}", set.codes.len(), set.dim)));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    if is_safetensors(path)? {
        write_safetensors(path, set)?;
        return Ok(vec![path.to_path_buf()]);
    }
    let shape = [n as u64, set.dim as u64];
    write_npy(path, &shape, set.codes.iter().copied())?;
    let mut written = vec![path.to_path_buf()];
    if let Some(lv) = &set.logvar {
        let p = sidecar(path, "logvar.npy");
        write_npy(&p, &shape, lv.iter().copied())?;
        written.push(p);
    }
    if let Some(labels) = &set.labels {
        let p = sidecar(path, "labels.npy");
        write_npy(&p, &[n as u64], labels.iter().copied())?;
        written.push(p);
    }
    if !set.names.is_empty() {
        let p = sidecar(path, "names.txt");
        let mut text = set.names.join("\n");
        text.push('\n');
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
        written.push(p);
    }
    Ok(written)
}

fn write_npy<T: npyz::AutoSerialize>(
    path: &Path,
    shape: &[u64],
    values: impl Iterator<Item = T>,
) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let io = |e| Error::io(path, e);
    let mut w = npyz::WriteOptions::new()
        .default_dtype()
        .shape(shape)
        .writer(BufWriter::new(file))
        .begin_nd()
        .map_err(io)?;
    w.extend(values).map_err(io)?;
    w.finish().map_err(io)
}

fn write_safetensors(path: &Path, set: &CodeSet) -> Result<()> {
    use safetensors::{Dtype, tensor::TensorView};
    let n = set.len();
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> =
        vec![("codes".into(), Dtype::F32, vec![n, set.dim], bytemuck::cast_slice(&set.codes).to_vec())];
    if let Some(lv) = &set.logvar {
        tensors.push(("logvar".into(), Dtype::F32, vec![n, set.dim], bytemuck::cast_slice(lv).to_vec()));
    }
    if let Some(labels) = &set.labels {
        tensors.push(("labels".into(), Dtype::I64, vec![n], bytemuck::cast_slice(labels).to_vec()));
    }
    let bad =
        |e: safetensors::SafeTensorError| Error::BadData { path: path.to_path_buf(), reason: e.to_string() };
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data).map(|v| (name.clone(), v))
        })
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(bad)?;
    let mut meta: std::collections::HashMap<String, String> = set.meta.clone().into_iter().collect();
    if !set.names.is_empty() {
        meta.insert("aegpu.names".into(), serde_json::to_string(&set.names).expect("strings serialise"));
    }
    let bytes = safetensors::serialize(views, Some(meta)).map_err(bad)?;
    std::fs::write(path, bytes).map_err(|e| Error::io(path, e))
}

/// Reads a code file written by [`write_codes`] (or any float32/float64 `[n, d]` `.npy` array, or
/// a safetensors file with a 2-D F32 `codes` tensor), with its sidecars when they exist.
pub fn read_codes(path: &Path) -> Result<CodeSet> {
    let bad = |reason: String| Error::BadData { path: path.to_path_buf(), reason };
    if is_safetensors(path)? {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| bad(format!("not safetensors: {e}")))?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).map_err(|e| bad(e.to_string()))?;
        let meta = header.metadata().clone().unwrap_or_default();
        let f32s = |name: &str| -> Result<Option<(Vec<usize>, Vec<f32>)>> {
            match st.tensor(name) {
                Ok(t) if t.dtype() == safetensors::Dtype::F32 => {
                    Ok(Some((t.shape().to_vec(), bytemuck::pod_collect_to_vec::<u8, f32>(t.data()))))
                }
                Ok(t) => Err(bad(format!("tensor '{name}' is {:?}; expected F32", t.dtype()))),
                Err(_) => Ok(None),
            }
        };
        let (shape, codes) = f32s("codes")?.ok_or_else(|| bad("no 'codes' tensor".into()))?;
        let [n, dim] = shape[..] else {
            return Err(bad(format!("'codes' has shape {shape:?}; expected [n, d]")));
        };
        let logvar = f32s("logvar")?.map(|(_, v)| v);
        let labels = match st.tensor("labels") {
            Ok(t) if t.dtype() == safetensors::Dtype::I64 => {
                Some(bytemuck::pod_collect_to_vec::<u8, i64>(t.data()))
            }
            Ok(t) => return Err(bad(format!("tensor 'labels' is {:?}; expected I64", t.dtype()))),
            Err(_) => None,
        };
        let names = match meta.get("aegpu.names") {
            Some(json) => serde_json::from_str(json).map_err(|e| bad(format!("bad 'aegpu.names': {e}")))?,
            None => Vec::new(),
        };
        let set = CodeSet { codes, dim, logvar, labels, names, meta: meta.into_iter().collect() };
        return check_lengths(path, set, n);
    }
    let (shape, codes) = read_npy_f32(path)?;
    let [n, dim] = shape[..] else {
        return Err(bad(format!("the array has shape {shape:?}; codes are 2-D, [n, d]")));
    };
    let logvar = match sidecar(path, "logvar.npy") {
        p if p.exists() => Some(read_npy_f32(&p)?.1),
        _ => None,
    };
    let labels = match sidecar(path, "labels.npy") {
        p if p.exists() => Some(read_npy_i64(&p)?),
        _ => None,
    };
    let names = match sidecar(path, "names.txt") {
        p if p.exists() => {
            let f = std::fs::File::open(&p).map_err(|e| Error::io(&p, e))?;
            std::io::BufReader::new(f)
                .lines()
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(|e| Error::io(&p, e))?
        }
        _ => Vec::new(),
    };
    check_lengths(path, CodeSet { codes, dim, logvar, labels, names, meta: BTreeMap::new() }, n)
}

fn check_lengths(path: &Path, set: CodeSet, n: usize) -> Result<CodeSet> {
    let bad = |what: &str, len: usize| Error::BadData {
        path: path.to_path_buf(),
        reason: format!("{what} has {len} entries for {n} codes"),
    };
    if set.dim == 0 || n == 0 {
        return Err(Error::BadData { path: path.to_path_buf(), reason: "holds no codes".into() });
    }
    if let Some(lv) = &set.logvar
        && lv.len() != set.codes.len()
    {
        return Err(bad("log σ²", lv.len() / set.dim));
    }
    if let Some(l) = &set.labels
        && l.len() != n
    {
        return Err(bad("the labels", l.len()));
    }
    if !set.names.is_empty() && set.names.len() != n {
        return Err(bad("the names", set.names.len()));
    }
    Ok(set)
}

fn open_npy(path: &Path) -> Result<npyz::NpyFile<std::io::BufReader<std::fs::File>>> {
    let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    npyz::NpyFile::new(std::io::BufReader::new(f))
        .map_err(|e| Error::BadData { path: path.to_path_buf(), reason: format!("not a .npy file: {e}") })
}

fn read_npy_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let npy = open_npy(path)?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    if npy.order() == npyz::Order::Fortran && shape.len() > 1 {
        return Err(Error::BadData {
            path: path.to_path_buf(),
            reason: "Fortran-ordered array; save it with np.ascontiguousarray first".into(),
        });
    }
    let bad = |e: std::io::Error| Error::BadData { path: path.to_path_buf(), reason: e.to_string() };
    let values = match npy.dtype() {
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && t.size_field() == 8 => {
            npy.into_vec::<f64>().map_err(bad)?.into_iter().map(|v| v as f32).collect()
        }
        npyz::DType::Plain(t) if t.type_char() == npyz::TypeChar::Float && t.size_field() == 4 => {
            npy.into_vec::<f32>().map_err(bad)?
        }
        other => {
            return Err(Error::BadData {
                path: path.to_path_buf(),
                reason: format!("elements are {}; expected float32 or float64", other.descr()),
            });
        }
    };
    Ok((shape, values))
}

fn read_npy_i64(path: &Path) -> Result<Vec<i64>> {
    let npy = open_npy(path)?;
    npy.into_vec::<i64>().map_err(|e| Error::BadData { path: path.to_path_buf(), reason: e.to_string() })
}
