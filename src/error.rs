//! The one error type of the library. Every variant says what was wrong and what to do about it.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the library can fail with; its `Display` says what was wrong and what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No adapter matched: no Vulkan/Metal/DX12 driver, or the filter excluded all of them.
    #[error(
        "no GPU adapter found ({detail}).\n  Install a Vulkan, Metal or DX12 driver; on a Linux machine with no GPU, \
         `apt-get install mesa-vulkan-drivers` gives lavapipe, a software Vulkan driver.\n  \
         WGPU_BACKEND (vulkan|metal|dx12) and WGPU_ADAPTER_NAME narrow the choice; unset them if they exclude every adapter."
    )]
    NoAdapter {
        /// Why none was left: the backends offered none, none matched `WGPU_ADAPTER_NAME` (with the
        /// adapters that were found), or all were filtered out.
        detail: String,
    },

    /// The adapter exists but refused the device we asked for.
    #[error("the adapter '{adapter}' refused to create a device: {reason}")]
    DeviceRequest {
        /// The adapter's name, as wgpu reports it.
        adapter: String,
        /// wgpu's `RequestDeviceError`, as text.
        reason: String,
    },

    /// A wgpu validation error caught by an error scope: a bug in a kernel or launcher, or a shape the
    /// adapter's limits cannot hold.
    #[error("GPU validation error in {context}: {message}")]
    GpuValidation {
        /// What was being done when it was caught (e.g. "creating buffer 'loss log'").
        context: String,
        /// wgpu's validation message.
        message: String,
    },

    /// The GPU ran out of memory while creating a buffer.
    #[error("GPU out of memory in {context}: try a smaller --batch or model")]
    GpuOutOfMemory {
        /// What was being done (e.g. the buffer being created).
        context: String,
    },

    /// Mapping a buffer for readback failed, or the device was lost while waiting.
    #[error("GPU readback failed in {context}: {message}")]
    Readback {
        /// What was being read or waited on ("readback", "training step", "waiting for the GPU").
        context: String,
        /// wgpu's map or poll error, as text.
        message: String,
    },

    /// A buffer or binding would exceed what the adapter supports.
    #[error(
        "{what} needs {needed} bytes, but this adapter allows at most {limit} bytes; use a smaller batch or model"
    )]
    LimitExceeded {
        /// The buffer's label, or what it was to hold (e.g. "one example of the dataset").
        what: String,
        /// Bytes it needs.
        needed: u64,
        /// Bytes the adapter allows in one binding (`max_storage_buffer_binding_size`, or a smaller
        /// forced chunk limit).
        limit: u64,
    },

    /// Shapes that do not fit together (model config, tensor sizes, dataset vs model).
    #[error("shape mismatch: {0}")]
    Shape(String),

    /// An option value that makes no sense (negative learning rate, unknown activation, ...).
    #[error("invalid configuration: {0}")]
    Config(String),

    /// A part of the crate that this build leaves out (a Cargo feature not enabled).
    #[error(
        "{what} needs aegpu's `{feature}` feature, which this build leaves out: enable it in Cargo.toml \
         (aegpu = {{ ..., features = [\"{feature}\"] }})"
    )]
    FeatureDisabled {
        /// The Cargo feature that brings it: `images`, `npy`, `pca` or `bench`.
        feature: &'static str,
        /// What was asked for, e.g. "reading the image folder photos/".
        what: String,
    },

    /// The dataset directory or one of its files is missing.
    #[error(
        "{what} not found; looked in:\n{looked}\n  expected files: {expected}\n  pass --data DIR or set AEGPU_DATA to the folder that holds them"
    )]
    DataNotFound {
        /// The data set or file kind looked for (e.g. "CIFAR-10 binary batches").
        what: String,
        /// The folders searched, one indented line each, with what was wrong with each.
        looked: String,
        /// The file names that should be there, comma-separated, with where they come from.
        expected: String,
    },

    /// A data file exists but its content is not what the IDX format promises.
    #[error("bad data file {path}: {reason}")]
    BadData {
        /// The offending file (or a name for in-memory data, e.g. "codes").
        path: PathBuf,
        /// What is wrong with its content.
        reason: String,
    },

    /// A checkpoint file is unreadable or does not describe a model we know.
    #[error("bad checkpoint {path}: {reason}")]
    BadCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What could not be read or understood (e.g. a metadata entry and its parse error).
        reason: String,
    },

    /// A checkpoint's tensors do not fit the model built from its metadata (or the model it is loaded
    /// into): a tensor missing, unexpected, of another shape or dtype. The checks of PyTorch's
    /// `load_state_dict(strict=True)`.
    #[error("checkpoint {path} does not fit the model: tensor '{tensor}' {problem}")]
    CheckpointMismatch {
        /// The checkpoint (or imported tensor file).
        path: PathBuf,
        /// Name of the first tensor that does not fit (e.g. `encoder.0.weight`).
        tensor: String,
        /// How it differs from the model's parameter of that name.
        problem: TensorMismatch,
    },

    /// A checkpoint holds a NaN or infinite weight: the run that wrote it diverged.
    #[error(
        "checkpoint {path}: tensor '{tensor}' holds {value} at index {index}; the run that wrote it diverged: \
         use an earlier checkpoint, or retrain with a lower --lr"
    )]
    NonFiniteWeights {
        /// The checkpoint file.
        path: PathBuf,
        /// Name of the first tensor holding a non-finite value.
        tensor: String,
        /// Flat (row-major) index of the first non-finite element in that tensor.
        index: usize,
        /// That element: NaN, inf or -inf.
        value: f32,
    },

    /// A checkpoint's weights are finite but what it computes is not (they overflow on this data).
    #[error(
        "checkpoint {path} gives non-finite {what}; its weights overflow on this data: check that it is the \
         data the model was trained on (--dataset, --data), or retrain with a lower --lr"
    )]
    NonFiniteOutput {
        /// The checkpoint file.
        path: PathBuf,
        /// Which output is non-finite (e.g. "test codes (value 12 is NaN)").
        what: String,
    },

    /// The training loss (or a test figure after an epoch) became NaN/inf or exploded.
    #[error(
        "training diverged in epoch {epoch} at step {step} of the epoch: {what} = {loss}.\n  \
         Lower --lr (now {lr}), or use a larger --batch; a model with a BCE loss needs a sigmoid --output"
    )]
    Diverged {
        /// The epoch, counted from 1.
        epoch: usize,
        /// The step within that epoch, counted from 0; the epoch's step count when the figure is one of
        /// the whole epoch (a test figure, an epoch's mean loss).
        step: usize,
        /// Which figure diverged (e.g. "training loss", "test MSE").
        what: String,
        /// Its value: NaN, infinite, or (a step's training loss) above 1e6.
        loss: f32,
        /// The learning rate the run used.
        lr: f32,
    },

    /// The run was interrupted (Ctrl-C) and saved where it stopped.
    #[error("{0}")]
    Interrupted(String),

    /// Any file-system error, with the path it happened on.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder the operation was on.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },

    /// Writing a PNG failed.
    #[error("could not write image {path}: {reason}")]
    Image {
        /// The image file (or, for an in-memory codec, what was being encoded).
        path: PathBuf,
        /// The `image` crate's error, as text.
        reason: String,
    },
}

/// How a checkpoint tensor differs from the model's parameter of that name (see
/// [`Error::CheckpointMismatch`]). Shapes are PyTorch's: Linear `[out, in]`, Conv2d
/// `[out, in, k, k]`, ConvTranspose2d `[in, out, k, k]`, biases `[out]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TensorMismatch {
    /// The model has this parameter; the file does not.
    Missing {
        /// The model parameter's shape.
        expected: Vec<usize>,
    },
    /// The file has this tensor; the model has no parameter of that name.
    Unexpected {
        /// The file tensor's shape.
        found: Vec<usize>,
    },
    /// The same dimensions in another order: a weight saved `[in, out]` instead of `[out, in]`.
    Transposed {
        /// The model parameter's shape.
        expected: Vec<usize>,
        /// The file tensor's shape: the same dimensions, permuted.
        found: Vec<usize>,
    },
    /// Another shape.
    Shape {
        /// The model parameter's shape.
        expected: Vec<usize>,
        /// The file tensor's shape.
        found: Vec<usize>,
    },
    /// Not float32 (`found` is the safetensors dtype, e.g. `F16`).
    Dtype {
        /// The file tensor's safetensors dtype (e.g. `F16`, `BF16`).
        found: String,
    },
}

impl std::fmt::Display for TensorMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const ARCH: &str = "the file holds another architecture: load it into the model it was saved from";
        match self {
            TensorMismatch::Missing { expected } => {
                write!(f, "is missing (the model has one of shape {expected:?}); {ARCH}")
            }
            TensorMismatch::Unexpected { found } => {
                write!(f, "(shape {found:?}) is not a parameter of the model; {ARCH}")
            }
            TensorMismatch::Transposed { expected, found } => write!(
                f,
                "has shape {found:?}, a transpose of the model's {expected:?}: store weights as PyTorch does \
                 (Linear [out, in], Conv2d [out, in, k, k], ConvTranspose2d [in, out, k, k])"
            ),
            TensorMismatch::Shape { expected, found } => {
                write!(f, "has shape {found:?} but the model's is {expected:?}; {ARCH}")
            }
            TensorMismatch::Dtype { found } => {
                write!(f, "is {found}, expected F32: convert it with tensor.float() before saving")
            }
        }
    }
}

impl Error {
    /// Wraps an `io::Error` with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), source }
    }
}
